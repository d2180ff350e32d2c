//! Load and compile errors: every one carries `file:line:col` and, inside a rule, its name.
use std::{fmt, sync::Arc};

/// One problem found while loading a rules file. Displayed as
/// `file:line:col: rule 'NAME': message` (the rule part only when the error is inside a
/// rule; macros and lists name themselves the same way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
    /// `rule 'X'`, `macro 'X'` or `list 'X'` when the error belongs to one.
    pub item: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if let Some(item) = &self.item {
            write!(f, "{item}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

/// All the errors of one load, in file order.
#[derive(Clone, Debug, Default)]
pub struct LoadErrors(pub Vec<RuleError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

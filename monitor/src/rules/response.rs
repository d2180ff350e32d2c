//! Responses: items in rule files (`- response:`) that say what to do when named
//! rules match. The loader reads them, the engine resolves their rules and compiles
//! their scope; acting on them is `crate::responses`.
use std::sync::Arc;

use super::{Scratch, source::FieldSource, text::Loc, tree::Node};

/// What a response does to the process whose event matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Ends the process (SIGKILL).
    Kill,
    /// Refuses the operation before it happens.
    Deny,
    /// Only says, in the alert, that the response matched.
    Alert,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "kill" => Action::Kill,
            "deny" => Action::Deny,
            "alert" => Action::Alert,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Deny => "deny",
            Action::Alert => "alert",
        }
    }
}

/// Whether a response acts or only says what it would have done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    DryRun,
    Enforce,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "dry-run" => Mode::DryRun,
            "enforce" => Mode::Enforce,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Enforce => "enforce",
        }
    }
}

/// A `- response:` item as written.
#[derive(Clone, Debug)]
pub struct ResponseDef {
    pub name: String,
    pub loc: Loc,
    /// Rule names, each with where it was written (an unknown name is an error there).
    pub rules: Vec<(String, Loc)>,
    /// Tags: the response covers every rule carrying one of them.
    pub tags: Vec<(String, Loc)>,
    pub action: Action,
    pub mode: Mode,
    pub scope: Option<super::text::LocatedText>,
    pub enabled: bool,
}

/// A response ready to run: its rules resolved, its scope compiled.
#[derive(Debug)]
pub struct CompiledResponse {
    pub name: String,
    pub file: Arc<str>,
    pub line: usize,
    pub action: Action,
    pub mode: Mode,
    /// The active rules it covers, by name, in load order.
    pub rules: Vec<String>,
    /// The scope's text, for listings.
    pub scope_text: Option<String>,
    pub(super) scope: Option<Node>,
}

impl CompiledResponse {
    /// Whether the event is in the response's scope (no scope: every event).
    pub fn in_scope<S: FieldSource + ?Sized>(&self, src: &S, scratch: &mut Scratch) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|scope| scope.eval(src, scratch))
    }
}

//! The condition language: a hand-written recursive-descent parser producing an AST
//! with byte offsets, so errors can point at the exact column.
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Intersects,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    PMatch,
    Exists,
    Regex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::PMatch => "pmatch",
            Op::Exists => "exists",
            Op::Regex => "regex",
        }
    }

    /// An operator as written in an exception's `comps`.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.trim() {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            w => return Op::from_word(w),
        })
    }

    fn from_word(w: &str) -> Option<Op> {
        Some(match w {
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "contains" => Op::Contains,
            "icontains" => Op::IContains,
            "bcontains" => Op::BContains,
            "startswith" => Op::StartsWith,
            "bstartswith" => Op::BStartsWith,
            "endswith" => Op::EndsWith,
            "glob" => Op::Glob,
            "iglob" => Op::IGlob,
            "pmatch" => Op::PMatch,
            "exists" => Op::Exists,
            "regex" => Op::Regex,
            _ => return None,
        })
    }

    /// Operators whose right-hand side is a list.
    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::PMatch)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transformer {
    ToLower,
    ToUpper,
    Basename,
    Len,
}

impl Transformer {
    fn from_word(w: &str) -> Option<Transformer> {
        Some(match w {
            "tolower" => Transformer::ToLower,
            "toupper" => Transformer::ToUpper,
            "basename" => Transformer::Basename,
            "len" => Transformer::Len,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transformer::ToLower => "tolower",
            Transformer::ToUpper => "toupper",
            Transformer::Basename => "basename",
            Transformer::Len => "len",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldExpr {
    Field {
        name: String,
        arg: Option<String>,
        pos: usize,
    },
    Transform {
        tf: Transformer,
        inner: Box<FieldExpr>,
        pos: usize,
    },
}

impl FieldExpr {
    pub fn pos(&self) -> usize {
        match self {
            FieldExpr::Field { pos, .. } | FieldExpr::Transform { pos, .. } => *pos,
        }
    }
}

impl fmt::Display for FieldExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Field {
                name, arg: None, ..
            } => f.write_str(name),
            FieldExpr::Field {
                name, arg: Some(a), ..
            } => write!(f, "{name}[{a}]"),
            FieldExpr::Transform { tf, inner, .. } => write!(f, "{}({inner})", tf.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub text: String,
    pub quoted: bool,
    pub pos: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    None,
    Value(Value),
    List(Vec<Value>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub field: FieldExpr,
    pub op: Op,
    pub op_pos: usize,
    pub rhs: Rhs,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Macro { name: String, pos: usize },
    Check(Check),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the condition.
    pub pos: usize,
    pub message: String,
}

const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

fn err<T>(pos: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        pos,
        message: message.into(),
    })
}

/// Parses a whole condition.
pub fn parse_condition(s: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        s,
        b: s.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.pos >= p.b.len() {
        return err(0, "empty condition");
    }
    let e = p.parse_or()?;
    p.skip_ws();
    if p.pos < p.b.len() {
        let tok = p.peek_token();
        return err(p.pos, format!("unexpected '{tok}'"));
    }
    Ok(e)
}

/// Reads a field reference (`name` or `name[arg]`) at the start of `s`. Returns the
/// name, the argument and the number of bytes consumed, or None when `s` does not
/// start with one.
pub fn scan_field(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_ident_byte(b[i]) {
        i += 1;
    }
    // A field name does not end with a dot ("%proc.name." is "proc.name" then ".").
    while i > 0 && b[i - 1] == b'.' {
        i -= 1;
    }
    if i == 0 || !s[..i].contains('.') || !b[0].is_ascii_alphabetic() {
        return None;
    }
    let name = &s[..i];
    if i < b.len()
        && b[i] == b'['
        && let Some(close) = s[i..].find(']')
    {
        let arg = &s[i + 1..i + close];
        return Some((name, Some(arg), i + close + 1));
    }
    Some((name, None, i))
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek_token(&self) -> String {
        let rest = &self.s[self.pos..];
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let tok = &rest[..end];
        if tok.is_empty() {
            return rest.chars().next().map(String::from).unwrap_or_default();
        }
        tok.chars().take(40).collect()
    }

    /// The word (identifier characters) at the current position, without consuming it.
    fn peek_word(&self) -> &'a str {
        let mut i = self.pos;
        while i < self.b.len() && is_ident_byte(self.b[i]) {
            i += 1;
        }
        &self.s[self.pos..i]
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        if self.peek_word() == kw {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.pos, "condition nested too deeply");
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut items = vec![self.parse_and()?];
        while self.eat_keyword("or") {
            items.push(self.parse_and()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_not()?];
        while self.eat_keyword("and") {
            items.push(self.parse_not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::And(items)
        })
    }

    fn parse_not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_keyword("not") {
            self.enter()?;
            let inner = self.parse_not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        if self.pos >= self.b.len() {
            return err(
                self.pos,
                "unexpected end of condition, expected an expression",
            );
        }
        if self.b[self.pos] == b'(' {
            let open = self.pos;
            self.pos += 1;
            let e = self.parse_or()?;
            self.skip_ws();
            if self.pos >= self.b.len() || self.b[self.pos] != b')' {
                if self.pos >= self.b.len() {
                    return err(open, "unbalanced '(': missing ')'");
                }
                let tok = self.peek_token();
                return err(
                    self.pos,
                    format!("expected ')' or an operator, found '{tok}'"),
                );
            }
            self.pos += 1;
            return Ok(e);
        }
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            let tok = self.peek_token();
            return err(
                start,
                format!("unexpected '{tok}', expected a field, macro or '('"),
            );
        }
        if matches!(word, "and" | "or") {
            return err(
                start,
                format!("unexpected '{word}', expected an expression"),
            );
        }
        let after = start + word.len();
        let next_non_ws = self.s[after..]
            .bytes()
            .position(|c| !c.is_ascii_whitespace())
            .map(|i| after + i);
        let is_transform = Transformer::from_word(word).is_some()
            && next_non_ws.is_some_and(|i| self.b[i] == b'(');
        if !is_transform && !word.contains('.') {
            if !word.as_bytes()[0].is_ascii_alphabetic() && word.as_bytes()[0] != b'_' {
                return err(
                    start,
                    format!("unexpected '{word}', expected a field or macro"),
                );
            }
            self.pos = after;
            return Ok(Expr::Macro {
                name: word.to_string(),
                pos: start,
            });
        }
        let field = self.parse_field_expr()?;
        self.parse_check(field)
    }

    fn parse_field_expr(&mut self) -> Result<FieldExpr, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let word = self.peek_word();
        if let Some(tf) = Transformer::from_word(word) {
            let after = start + word.len();
            let mut i = after;
            while i < self.b.len() && self.b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < self.b.len() && self.b[i] == b'(' {
                self.enter()?;
                self.pos = i + 1;
                let inner = self.parse_field_expr()?;
                self.skip_ws();
                if self.pos >= self.b.len() || self.b[self.pos] != b')' {
                    return err(self.pos, format!("expected ')' to close {}(", tf.as_str()));
                }
                self.pos += 1;
                self.depth -= 1;
                return Ok(FieldExpr::Transform {
                    tf,
                    inner: Box::new(inner),
                    pos: start,
                });
            }
        }
        match scan_field(&self.s[start..]) {
            Some((name, arg, len)) => {
                if arg.is_none() && self.s[start + len..].starts_with('[') {
                    return err(start + len, "unterminated '[' in field argument");
                }
                self.pos = start + len;
                Ok(FieldExpr::Field {
                    name: name.to_string(),
                    arg: arg.map(str::to_string),
                    pos: start,
                })
            }
            None => {
                let tok = self.peek_token();
                err(start, format!("expected a field name, found '{tok}'"))
            }
        }
    }

    fn parse_check(&mut self, field: FieldExpr) -> Result<Expr, ParseError> {
        self.skip_ws();
        let op_pos = self.pos;
        let rest = &self.b[self.pos..];
        let sym = if rest.starts_with(b"==") {
            Some((Op::Eq, 2))
        } else if rest.starts_with(b"!=") {
            Some((Op::Ne, 2))
        } else if rest.starts_with(b"<=") {
            Some((Op::Le, 2))
        } else if rest.starts_with(b">=") {
            Some((Op::Ge, 2))
        } else if rest.starts_with(b"=") {
            Some((Op::Eq, 1))
        } else if rest.starts_with(b"<") {
            Some((Op::Lt, 1))
        } else if rest.starts_with(b">") {
            Some((Op::Gt, 1))
        } else {
            None
        };
        let op = match sym {
            Some((op, len)) => {
                self.pos += len;
                op
            }
            None => {
                let word = self.peek_word();
                if word.is_empty() {
                    if self.pos >= self.b.len() {
                        return err(op_pos, format!("expected an operator after '{field}'"));
                    }
                    let tok = self.peek_token();
                    return err(op_pos, format!("unknown operator '{tok}'"));
                }
                match Op::from_word(word) {
                    Some(op) => {
                        self.pos += word.len();
                        op
                    }
                    None => return err(op_pos, format!("unknown operator '{word}'")),
                }
            }
        };
        if op == Op::Exists {
            return Ok(Expr::Check(Check {
                field,
                op,
                op_pos,
                rhs: Rhs::None,
            }));
        }
        self.skip_ws();
        if self.pos >= self.b.len() {
            return err(self.pos, format!("expected a value after '{op}'"));
        }
        let rhs = if self.b[self.pos] == b'(' {
            Rhs::List(self.parse_list()?)
        } else {
            Rhs::Value(self.parse_value(false)?)
        };
        Ok(Expr::Check(Check {
            field,
            op,
            op_pos,
            rhs,
        }))
    }

    fn parse_list(&mut self) -> Result<Vec<Value>, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.pos >= self.b.len() {
                return err(open, "unterminated list: missing ')'");
            }
            if self.b[self.pos] == b')' {
                self.pos += 1;
                return Ok(items);
            }
            if !items.is_empty() {
                if self.b[self.pos] != b',' {
                    let tok = self.peek_token();
                    return err(
                        self.pos,
                        format!("expected ',' or ')' in list, found '{tok}'"),
                    );
                }
                self.pos += 1;
                self.skip_ws();
            }
            items.push(self.parse_value(true)?);
        }
    }

    fn parse_value(&mut self, in_list: bool) -> Result<Value, ParseError> {
        let start = self.pos;
        let Some(&q) = self.b.get(self.pos) else {
            return err(start, "expected a value");
        };
        if q == b'"' || q == b'\'' {
            let mut out = String::new();
            let mut chars = self.s[start + 1..].char_indices();
            while let Some((i, c)) = chars.next() {
                if c as u32 == q as u32 {
                    self.pos = start + 1 + i + 1;
                    return Ok(Value {
                        text: out,
                        quoted: true,
                        pos: start,
                    });
                }
                if c == '\\' {
                    // The escapes of libsinsp's `unescape_str`. `\ ` reads as a
                    // backslash, as in Falco (which keeps it for rules written so: the
                    // sudo rule's `proc.args contains "\ "` looks for a backslash).
                    match chars.next() {
                        Some((_, 'b')) => out.push('\u{8}'),
                        Some((_, 'f')) => out.push('\u{c}'),
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, 'r')) => out.push('\r'),
                        Some((_, ' ' | '\\')) => out.push('\\'),
                        Some((_, '/')) => out.push('/'),
                        Some((_, e @ ('"' | '\''))) if e as u32 == q as u32 => out.push(e),
                        Some((_, e @ ('"' | '\''))) => {
                            let q = q as char;
                            return err(
                                start + 1 + i,
                                format!("invalid \\{e} escape in {q}-quoted string"),
                            );
                        }
                        Some((_, 'x')) => {
                            let hex: String = chars.by_ref().take(2).map(|(_, h)| h).collect();
                            match u8::from_str_radix(&hex, 16) {
                                Ok(b) if hex.len() == 2 && b.is_ascii() => out.push(b as char),
                                // Falco takes any byte; strings here are UTF-8.
                                Ok(_) if hex.len() == 2 => {
                                    return err(
                                        start + 1 + i,
                                        format!("\\x{hex}: only ASCII hex escapes are supported"),
                                    );
                                }
                                _ => {
                                    return err(
                                        start + 1 + i,
                                        format!("invalid hex char escape sequence: \\x{hex}"),
                                    );
                                }
                            }
                        }
                        Some((_, e)) => {
                            return err(
                                start + 1 + i,
                                format!("unsupported string escape sequence: \\{e}"),
                            );
                        }
                        None => break,
                    }
                } else {
                    out.push(c);
                }
            }
            return err(start, "unterminated quoted string");
        }
        let mut end = start;
        for (i, c) in self.s[start..].char_indices() {
            let stop = c.is_whitespace()
                || c == '('
                || c == ')'
                || c == '"'
                || c == '\''
                || (in_list && c == ',');
            if stop {
                end = start + i;
                break;
            }
            end = start + i + c.len_utf8();
        }
        if end == start {
            let tok = self.peek_token();
            return err(start, format!("expected a value, found '{tok}'"));
        }
        let text = &self.s[start..end];
        if text == "val" && self.b.get(end) == Some(&b'(') {
            return err(
                start,
                "field-to-field comparisons (val(...)) are not supported",
            );
        }
        self.pos = end;
        Ok(Value {
            text: text.to_string(),
            quoted: false,
            pos: start,
        })
    }
}

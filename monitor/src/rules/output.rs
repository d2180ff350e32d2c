//! Falco `output:` templates: `%field`, `%field[arg]` and `%(field)` are replaced by the
//! event's values, `<NA>` when the event has none.
use super::{
    fields,
    parser::scan_field,
    source::{FieldArg, FieldSource, ResolvedField},
};

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Field { key: String, field: ResolvedField },
}

/// A compiled output template.
#[derive(Debug, Clone, Default)]
pub struct OutputTemplate {
    segments: Vec<Segment>,
}

impl OutputTemplate {
    /// Parses a template. On error returns the byte offset and the message.
    pub fn parse(s: &str) -> Result<OutputTemplate, (usize, String)> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            let Some(c) = rest.chars().next() else { break };
            if c != '%' {
                text.push(c);
                i += c.len_utf8();
                continue;
            }
            let after = &rest[1..];
            let (name, arg, consumed) = if let Some(inner) = after.strip_prefix('(') {
                let Some(close) = inner.find(')') else {
                    return Err((i, "unterminated '%(' in output".into()));
                };
                let body = inner[..close].trim();
                match scan_field(body) {
                    Some((n, a, len)) if len == body.len() => (n, a, close + 2),
                    _ => return Err((i, format!("invalid field '{body}' in output"))),
                }
            } else if let Some((n, a, len)) = scan_field(after) {
                (n, a, len)
            } else {
                text.push('%');
                i += 1;
                continue;
            };
            let (info, farg) = fields::resolve(name, arg).map_err(|m| (i + 1, m))?;
            if info.arg == fields::ArgKind::AncestorIndex && farg == FieldArg::None {
                return Err((
                    i + 1,
                    format!("field '{name}' needs an index in an output: {name}[N]"),
                ));
            }
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            let key = match arg {
                Some(a) => format!("{name}[{a}]"),
                None => name.to_string(),
            };
            segments.push(Segment::Field {
                key,
                field: ResolvedField {
                    id: info.id,
                    arg: farg,
                },
            });
            i += 1 + consumed;
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(OutputTemplate { segments })
    }

    /// Renders the text and the map of output fields (name → JSON value, null when absent).
    pub fn render<S: FieldSource + ?Sized>(
        &self,
        src: &S,
    ) -> (String, serde_json::Map<String, serde_json::Value>) {
        use std::fmt::Write;
        let mut out = String::new();
        let mut map = serde_json::Map::new();
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Field { key, field } => {
                    let v = src.field(field);
                    let _ = write!(out, "{v}");
                    map.insert(key.clone(), v.to_json());
                }
            }
        }
        (out, map)
    }
}

//! The boundary between the engine and the rest of the agent: what an event must be able
//! to answer for rules to run on it.
use std::{borrow::Cow, fmt, net::IpAddr};

pub use super::fields::{FieldArg, ResolvedField};
pub use crate::kinds::{EventType, TypeMask};

/// A field's value for one event. Implementations should borrow (`Cow::Borrowed`) on the
/// hot path; owned strings are for values that must be computed.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    /// The event cannot provide this field: every comparison with it is false.
    None,
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    Bool(bool),
    Ip(IpAddr),
    /// Raw bytes (`evt.buffer`): `bcontains`/`bstartswith` compare them as they are,
    /// the string operators compare their text.
    Bytes(Cow<'a, [u8]>),
}

impl FieldValue<'_> {
    pub fn is_none(&self) -> bool {
        matches!(self, FieldValue::None)
    }

    /// The value as JSON, for an alert's `output_fields` (`null` when absent).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::None => serde_json::Value::Null,
            FieldValue::Str(s) => serde_json::Value::String(s.to_string()),
            FieldValue::U64(n) => (*n).into(),
            FieldValue::I64(n) => (*n).into(),
            FieldValue::Bool(b) => (*b).into(),
            FieldValue::Ip(ip) => ip.to_string().into(),
            FieldValue::Bytes(b) => printable(b).into(),
        }
    }
}

/// Bytes as Falco prints a buffer: printable ASCII as it is, anything else as `.`.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::None => f.write_str("<NA>"),
            FieldValue::Str(s) => f.write_str(s),
            FieldValue::U64(n) => write!(f, "{n}"),
            FieldValue::I64(n) => write!(f, "{n}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Ip(ip) => write!(f, "{ip}"),
            FieldValue::Bytes(b) => f.write_str(&printable(b)),
        }
    }
}

/// What the engine evaluates rules against: one event with its context.
pub trait FieldSource {
    /// The event's `evt.type`.
    fn event_type(&self) -> EventType;
    /// The value of one field. For ancestor fields (`proc.aname`, `proc.apid`,
    /// `proc.aexepath`) the engine asks with `FieldArg::Index(n)`: 0 is the process
    /// itself, 1 its parent, and so on; `FieldValue::None` past the last ancestor.
    fn field(&self, field: &ResolvedField) -> FieldValue<'_>;
}

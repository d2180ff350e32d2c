//! [`FieldSource`](super::FieldSource) for an event in the JSON form `monitor events`
//! prints, with the optional context objects `process`, `ancestors` and `container`
//! (what rule fixtures and `monitor replay` contain). The fields mean what
//! [`super::event_fields`] says.
//!
//! Extensions beyond the sensor's schema, all optional: `hostname`, `num` (top level),
//! `server_name` on connect events (fills `fd.sip.name`), `process.cap_effective`
//! (a string or a list of capability names), `process.env` (a string of `NAME=value`
//! entries separated by spaces, or a list of them), `process.exe_from_memfd`,
//! `process.exe_upper_layer`, `process.container_start`, `process.loginname`, `container.start_ts` (nanoseconds;
//! without it the runtime's `started_at` is read), `container.pod.labels`.
use std::{borrow::Cow, net::IpAddr};

use serde_json::{Map, Value};

use crate::{context::runtime::Mount, event::EventKind};

use super::{
    event_fields::{A, ArgList, C, EventView, P, Pod, Raw, Record, T, W, env_value},
    recorded::mounts_of,
    source::EventType,
};

/// The values of the keys `of` knows present in `map` (null ones included), by key.
fn resolve<const N: usize>(
    map: Option<&Map<String, Value>>,
    of: fn(&str) -> Option<usize>,
) -> [Option<&Value>; N] {
    let mut out = [None; N];
    if let Some(map) = map {
        for (k, v) in map {
            if let Some(i) = of(k) {
                out[i] = Some(v);
            }
        }
    }
    out
}

fn raw(v: Option<&Value>) -> Raw<'_> {
    match v {
        None => Raw::Absent,
        Some(Value::Null) => Raw::Null,
        Some(Value::String(s)) => Raw::Str(Cow::Borrowed(s)),
        Some(Value::Bool(b)) => Raw::Bool(*b),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Raw::U64(u),
            (_, Some(i), _) => Raw::I64(i),
            (_, _, Some(f)) => Raw::F64(f),
            _ => Raw::Other,
        },
        Some(Value::Array(_) | Value::Object(_)) => Raw::Other,
    }
}

/// A JSON event's keys, looked up once (the rules ask for them constantly).
#[derive(Debug, Clone, Copy)]
pub struct JsonRecord<'a> {
    top: [Option<&'a Value>; T::N],
    process: [Option<&'a Value>; P::N],
    container: [Option<&'a Value>; C::N],
    ancestors: Option<&'a [Value]>,
}

super::event_fields::field_source!(JsonRecord);

/// A JSON event ready for evaluation.
pub type JsonEvent<'a> = EventView<JsonRecord<'a>>;

impl<'a> EventView<JsonRecord<'a>> {
    /// Checks the event's `kind` (and `syscall`) and works out its `evt.type`.
    pub fn new(v: &'a Value) -> Result<JsonEvent<'a>, String> {
        let Some(obj) = v.as_object() else {
            return Err("an event must be a JSON object".into());
        };
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("event has no 'kind'")?;
        let kind: EventKind = kind
            .parse()
            .map_err(|_| format!("unknown event kind '{kind}'"))?;
        let etype = match obj.get("syscall").and_then(Value::as_str) {
            None => kind.default_type(),
            Some(s) => EventType::from_name(s)
                .filter(|t| t.kind() == kind)
                .ok_or_else(|| format!("'{s}' is not a syscall of a {kind} event"))?,
        };
        let top: [Option<&Value>; T::N] = resolve(Some(obj), |k| T::of(k).map(|k| k as usize));
        let object = |k: T| top[k as usize].and_then(Value::as_object);
        let record = JsonRecord {
            process: resolve(object(T::process), |k| P::of(k).map(|k| k as usize)),
            container: resolve(object(T::container), |k| C::of(k).map(|k| k as usize)),
            ancestors: top[T::ancestors as usize]
                .and_then(Value::as_array)
                .map(Vec::as_slice),
            top,
        };
        Ok(EventView::from_record(record, etype))
    }
}

impl<'a> JsonRecord<'a> {
    fn pod_object(&self) -> Option<&'a Map<String, Value>> {
        self.container[C::pod as usize]?.as_object()
    }
}

/// The strings of a JSON array joined by spaces, and how many there are.
fn joined(items: &[Value]) -> (usize, Cow<'_, str>) {
    let count = items.iter().filter(|v| v.is_string()).count();
    let mut strs = items.iter().filter_map(Value::as_str);
    let text = match (strs.next(), strs.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(one), None) => Cow::Borrowed(one),
        _ => Cow::Owned(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
    };
    (count, text)
}

impl<'a> Record<'a> for JsonRecord<'a> {
    fn top(&self, k: T) -> Raw<'a> {
        raw(self.top[k as usize])
    }

    fn process(&self, k: P) -> Raw<'a> {
        let v = self.process[k as usize];
        match (k, v) {
            (
                P::cap_effective | P::cap_permitted | P::cap_inheritable | P::env,
                Some(Value::Array(a)),
            ) => Raw::Str(joined(a).1),
            _ => raw(v),
        }
    }

    fn container(&self, k: C) -> Raw<'a> {
        raw(self.container[k as usize])
    }

    fn workload(&self, k: W) -> Raw<'a> {
        raw(self.top[T::workload as usize].and_then(|w| w.get(k.name())))
    }

    fn stats(&self, key: &str) -> Raw<'a> {
        raw(self.top[T::stats as usize].and_then(|s| s.get(key)))
    }

    fn pod(&self, k: Pod) -> Raw<'a> {
        let key = match k {
            Pod::name => "name",
            Pod::namespace => "namespace",
            Pod::uid => "uid",
            Pod::ip => "ip",
        };
        raw(self.pod_object().and_then(|p| p.get(key)))
    }

    /// From `address_names`; the older `server_name` names the event's `address`.
    fn ip_name(&self, ip: IpAddr) -> Raw<'a> {
        let named = self.top[T::address_names as usize].and_then(|names| names.get(ip.to_string()));
        if let Some(name) = named {
            return raw(Some(name));
        }
        if self.address() == Some(ip) {
            self.top(T::server_name)
        } else {
            Raw::Absent
        }
    }

    fn mounts(&self) -> Cow<'a, [Mount]> {
        match self.container[C::mounts as usize] {
            Some(list) => Cow::Owned(mounts_of(list)),
            None => Cow::Borrowed(&[]),
        }
    }

    fn label(&self, key: &str) -> Raw<'a> {
        let labels = self.container[C::labels as usize].and_then(Value::as_object);
        raw(labels.and_then(|l| l.get(key)))
    }

    fn all_labels(&self, pod: bool) -> Option<Vec<(&'a str, &'a str)>> {
        let labels = if pod {
            self.pod_object()?.get("labels")
        } else {
            self.container[C::labels as usize]
        }?;
        let labels = labels.as_object()?;
        Some(
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect(),
        )
    }

    fn pod_label(&self, key: &str) -> Raw<'a> {
        let labels = self
            .pod_object()
            .and_then(|p| p.get("labels"))
            .and_then(Value::as_object);
        raw(labels.and_then(|l| l.get(key)))
    }

    fn ancestor(&self, depth: usize, k: A) -> Raw<'a> {
        let key = match k {
            A::pid => "pid",
            A::name => "name",
            A::exe => "exe",
            A::exepath => "exepath",
            A::cmdline => "cmdline",
        };
        let entry = depth
            .checked_sub(1)
            .and_then(|i| self.ancestors?.get(i)?.as_object());
        raw(entry.and_then(|a| a.get(key)))
    }

    fn ancestor_count(&self) -> Option<usize> {
        self.ancestors.map(<[Value]>::len)
    }

    fn args(&self, list: ArgList) -> Option<(usize, Cow<'a, str>)> {
        match list {
            ArgList::Process => Some(joined(self.process[P::args as usize]?.as_array()?)),
            ArgList::Exec => {
                let argv = self.top[T::args as usize]?.as_array()?;
                Some(joined(argv.get(1..).unwrap_or_default()))
            }
        }
    }

    fn exec_argv0(&self) -> Raw<'a> {
        raw(self.top[T::args as usize]
            .and_then(Value::as_array)
            .and_then(|a| a.first()))
    }

    fn env_var(&self, name: &str) -> Raw<'a> {
        let found = match self.process[P::env as usize] {
            Some(Value::Array(a)) => {
                env_value(a.iter().filter_map(Value::as_str).map(str::as_bytes), name)
            }
            Some(Value::String(s)) => env_value(s.split(' ').map(str::as_bytes), name),
            _ => None,
        };
        // The value is a suffix of a `str`, cut after an ASCII `=`: still UTF-8.
        found
            .and_then(|v| std::str::from_utf8(v).ok())
            .map_or(Raw::Absent, |v| Raw::Str(Cow::Borrowed(v)))
    }
}

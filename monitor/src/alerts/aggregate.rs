//! Alert aggregation: repeats of one alert within a window become a count.
//!
//! The first alert of a key goes out at once; its repeats within `window` of it are
//! counted, not sent; when the window closes, one summary alert tells how many there
//! were and between which times. A window with a single alert has no summary.
//!
//! The key is what makes two alerts "the same" to the person reading them: the rule,
//! the container, the process's executable, and the values of the rule's output
//! fields, except the ones that differ from one event to the next of the very same
//! behaviour (times, event numbers, process and thread ids, descriptor numbers,
//! ephemeral client ports; see [`is_volatile`]). So a loop that reads
//! `/etc/shadow` 1,000 times is one key, and so is a cron job that runs the same
//! command every second (new pid each time); a read of another file, by another
//! program, in another container or by another user is another key.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::Value;

use super::model::{Aggregated, Alert};

/// Aggregation settings; `None` in [`super::AlertsConfig`] means off.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationConfig {
    /// Seconds after a key's first alert during which its repeats are counted.
    pub window_secs: u64,
    /// Most keys counted at once; past it alerts pass through unaggregated (counted).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

pub fn default_max_keys() -> usize {
    10_000
}

/// The output field the count is also put in: Falcosidekick and other consumers that
/// keep only Falco's keys still see it.
pub const COUNT_FIELD: &str = "monitor.aggregated";

/// What became of an alert handed to [`Aggregator::observe`].
#[derive(Debug, PartialEq)]
pub enum Observed {
    /// The first of its key: send it now.
    First(Alert),
    /// A repeat within its key's window: counted.
    Repeat,
    /// Too many keys are open: send it as it is.
    Overflow(Alert),
}

struct Window {
    opened: Instant,
    /// The alert that opened the window; the summary repeats it.
    first: Alert,
    count: u64,
    last_time: String,
}

pub struct Aggregator {
    window: Duration,
    max_keys: usize,
    open: HashMap<String, Window>,
    /// Windows closed by a new alert of their key before the timer took them.
    closed: Vec<Window>,
}

/// Output fields whose value belongs to one event rather than to the behaviour:
/// leaving them in the key would make every repeat a new key.
pub fn is_volatile(field: &str) -> bool {
    // `proc.apid[2]` is `proc.apid` of one ancestor.
    let name = field.split('[').next().unwrap_or(field);
    matches!(
        name,
        "evt.time"
            | "evt.rawtime"
            | "evt.num"
            | "proc.pid"
            | "proc.ppid"
            | "proc.vpid"
            | "proc.vpgid"
            | "proc.sid"
            | "proc.apid"
            | "proc.duration"
            | "thread.tid"
            | "fd.num"
            | "fd.cport"
    ) || name.starts_with("evt.time.")
        || name.starts_with("evt.rawtime.")
        || name.starts_with("evt.datetime")
}

/// The aggregation key of `alert` raised for a process running `exe`. JSON keeps the
/// parts apart, so different alerts never share a key.
pub fn key(alert: &Alert, exe: Option<&str>) -> String {
    let container = alert
        .container
        .as_ref()
        .and_then(|c| c.id.as_deref())
        .or_else(|| {
            alert
                .output_fields
                .get("container.id")
                .and_then(Value::as_str)
        });
    let fields: Vec<(&String, &Value)> = alert
        .output_fields
        .iter()
        .filter(|(name, _)| !is_volatile(name))
        .collect();
    serde_json::to_string(&(&alert.rule, &alert.source, container, exe, fields))
        .expect("strings and JSON values always serialize")
}

impl Aggregator {
    pub fn new(config: &AggregationConfig) -> Aggregator {
        Aggregator {
            window: Duration::from_secs(config.window_secs),
            max_keys: config.max_keys,
            open: HashMap::new(),
            closed: Vec::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts `alert` in its key's window, opening one when there is none.
    pub fn observe(&mut self, alert: Alert, exe: Option<&str>, now: Instant) -> Observed {
        let key = key(&alert, exe);
        if let Some(w) = self.open.get_mut(&key) {
            // A window past its end whose summary the timer has not taken yet: its
            // summary is due, and this alert opens the next window.
            if now.saturating_duration_since(w.opened) < self.window {
                w.count += 1;
                w.last_time = alert.time;
                return Observed::Repeat;
            }
        }
        if !self.open.contains_key(&key) && self.open.len() >= self.max_keys {
            return Observed::Overflow(alert);
        }
        let window = Window {
            opened: now,
            first: alert.clone(),
            count: 1,
            last_time: alert.time.clone(),
        };
        if let Some(closed) = self.open.insert(key, window) {
            self.closed.push(closed);
        }
        Observed::First(alert)
    }

    /// Keys whose window is open now.
    pub fn open_keys(&self) -> usize {
        self.open.len()
    }

    /// The summaries of the windows that ended by `now`, oldest first; those keys
    /// start afresh.
    pub fn take_closed(&mut self, now: Instant) -> Vec<Alert> {
        let window = self.window;
        let mut ended = std::mem::take(&mut self.closed);
        let expired: Vec<String> = self
            .open
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.opened) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        ended.extend(expired.iter().filter_map(|k| self.open.remove(k)));
        self.summaries(ended)
    }

    /// The summaries of every window, ended or not (at shutdown, so no count is
    /// lost).
    pub fn take_all(&mut self) -> Vec<Alert> {
        let mut ended = std::mem::take(&mut self.closed);
        ended.extend(self.open.drain().map(|(_, w)| w));
        self.summaries(ended)
    }

    fn summaries(&self, mut ended: Vec<Window>) -> Vec<Alert> {
        ended.sort_by_key(|w| w.opened);
        ended
            .into_iter()
            .filter(|w| w.count > 1)
            .map(|w| summary(w, self.window))
            .collect()
    }
}

/// The first alert again, at the time of the last, with the count and the span.
fn summary(w: Window, window: Duration) -> Alert {
    let mut alert = w.first;
    let first = std::mem::replace(&mut alert.time, w.last_time.clone());
    alert.output = format!(
        "{} ({} times between {first} and {})",
        alert.output, w.count, w.last_time
    );
    alert
        .output_fields
        .insert(COUNT_FIELD.into(), Value::from(w.count));
    alert.aggregated = Some(Aggregated {
        count: w.count,
        first,
        last: w.last_time,
        window_s: window.as_secs_f64(),
    });
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Priority;
    use serde_json::{Map, json};

    const T0: &str = "2024-05-06T07:08:09.000000000Z";

    fn config(window_secs: u64, max_keys: usize) -> AggregationConfig {
        AggregationConfig {
            window_secs,
            max_keys,
        }
    }

    fn shadow_read(pid: u64, file: &str, time: &str) -> Alert {
        let fields = json!({
            "proc.pid": pid, "proc.vpid": pid, "evt.time": time, "fd.num": pid % 7,
            "proc.apid[2]": pid + 1, "fd.name": file, "user.name": "root",
            "container.id": "0123456789ab",
        });
        Alert {
            time: time.into(),
            rule: "Password database read in container".into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "node1".into(),
            output: format!("Password database opened (file={file})"),
            tags: vec!["container".into()],
            output_fields: fields.as_object().unwrap().clone(),
            exec_id: Some(format!("e{pid}")),
            event_type: None,
            ancestors: vec![],
            container: None,
            aggregated: None,
            response: None,
        }
    }

    fn time(n: u64) -> String {
        format!("2024-05-06T07:08:{:02}.{n:09}Z", 9 + n / 100)
    }

    #[test]
    fn alerts_aggregation_first_at_once_then_one_summary_when_the_window_ends() {
        let mut a = Aggregator::new(&config(10, 100));
        let t0 = Instant::now();
        let first = shadow_read(1, "/etc/shadow", T0);
        assert_eq!(
            a.observe(first.clone(), Some("/bin/cat"), t0),
            Observed::First(first.clone())
        );
        for n in 1..1000u64 {
            let at = t0 + Duration::from_millis(n * 9);
            let seen = a.observe(
                shadow_read(1, "/etc/shadow", &time(n)),
                Some("/bin/cat"),
                at,
            );
            assert_eq!(seen, Observed::Repeat, "alert {n}");
        }
        assert!(a.take_closed(t0 + Duration::from_millis(9_999)).is_empty());
        let summaries = a.take_closed(t0 + Duration::from_secs(10));
        assert_eq!(summaries.len(), 1);
        let s = &summaries[0];
        let last = time(999);
        assert_eq!(
            s.aggregated,
            Some(Aggregated {
                count: 1000,
                first: T0.into(),
                last: last.clone(),
                window_s: 10.0,
            })
        );
        assert_eq!(s.time, last);
        assert_eq!(
            s.output,
            format!(
                "Password database opened (file=/etc/shadow) (1000 times between {T0} and {last})"
            )
        );
        assert_eq!(s.output_fields[COUNT_FIELD], 1000);
        assert_eq!(
            (&s.rule, s.priority, &s.tags, &s.exec_id),
            (&first.rule, first.priority, &first.tags, &first.exec_id)
        );
        // Falco's keys are kept; the marker is one more key.
        let v: Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["aggregated"]["count"], 1000);
        assert_eq!(v["output_fields"]["fd.name"], "/etc/shadow");
        assert!(!first.to_json().contains("aggregated"));
        assert_eq!(a.open_keys(), 0);
        // The key starts afresh: the next alert goes out at once.
        let next = shadow_read(1, "/etc/shadow", &time(5));
        let at = t0 + Duration::from_secs(11);
        assert!(matches!(
            a.observe(next, Some("/bin/cat"), at),
            Observed::First(_)
        ));
    }

    #[test]
    fn alerts_aggregation_single_alert_window_has_no_summary() {
        let mut a = Aggregator::new(&config(5, 100));
        let t0 = Instant::now();
        a.observe(shadow_read(1, "/etc/shadow", T0), None, t0);
        assert!(a.take_closed(t0 + Duration::from_secs(5)).is_empty());
        a.observe(shadow_read(1, "/etc/shadow", T0), None, t0);
        assert!(a.take_all().is_empty());
    }

    #[test]
    fn alerts_aggregation_key_ignores_ids_and_times_only() {
        let base = shadow_read(1, "/etc/shadow", T0);
        let k = key(&base, Some("/bin/cat"));
        // Another process of the same program, another time: same key.
        assert_eq!(
            key(&shadow_read(77, "/etc/shadow", &time(3)), Some("/bin/cat")),
            k
        );
        // Another file, program, container or rule: another key.
        assert_ne!(
            key(&shadow_read(1, "/etc/gshadow", T0), Some("/bin/cat")),
            k
        );
        assert_ne!(key(&base, Some("/bin/head")), k);
        assert_ne!(key(&base, None), k);
        let mut other = base.clone();
        other
            .output_fields
            .insert("container.id".into(), json!("fedcba987654"));
        assert_ne!(key(&other, Some("/bin/cat")), k);
        let mut other = base.clone();
        other.rule = "Another rule".into();
        assert_ne!(key(&other, Some("/bin/cat")), k);
        // Parts cannot run into each other.
        let mut a = base.clone();
        a.output_fields = Map::new();
        a.rule = "R\",\"x".into();
        let mut b = a.clone();
        b.rule = "R".into();
        assert_ne!(key(&a, Some("x")), key(&b, Some("\",\"x")));
        for f in [
            "proc.pid",
            "proc.apid[1]",
            "evt.time",
            "evt.time.iso8601",
            "fd.num",
        ] {
            assert!(is_volatile(f), "{f}");
        }
        for f in [
            "proc.name",
            "fd.name",
            "proc.cmdline",
            "fd.sport",
            "user.uid",
        ] {
            assert!(!is_volatile(f), "{f}");
        }
    }

    #[test]
    fn alerts_aggregation_past_the_cap_passes_alerts_through() {
        let mut a = Aggregator::new(&config(10, 2));
        let t0 = Instant::now();
        for file in ["/a", "/b"] {
            assert!(matches!(
                a.observe(shadow_read(1, file, T0), None, t0),
                Observed::First(_)
            ));
        }
        for _ in 0..3 {
            assert!(matches!(
                a.observe(shadow_read(1, "/c", T0), None, t0),
                Observed::Overflow(_)
            ));
        }
        // Keys already open keep counting.
        assert_eq!(
            a.observe(shadow_read(1, "/a", T0), None, t0),
            Observed::Repeat
        );
        assert_eq!(a.open_keys(), 2);
        // Once a window ends there is room again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(a.take_closed(later).len(), 1);
        assert!(matches!(
            a.observe(shadow_read(1, "/c", T0), None, later),
            Observed::First(_)
        ));
    }

    #[test]
    fn alerts_aggregation_flush_gives_every_open_count() {
        let mut a = Aggregator::new(&config(3600, 100));
        let t0 = Instant::now();
        for (file, n) in [("/a", 3), ("/b", 2), ("/c", 1)] {
            for i in 0..n {
                a.observe(
                    shadow_read(i, file, T0),
                    None,
                    t0 + Duration::from_millis(i),
                );
            }
        }
        let counts: Vec<(Value, u64)> = a
            .take_all()
            .iter()
            .map(|s| {
                (
                    s.output_fields["fd.name"].clone(),
                    s.aggregated.as_ref().unwrap().count,
                )
            })
            .collect();
        let mut counts = counts;
        counts.sort_by_key(|(f, _)| f.to_string());
        assert_eq!(counts, vec![(json!("/a"), 3), (json!("/b"), 2)]);
        assert_eq!(a.open_keys(), 0);
        // A window ended by a new alert of its key before the timer came keeps its
        // summary.
        let mut a = Aggregator::new(&config(1, 100));
        a.observe(shadow_read(1, "/a", T0), None, t0);
        a.observe(shadow_read(1, "/a", T0), None, t0);
        let later = t0 + Duration::from_secs(2);
        assert!(matches!(
            a.observe(shadow_read(1, "/a", T0), None, later),
            Observed::First(_)
        ));
        let summaries = a.take_closed(later);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].aggregated.as_ref().unwrap().count, 2);
    }
}

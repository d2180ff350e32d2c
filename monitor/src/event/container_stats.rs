//! The measures of a `container_stats` event, declared once.
//!
//! [`container_measures!`] is the one table of them: the event's struct, its JSON keys
//! (written by `monitor events`, read back from recordings) and the rule fields that
//! name them (`rules::fields`) are all generated from it, so a new measure is one row.

/// One measure of a container: the last sample and its means over the last minute
/// and the last five minutes (over the samples a younger container has). Integers:
/// millicores, bytes, percent (rounded), counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    pub now: Option<u64>,
    pub mean_1m: Option<u64>,
    pub mean_5m: Option<u64>,
}

/// Calls `$callback!` with its own arguments followed by `@measures { rows }`.
///
/// A row is `struct_field => "rule.field.name" [FieldIdVariants] "what it means";`.
/// Three variants make a series ([`Measure`]: the last sample, the `_1m` and the `_5m`
/// means, with those suffixes on the JSON key and the field name); one variant a
/// single value (`Option<u64>`). The JSON key is the struct field's name.
macro_rules! container_measures {
    ($callback:ident $($args:tt)*) => {
        $callback! { $($args)* @measures {
            cpu_millicores => "container.cpu.millicores" [StatCpuMillicores, StatCpuMillicores1m, StatCpuMillicores5m]
                "CPU in use, in thousandths of a core (1000 = one core busy).";
            cpu_limit_pct => "container.cpu.limit_pct" [StatCpuLimitPct, StatCpuLimitPct1m, StatCpuLimitPct5m]
                "CPU in use as a percentage of the container's CPU limit (no value without a limit).";
            cpu_limit_millicores => "container.cpu.limit_millicores" [StatCpuLimitMillicores]
                "The container's CPU limit (quota / period), in thousandths of a core; no value without a limit.";
            memory_bytes => "container.memory.bytes" [StatMemoryBytes, StatMemoryBytes1m, StatMemoryBytes5m]
                "Memory charged to the container's cgroup, in bytes.";
            memory_limit_pct => "container.memory.limit_pct" [StatMemoryLimitPct, StatMemoryLimitPct1m, StatMemoryLimitPct5m]
                "Memory in use as a percentage of the container's memory limit (no value without a limit).";
            memory_limit_bytes => "container.memory.limit_bytes" [StatMemoryLimitBytes]
                "The container's memory limit in bytes; no value without a limit.";
            oom_kills => "container.memory.oom_kills" [StatOomKills]
                "Processes the kernel's OOM killer killed in the container since it started.";
            new_oom_kills => "container.memory.new_oom_kills" [StatNewOomKills]
                "OOM kills in the container since the previous sample.";
            pids => "container.pids.count" [StatPids, StatPids1m, StatPids5m]
                "Tasks (processes and threads) in the container.";
            pids_limit_pct => "container.pids.limit_pct" [StatPidsLimitPct, StatPidsLimitPct1m, StatPidsLimitPct5m]
                "Tasks as a percentage of the container's pids.max (no value without a limit).";
            pids_limit => "container.pids.limit" [StatPidsLimit]
                "The container's pids.max; no value without a limit.";
            execs_per_min => "container.execs_per_min" [StatExecsPerMin]
                "Programs executed in the container in the last minute.";
            connects_per_min => "container.connects_per_min" [StatConnectsPerMin]
                "Connects (to IP addresses, loopback included) made in the container in the last minute.";
            failed_connects_per_min => "container.failed_connects_per_min" [StatFailedConnectsPerMin]
                "Connects that failed (refused, unreachable, timed out; not in progress) in the last minute.";
            destinations_per_min => "container.destinations_per_min" [StatDestinationsPerMin]
                "Distinct (address, port) pairs the container connected to, or tried to, in the last minute.";
        } }
    };
}
pub(crate) use container_measures;

/// The parts of one row, by whether it is a series (`$m1` present) or a single value.
macro_rules! measure {
    (@type) => { Option<u64> };
    (@type $m1:ident) => { Measure };
    (@width) => { 1 };
    (@width $m1:ident) => { 3 };
    (@push $out:ident, $at:ident, $field:ident, $value:expr) => {
        $out[$at] = (stringify!($field), *$value);
        $at += 1;
    };
    (@push $out:ident, $at:ident, $field:ident, $value:expr, $m1:ident) => {
        let series: &Measure = $value;
        $out[$at] = (stringify!($field), series.now);
        $out[$at + 1] = (concat!(stringify!($field), "_1m"), series.mean_1m);
        $out[$at + 2] = (concat!(stringify!($field), "_5m"), series.mean_5m);
        $at += 3;
    };
    (@get $self:ident, $key:ident, $field:ident) => {
        ($key == stringify!($field)).then_some($self.$field)
    };
    (@get $self:ident, $key:ident, $field:ident, $m1:ident) => {
        match $key.strip_prefix(stringify!($field)) {
            Some("") => Some($self.$field.now),
            Some("_1m") => Some($self.$field.mean_1m),
            Some("_5m") => Some($self.$field.mean_5m),
            _ => None,
        }
    };
    (@read $get:ident, $field:ident) => { $get(stringify!($field)) };
    (@read $get:ident, $field:ident, $m1:ident) => {
        Measure {
            now: $get(stringify!($field)),
            mean_1m: $get(concat!(stringify!($field), "_1m")),
            mean_5m: $get(concat!(stringify!($field), "_5m")),
        }
    };
}

macro_rules! container_stats {
    (@measures { $(
        $field:ident => $name:literal [$now:ident $(, $m1:ident, $m5:ident)?] $doc:literal;
    )* }) => {
        /// A container's resource usage (from its cgroups) and activity (from its
        /// events), made by the agent every `stats.interval` for each running container.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct ContainerStats {
            $( #[doc = $doc] pub $field: measure!(@type $($m1)?), )*
            /// Seconds between this sample and the previous one.
            pub interval_secs: u64,
        }

        /// Keys of the event JSON's `stats` object: each measure's, and `interval_secs`.
        pub const STATS_KEYS: usize = 1 $( + measure!(@width $($m1)?) )*;

        impl ContainerStats {
            /// Every measure by its key in the event JSON's `stats` object.
            pub fn entries(&self) -> [(&'static str, Option<u64>); STATS_KEYS] {
                let mut out = [("", None); STATS_KEYS];
                let mut at = 0;
                $( measure!(@push out, at, $field, &self.$field $(, $m1)?); )*
                out[at] = ("interval_secs", Some(self.interval_secs));
                out
            }

            /// The measures under the keys [`ContainerStats::entries`] writes (a
            /// recorded event).
            pub fn from_entries(get: impl Fn(&str) -> Option<u64>) -> ContainerStats {
                ContainerStats {
                    $( $field: measure!(@read get, $field $(, $m1)?), )*
                    interval_secs: get("interval_secs").unwrap_or(0),
                }
            }

            /// One measure by its `stats` key.
            pub fn get(&self, key: &str) -> Option<u64> {
                $(
                    if let Some(value) = measure!(@get self, key, $field $(, $m1)?) {
                        return value;
                    }
                )*
                (key == "interval_secs").then_some(self.interval_secs)
            }
        }
    };
}
container_measures!(container_stats);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_entries() {
        let stats = ContainerStats {
            cpu_millicores: Measure {
                now: Some(1),
                mean_1m: Some(2),
                mean_5m: Some(3),
            },
            memory_limit_bytes: Some(4),
            execs_per_min: Some(5),
            interval_secs: 6,
            ..ContainerStats::default()
        };
        let entries = stats.entries();
        assert_eq!(entries.len(), 28);
        assert_eq!(entries[0], ("cpu_millicores", Some(1)));
        assert_eq!(entries[2], ("cpu_millicores_5m", Some(3)));
        assert_eq!(entries[27], ("interval_secs", Some(6)));
        assert_eq!(stats.get("memory_limit_bytes"), Some(4));
        assert_eq!(stats.get("execs_per_min"), Some(5));
        let read = ContainerStats::from_entries(|key| {
            entries
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| *v)
        });
        assert_eq!(read, stats);
    }

    #[test]
    fn get_finds_every_key_that_entries_writes() {
        let keys = ContainerStats::default().entries().map(|(key, _)| key);
        // A distinct value per key, so a key read from its neighbour's field shows.
        let stats = ContainerStats::from_entries(|key| {
            keys.iter()
                .position(|k| *k == key)
                .map(|at| at as u64 + 100)
        });
        for (key, value) in stats.entries() {
            assert!(value.is_some(), "{key}");
            assert_eq!(stats.get(key), value, "{key}");
        }
        assert_eq!(stats.get("pids_limit"), Some(122));
        assert_eq!(stats.get("pids_limit_1m"), None);
        assert_eq!(stats.get("pids_limit_pct_9m"), None);
    }
}

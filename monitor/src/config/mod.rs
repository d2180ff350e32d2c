//! The daemon's settings: one YAML file (default `/etc/monitor/monitor.yaml`),
//! overridden by `MONITOR_*` environment variables, overridden by command-line flags.
//! Every key, its default and its meaning are in `config/monitor.yaml` at the top of
//! the repository (a test keeps that file equal to the defaults here).
mod load;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

pub use load::{ConfigError, Loaded, Origin, Override, SettingsSource, env_var_name, leaves, load};

use crate::{
    alerts::{
        AggregationConfig, AlertsConfig, Format, RateLimitConfig, SinkConfig, SinkKind, SpoolConfig,
    },
    context::{ContextConfig, RuntimeSocket, cgroup::Runtime},
    kinds::Interest,
    profiles::{ProfilesConfig, fleet::FleetConfig},
    rules::{Priority, RuleMatching},
    sensor::{SensorConfig, btf::VMLINUX_BTF},
};

/// Where the daemon looks for its config when no `--config` is given; a missing file
/// there means "all defaults".
pub const DEFAULT_CONFIG_PATH: &str = "/etc/monitor/monitor.yaml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Diagnostics on stderr: error, warn, info, debug, trace, or a tracing filter.
    pub log: String,
    pub rules: RulesSettings,
    pub sensor: SensorSettings,
    pub context: ContextSettings,
    pub outputs: OutputSettings,
    pub profiles: ProfilesSettings,
    pub responses: ResponsesSettings,
    pub server: ServerSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSettings {
    /// Rule files or folders in load order; empty: /etc/monitor/rules, else ./rules.
    pub paths: Vec<PathBuf>,
    pub matching: Matching,
    /// Reload when a rule file or the config file changes (SIGHUP always reloads).
    pub watch: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    All,
    First,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSettings {
    pub ring_buffer_bytes: u32,
    pub btf: PathBuf,
    /// Seconds between drop reports (and internal drop alerts).
    pub stats_interval_secs: u64,
    /// `monitor run`: let the kernel drop events no active rule can match.
    pub kernel_filter: bool,
    /// `monitor run`: pin the recorder in bpffs so the kernel keeps recording while
    /// the agent restarts.
    pub pin: bool,
    /// Where the recorder is pinned (in bpffs).
    pub pin_root: PathBuf,
    /// A stop by SIGINT or SIGTERM leaves the pinned recorder running for the next
    /// agent (SIGUSR2 always does); otherwise a stop removes it.
    pub keep_recording: bool,
    /// `monitor run`: where the agent notes until when it recorded, so the next one
    /// can report the blind spot between them when no recorder was handed over.
    pub last_seen_file: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextSettings {
    pub enabled: bool,
    pub host_root: PathBuf,
    /// A path (read below host_root) or `unix://PATH`.
    pub docker_socket: String,
    pub docker: bool,
    /// containerd's API and its CRI plugin; watched when the socket is there at start
    /// (empty: never).
    pub containerd_socket: String,
    /// CRI-O's CRI socket; watched when there at start (empty: never).
    pub crio_socket: String,
    /// Podman's Docker-compatible API (`podman system service`); watched when there
    /// at start (empty: never).
    pub podman_socket: String,
    pub process_cap: usize,
    pub exited_grace_secs: u64,
    pub ancestry_depth: usize,
    pub metadata_wait_ms: u64,
    pub exe_hash: bool,
    /// Seconds between `container_stats` events (made only when a rule or `--kinds`
    /// asks for them).
    pub container_stats_interval_secs: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSettings {
    pub stdout: StdoutSettings,
    pub file: FileSettings,
    pub syslog: SyslogSettings,
    pub http: HttpSettings,
    pub spool: SpoolSettings,
    pub rate_limit: RateLimitSettings,
    pub aggregation: AggregationSettings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StdoutFormat {
    /// Colored text on a terminal, JSON lines otherwise.
    Auto,
    #[serde(alias = "falco")]
    Json,
    Text,
    Ocsf,
    OcsfActivity,
    Ecs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutSettings {
    pub enabled: bool,
    pub format: StdoutFormat,
    /// Priority colors in the text format.
    pub color: Color,
    #[serde(with = "priority_setting")]
    pub min_priority: Priority,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSettings {
    /// Alerts appended one per line; unset: no file sink.
    pub path: Option<PathBuf>,
    pub format: Format,
    pub max_bytes: u64,
    pub keep: u32,
    #[serde(with = "priority_setting")]
    pub min_priority: Priority,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSettings {
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///dev/log`; unset: no syslog.
    pub address: Option<String>,
    pub facility: u8,
    #[serde(with = "priority_setting")]
    pub min_priority: Priority,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// http:// or https:// URL alerts are POSTed to; unset: no HTTP sink.
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// 1: one JSON object per request (what Falcosidekick takes); N: arrays of up to N.
    pub batch: usize,
    pub ca_file: Option<PathBuf>,
    pub timeout_ms: u64,
    /// The document each alert is: json (Falco's), ocsf, ocsf-activity or ecs.
    pub format: Format,
    #[serde(with = "priority_setting")]
    pub min_priority: Priority,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Undeliverable alerts wait in DIR/<sink>; unset: in memory only.
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Alerts per second each rule may raise; 0: no limit.
    pub per_rule_per_second: f64,
    pub burst: u32,
    pub summary_interval_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationSettings {
    /// Seconds during which repeats of an alert are counted into one summary; 0: off.
    pub window_secs: u64,
    /// Most alert keys counted at once; past it alerts go out unaggregated (counted).
    pub max_keys: usize,
}

/// Learned behaviour profiles per workload (`profiles`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesSettings {
    pub enabled: bool,
    /// One JSON file per workload; null: in memory only (lost at restart).
    pub state_dir: Option<PathBuf>,
    /// Observed runtime after which a profile is frozen.
    pub learning_window_secs: u64,
    /// Most entries per set of a profile.
    pub max_entries: usize,
    /// Most profiles; past it the least recently seen is evicted.
    pub max_profiles: usize,
    pub fleet: FleetSettings,
}

/// Profiles shared across nodes through NATS JetStream (`profiles.fleet`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// NATS servers, comma-separated; empty: profiles stay on this node.
    pub url: String,
    pub bucket: String,
    pub replicas: usize,
    pub credentials_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub max_bytes: u64,
    pub first_event_wait_ms: u64,
    pub max_pending: usize,
}

pub use crate::responses::ResponsesSettings;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address of /metrics, /healthz and /readyz; empty: no server.
    pub listen: String,
}

/// A priority as users write it in settings: any case, `info` for Informational.
mod priority_setting {
    use crate::rules::Priority;

    pub fn serialize<S: serde::Serializer>(p: &Priority, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.as_str().to_ascii_lowercase())
    }

    pub(crate) use crate::alerts::model::de_priority_config as deserialize;
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log: "info".into(),
            rules: RulesSettings::default(),
            sensor: SensorSettings::default(),
            context: ContextSettings::default(),
            outputs: OutputSettings::default(),
            profiles: ProfilesSettings::default(),
            responses: ResponsesSettings::default(),
            server: ServerSettings::default(),
        }
    }
}

impl Default for RulesSettings {
    fn default() -> Self {
        RulesSettings {
            paths: Vec::new(),
            matching: Matching::All,
            watch: false,
        }
    }
}

impl Default for SensorSettings {
    fn default() -> Self {
        SensorSettings {
            ring_buffer_bytes: monitor_common::DEFAULT_RING_BUFFER_BYTES,
            btf: PathBuf::from(VMLINUX_BTF),
            stats_interval_secs: 10,
            kernel_filter: true,
            pin: true,
            pin_root: PathBuf::from(crate::sensor::recorder::DEFAULT_ROOT),
            keep_recording: false,
            last_seen_file: PathBuf::from("/run/monitor/last-seen"),
        }
    }
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            enabled: true,
            host_root: PathBuf::from("/"),
            docker_socket: "/var/run/docker.sock".into(),
            docker: true,
            containerd_socket: "/run/containerd/containerd.sock".into(),
            crio_socket: "/run/crio/crio.sock".into(),
            podman_socket: "/run/podman/podman.sock".into(),
            process_cap: 65_536,
            exited_grace_secs: 30,
            ancestry_depth: 8,
            metadata_wait_ms: 2000,
            container_stats_interval_secs: 10,
            exe_hash: true,
        }
    }
}

impl Default for StdoutSettings {
    fn default() -> Self {
        StdoutSettings {
            enabled: true,
            format: StdoutFormat::Auto,
            color: Color::Auto,
            min_priority: Priority::Debug,
        }
    }
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            path: None,
            format: Format::Json,
            max_bytes: 100 << 20,
            keep: 5,
            min_priority: Priority::Debug,
        }
    }
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            address: None,
            facility: 16,
            min_priority: Priority::Debug,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            url: None,
            headers: BTreeMap::new(),
            batch: 1,
            ca_file: None,
            timeout_ms: 5000,
            format: Format::Json,
            min_priority: Priority::Debug,
        }
    }
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            dir: None,
            max_bytes: 256 << 20,
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            per_rule_per_second: 0.0,
            burst: 20,
            summary_interval_secs: 60,
        }
    }
}

impl Default for AggregationSettings {
    fn default() -> Self {
        AggregationSettings {
            window_secs: 0,
            max_keys: crate::alerts::aggregate::default_max_keys(),
        }
    }
}

impl Default for ProfilesSettings {
    fn default() -> Self {
        let c = ProfilesConfig::default();
        ProfilesSettings {
            enabled: c.enabled,
            state_dir: c.state_dir,
            learning_window_secs: c.learning_window.as_secs(),
            max_entries: c.max_entries,
            max_profiles: c.max_profiles,
            fleet: FleetSettings::default(),
        }
    }
}

impl Default for FleetSettings {
    fn default() -> Self {
        let c = FleetConfig::default();
        FleetSettings {
            url: c.url,
            bucket: c.bucket,
            replicas: c.replicas,
            credentials_file: c.credentials_file,
            user: c.user,
            password: c.password,
            token: c.token,
            ca_file: c.ca_file,
            cert_file: c.cert_file,
            key_file: c.key_file,
            max_bytes: c.max_bytes,
            first_event_wait_ms: c.first_event_wait.as_millis() as u64,
            max_pending: c.max_pending,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:9376".into(),
        }
    }
}

/// A setting whose value is well-formed YAML of the right type but still wrong.
pub struct Invalid {
    pub path: &'static str,
    pub message: String,
}

impl Settings {
    /// Checks what types alone cannot; every problem, each with its key.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |path: &'static str, message: String| out.push(Invalid { path, message });
        let rb = self.sensor.ring_buffer_bytes;
        if !rb.is_power_of_two() || rb < 4096 {
            bad(
                "sensor.ring_buffer_bytes",
                format!("{rb} is not a power of two of at least 4096"),
            );
        }
        let c = &self.context;
        for (path, socket, wanted) in [
            ("context.docker_socket", &c.docker_socket, c.docker),
            ("context.containerd_socket", &c.containerd_socket, true),
            ("context.crio_socket", &c.crio_socket, true),
            ("context.podman_socket", &c.podman_socket, true),
        ] {
            if wanted && socket.contains("://") && !socket.starts_with("unix://") {
                bad(
                    path,
                    format!(
                        "`{socket}`: only unix sockets are supported (unix:///run/x.sock); \
                         set it to \"\" to run without this runtime's metadata"
                    ),
                );
            }
        }
        if let Some(address) = &self.outputs.syslog.address
            && let Err(err) = crate::alerts::syslog::SyslogAddress::parse(address)
        {
            bad("outputs.syslog.address", err);
        }
        if let Some(url) = &self.outputs.http.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bad(
                "outputs.http.url",
                format!("`{url}`: expected an http:// or https:// URL"),
            );
        }
        if !self.outputs.http.format.is_json() {
            bad(
                "outputs.http.format",
                "HTTP sinks send JSON documents: json (falco), ocsf, ocsf-activity or ecs, \
                 not text"
                    .into(),
            );
        }
        if self.outputs.rate_limit.per_rule_per_second < 0.0 {
            bad(
                "outputs.rate_limit.per_rule_per_second",
                "must be 0 (no limit) or more".into(),
            );
        }
        if self.outputs.aggregation.window_secs > 0 && self.outputs.aggregation.max_keys == 0 {
            bad(
                "outputs.aggregation.max_keys",
                "must be at least 1 while aggregation is on (window_secs > 0)".into(),
            );
        }
        let p = &self.profiles;
        if p.enabled {
            for (path, value) in [
                (
                    "profiles.learning_window_secs",
                    p.learning_window_secs as usize,
                ),
                ("profiles.max_entries", p.max_entries),
                ("profiles.max_profiles", p.max_profiles),
            ] {
                if value == 0 {
                    bad(
                        path,
                        "must be at least 1 (set profiles.enabled: false to learn no \
                         profiles)"
                            .into(),
                    );
                }
            }
        }
        let f = &self.profiles.fleet;
        if !f.url.trim().is_empty() {
            for server in f.url.split(',').map(str::trim) {
                if let Err(err) = server.parse::<async_nats::ServerAddr>() {
                    bad(
                        "profiles.fleet.url",
                        format!(
                            "`{server}`: {err}; expected nats://HOST:PORT (tls:// for TLS), \
                             comma-separated"
                        ),
                    );
                }
            }
            if !(1..=5).contains(&f.replicas) {
                bad(
                    "profiles.fleet.replicas",
                    format!("{}: JetStream keeps 1 to 5 copies", f.replicas),
                );
            }
            if f.bucket.is_empty()
                || !f
                    .bucket
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                bad(
                    "profiles.fleet.bucket",
                    format!(
                        "`{}`: a bucket name is letters, digits, `_` and `-`",
                        f.bucket
                    ),
                );
            }
            if f.user.is_some() != f.password.is_some() {
                bad(
                    "profiles.fleet.password",
                    "user and password go together (set both, or neither)".into(),
                );
            }
            if f.cert_file.is_some() != f.key_file.is_some() {
                bad(
                    "profiles.fleet.key_file",
                    "cert_file and key_file go together (set both, or neither)".into(),
                );
            }
            if f.max_pending == 0 {
                bad(
                    "profiles.fleet.max_pending",
                    "must be at least 1: facts learned while the store is away wait there".into(),
                );
            }
        }
        if let Err(err) = self.listen_address() {
            bad("server.listen", err);
        }
        out
    }

    /// The operations endpoint's address; `None` when switched off.
    pub fn listen_address(&self) -> Result<Option<SocketAddr>, String> {
        let listen = self.server.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen.parse().map(Some).map_err(|_| {
            format!("`{listen}`: expected IP:PORT such as 127.0.0.1:9376 (empty: no server)")
        })
    }

    pub fn rule_matching(&self) -> RuleMatching {
        match self.rules.matching {
            Matching::All => RuleMatching::All,
            Matching::First => RuleMatching::First,
        }
    }

    pub fn stats_interval(&self) -> Duration {
        Duration::from_secs(self.sensor.stats_interval_secs.max(1))
    }

    pub fn sensor_config(&self, interest: Interest) -> SensorConfig {
        SensorConfig {
            interest,
            ring_buffer_bytes: self.sensor.ring_buffer_bytes,
            btf: self.sensor.btf.clone(),
            pin_root: None,
        }
    }

    /// Where `monitor run` pins its recorder (`None`: it does not).
    pub fn pin_root(&self) -> Option<PathBuf> {
        self.sensor.pin.then(|| self.sensor.pin_root.clone())
    }

    /// `None` when context is switched off.
    pub fn context_config(&self) -> Option<ContextConfig> {
        let c = &self.context;
        if !c.enabled {
            return None;
        }
        let unix = |socket: &str| socket.strip_prefix("unix://").unwrap_or(socket).to_string();
        let mut runtimes = Vec::new();
        if c.docker {
            runtimes.push(RuntimeSocket {
                runtime: Runtime::Docker,
                socket: unix(&c.docker_socket),
                required: true,
            });
        }
        for (runtime, socket) in [
            (Runtime::Containerd, &c.containerd_socket),
            (Runtime::CriO, &c.crio_socket),
            (Runtime::Podman, &c.podman_socket),
        ] {
            if !socket.is_empty() {
                runtimes.push(RuntimeSocket {
                    runtime,
                    socket: unix(socket),
                    required: false,
                });
            }
        }
        Some(ContextConfig {
            host_root: c.host_root.clone(),
            runtimes,
            process_cap: c.process_cap,
            exited_grace: Duration::from_secs(c.exited_grace_secs),
            ancestry_depth: c.ancestry_depth,
            metadata_wait: Duration::from_millis(c.metadata_wait_ms),
            exe_hash: c.exe_hash,
            container_stats_interval: Duration::from_secs(c.container_stats_interval_secs.max(1)),
            profiles: self.profiles.enabled.then(|| self.profiles_config()),
        })
    }

    pub fn profiles_config(&self) -> ProfilesConfig {
        let p = &self.profiles;
        ProfilesConfig {
            enabled: p.enabled,
            state_dir: p.state_dir.clone(),
            learning_window: Duration::from_secs(p.learning_window_secs),
            max_entries: p.max_entries,
            max_profiles: p.max_profiles,
            fleet: self.fleet_config(),
        }
    }

    /// `None` when no fleet store is set (`profiles.fleet.url` empty).
    pub fn fleet_config(&self) -> Option<FleetConfig> {
        let f = &self.profiles.fleet;
        (!f.url.trim().is_empty()).then(|| FleetConfig {
            url: f.url.trim().to_string(),
            bucket: f.bucket.clone(),
            replicas: f.replicas,
            credentials_file: f.credentials_file.clone(),
            user: f.user.clone(),
            password: f.password.clone(),
            token: f.token.clone(),
            ca_file: f.ca_file.clone(),
            cert_file: f.cert_file.clone(),
            key_file: f.key_file.clone(),
            max_bytes: f.max_bytes,
            first_event_wait: Duration::from_millis(f.first_event_wait_ms),
            max_pending: f.max_pending,
        })
    }

    pub fn alerts_config(&self) -> AlertsConfig {
        let o = &self.outputs;
        let spool = |name: &str| {
            o.spool.dir.as_ref().map(|dir| SpoolConfig {
                dir: dir.join(name),
                max_bytes: o.spool.max_bytes,
            })
        };
        let mut sinks = Vec::new();
        if o.stdout.enabled {
            let color = match o.stdout.color {
                Color::Auto => None,
                Color::Always => Some(true),
                Color::Never => Some(false),
            };
            let mut s = SinkConfig::new(SinkKind::Stdout { color });
            s.format = match o.stdout.format {
                StdoutFormat::Json => Some(Format::Json),
                StdoutFormat::Text => Some(Format::Text),
                StdoutFormat::Ocsf => Some(Format::Ocsf),
                StdoutFormat::OcsfActivity => Some(Format::OcsfActivity),
                StdoutFormat::Ecs => Some(Format::Ecs),
                StdoutFormat::Auto => None,
            };
            s.min_priority = o.stdout.min_priority;
            sinks.push(s);
        }
        if let Some(path) = &o.file.path {
            let mut s = SinkConfig::new(SinkKind::File {
                path: path.clone(),
                max_bytes: o.file.max_bytes,
                keep: o.file.keep,
            });
            s.min_priority = o.file.min_priority;
            s.format = Some(o.file.format);
            s.spool = spool("file");
            sinks.push(s);
        }
        if let Some(address) = &o.syslog.address {
            let mut s = SinkConfig::new(SinkKind::Syslog {
                address: address.clone(),
                facility: o.syslog.facility,
                structured_data: true,
                max_message_bytes: 8192,
            });
            s.min_priority = o.syslog.min_priority;
            s.spool = spool("syslog");
            sinks.push(s);
        }
        if let Some(url) = &o.http.url {
            let mut s = SinkConfig::new(SinkKind::Http {
                url: url.clone(),
                headers: o.http.headers.clone(),
                batch: o.http.batch.max(1),
                ca_file: o.http.ca_file.clone(),
                timeout_ms: o.http.timeout_ms,
            });
            s.min_priority = o.http.min_priority;
            s.format = Some(o.http.format);
            s.spool = spool("http");
            sinks.push(s);
        }
        let r = &o.rate_limit;
        let rate_limit = (r.per_rule_per_second > 0.0).then_some(RateLimitConfig {
            per_rule_per_second: r.per_rule_per_second,
            burst: r.burst,
            summary_interval_secs: r.summary_interval_secs,
        });
        let a = &o.aggregation;
        let aggregation = (a.window_secs > 0).then_some(AggregationConfig {
            window_secs: a.window_secs,
            max_keys: a.max_keys,
        });
        AlertsConfig {
            sinks,
            rate_limit,
            aggregation,
        }
    }
}

#[cfg(test)]
mod tests;

//! Command-line interface.
use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use monitor_common::DEFAULT_RING_BUFFER_BYTES;

use crate::{
    commands,
    context::ContextConfig,
    event::EventKind,
    sensor::{SensorConfig, btf::VMLINUX_BTF},
};

#[derive(Parser, Debug)]
#[command(
    name = "monitor",
    version,
    about = "eBPF runtime security monitor for containers",
    long_about = "eBPF runtime security monitor for containers.\n\n\
        Watches process execution, process lifecycle, network connections and file opens \
        in the kernel and reports them with their context. Needs root and a Linux kernel \
        >= 5.8 with BTF (/sys/kernel/btf/vmlinux)."
)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace) or a
    /// tracing filter such as `monitor=debug`.
    #[arg(long, global = true, env = "MONITOR_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: evaluate the rules on every event (with its process and
    /// container context) and write alerts as Falco-compatible JSON lines on stdout.
    Run(Box<RunArgs>),
    /// Stream kernel events as JSON lines on stdout (one object per event; schema in
    /// the README). Diagnostics and the final drop/receive totals go to stderr.
    Events(EventsArgs),
    /// Load the kernel programs, report which hook serves each event source on this
    /// kernel (and why any was refused), then exit.
    Probes(ProbesArgs),
    /// Validate, list and test rule files (Falco's rule format).
    Rules(commands::rules::RulesArgs),
    /// Evaluate a JSON-lines file of events against rules offline; print the alerts as
    /// JSON lines (rule, priority, output, output_fields, tags, time).
    Replay(commands::rules::ReplayArgs),
    /// Print the fields rules can use: name, type, description.
    Fields(commands::rules::FieldsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct KindsArgs {
    /// Event kinds to capture, comma-separated: exec, fork, exit, connect, open.
    /// Kinds not listed are switched off in the kernel and cost nothing.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "exec,fork,exit,connect,open"
    )]
    pub kinds: Vec<EventKind>,
}

#[derive(Args, Debug, Clone)]
pub struct SensorArgs {
    /// Size of the kernel ring buffer in bytes: a power of two, at least one page.
    /// Larger absorbs longer bursts; drops are counted and reported either way.
    #[arg(long, env = "MONITOR_RING_BUFFER_BYTES", default_value_t = DEFAULT_RING_BUFFER_BYTES)]
    pub ring_buffer_bytes: u32,

    /// Kernel BTF to compute struct offsets from. The default is the running kernel's
    /// own; point it at an external BTF file for kernels built without one.
    #[arg(long, env = "MONITOR_BTF", default_value = VMLINUX_BTF)]
    pub btf: PathBuf,
}

impl SensorArgs {
    /// The sensor settings, with every kind switched on.
    pub fn config(&self) -> SensorConfig {
        SensorConfig {
            kinds: crate::event::KindSet::all(),
            ring_buffer_bytes: self.ring_buffer_bytes,
            btf: self.btf.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ContextArgs {
    /// Print the sensor's events as they are, without process and container context
    /// (exec, fork and exit are then only captured when asked for).
    #[arg(long)]
    pub no_context: bool,

    /// Where the host's root filesystem is mounted: /proc, cgroupfs, passwd files and
    /// the Docker socket are read below it (`/host` in a DaemonSet pod).
    #[arg(long, env = "MONITOR_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,

    /// Docker API socket (a path, or `unix://PATH` as in DOCKER_HOST).
    #[arg(long, env = "DOCKER_HOST", default_value = "/var/run/docker.sock")]
    pub docker_socket: String,

    /// Do not ask the Docker API for container metadata (ids are still reported).
    #[arg(long)]
    pub no_docker: bool,

    /// Most processes tracked at once; beyond it the oldest exited, then the oldest
    /// live ones are evicted (and counted).
    #[arg(long, default_value_t = 65_536)]
    pub process_cap: usize,

    /// Seconds an exited process stays known, so late events still find it.
    #[arg(long, default_value_t = 30)]
    pub exited_grace_secs: u64,

    /// Ancestors reported per event.
    #[arg(long, default_value_t = 8)]
    pub ancestry_depth: usize,

    /// Longest an event waits for a new container's metadata, in milliseconds; a
    /// container not resolved by then gets its id now and its metadata on later events.
    #[arg(long, default_value_t = 200)]
    pub metadata_wait_ms: u64,

    /// Do not compute SHA-256 hashes of executed files.
    #[arg(long)]
    pub no_exe_hash: bool,
}

impl ContextArgs {
    /// `None` when context is switched off.
    pub fn config(&self) -> anyhow::Result<Option<ContextConfig>> {
        if self.no_context {
            return Ok(None);
        }
        let docker_socket = if self.no_docker {
            None
        } else if let Some(path) = self.docker_socket.strip_prefix("unix://") {
            Some(path.to_string())
        } else if self.docker_socket.contains("://") {
            anyhow::bail!(
                "docker socket `{}`: only unix sockets are supported (unix:///var/run/docker.sock); \
                 use --no-docker to run without container metadata",
                self.docker_socket
            );
        } else {
            Some(self.docker_socket.clone())
        };
        Ok(Some(ContextConfig {
            host_root: self.host_root.clone(),
            docker_socket,
            process_cap: self.process_cap,
            exited_grace: Duration::from_secs(self.exited_grace_secs),
            ancestry_depth: self.ancestry_depth,
            metadata_wait: Duration::from_millis(self.metadata_wait_ms),
            exe_hash: !self.no_exe_hash,
        }))
    }
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub kinds: KindsArgs,

    #[command(flatten)]
    pub sensor: SensorArgs,

    #[command(flatten)]
    pub context: ContextArgs,

    /// Seconds between drop reports on stderr (only printed when events were dropped).
    #[arg(long, default_value_t = 10)]
    pub stats_interval: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Rule files or folders, loaded in the order given (repeat the flag; a folder
    /// loads its *.yaml files by name). Default: /etc/monitor/rules, else ./rules.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// `all`: every matching rule raises an alert; `first`: only the first in load
    /// order.
    #[arg(long, default_value = "all", value_parser = ["all", "first"])]
    pub rule_matching: String,

    #[command(flatten)]
    pub sensor: SensorArgs,

    #[command(flatten)]
    pub context: ContextArgs,

    #[command(flatten)]
    pub alerts: AlertArgs,

    /// Seconds between drop reports on stderr (only printed when events were dropped).
    #[arg(long, default_value_t = 10)]
    pub stats_interval: u64,
}

/// Where `monitor run` sends alerts, besides stdout.
#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// Format of alerts on stdout: json (one object per line), text (one line per
    /// alert), or auto (colored text on a terminal, JSON otherwise).
    #[arg(long, default_value = "json", value_parser = ["json", "text", "auto"])]
    pub stdout_format: String,

    /// Also append alerts (JSON lines) to this file, rotated by size.
    #[arg(long, value_name = "PATH")]
    pub alert_file: Option<PathBuf>,

    /// Size past which the alert file is rotated (PATH.1, PATH.2, ...).
    #[arg(long, default_value_t = 100 << 20)]
    pub alert_file_max_bytes: u64,

    /// Rotated alert files kept.
    #[arg(long, default_value_t = 5)]
    pub alert_file_keep: u32,

    /// Also send alerts to syslog (RFC 5424): udp://HOST:PORT, tcp://HOST:PORT or
    /// unix:///dev/log.
    #[arg(long, value_name = "ADDRESS")]
    pub syslog: Option<String>,

    /// Syslog facility number (16 = local0).
    #[arg(long, default_value_t = 16)]
    pub syslog_facility: u8,

    /// Also POST alerts as JSON to this URL (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub http_url: Option<String>,

    /// Header added to every HTTP request, as `Name: value` (repeat the flag).
    #[arg(long, value_name = "HEADER")]
    pub http_header: Vec<String>,

    /// Alerts per HTTP request: 1 posts each alert as an object; more posts JSON
    /// arrays of up to N.
    #[arg(long, default_value_t = 1)]
    pub http_batch: usize,

    /// PEM CA certificates for https (default: the system's).
    #[arg(long, value_name = "PATH")]
    pub http_ca_file: Option<PathBuf>,

    /// Keep alerts a sink could not take in DIR/<sink> on disk, and deliver them when
    /// it is back (also after a restart).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Most bytes each sink's spool holds; alerts past it are dropped and counted.
    #[arg(long, default_value_t = 256 << 20)]
    pub spool_max_bytes: u64,

    /// Alerts per second each rule may raise (with --rate-limit-burst); the rest are
    /// counted and reported in a "monitor: alerts suppressed" alert. 0: no limit.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit: f64,

    /// Alerts a rule may raise at once under --rate-limit.
    #[arg(long, default_value_t = 20)]
    pub rate_limit_burst: u32,
}

impl AlertArgs {
    pub fn config(&self) -> anyhow::Result<crate::alerts::AlertsConfig> {
        use crate::alerts::{
            AlertsConfig, Format, RateLimitConfig, SinkConfig, SinkKind, SpoolConfig,
        };
        let spool = |name: &str| {
            self.spool_dir.as_ref().map(|dir| SpoolConfig {
                dir: dir.join(name),
                max_bytes: self.spool_max_bytes,
            })
        };
        let mut stdout = SinkConfig::new(SinkKind::Stdout { color: None });
        stdout.format = match self.stdout_format.as_str() {
            "json" => Some(Format::Json),
            "text" => Some(Format::Text),
            _ => None,
        };
        let mut sinks = vec![stdout];
        if let Some(path) = &self.alert_file {
            let mut s = SinkConfig::new(SinkKind::File {
                path: path.clone(),
                max_bytes: self.alert_file_max_bytes,
                keep: self.alert_file_keep,
            });
            s.spool = spool("file");
            sinks.push(s);
        }
        if let Some(address) = &self.syslog {
            let mut s = SinkConfig::new(SinkKind::Syslog {
                address: address.clone(),
                facility: self.syslog_facility,
                structured_data: true,
                max_message_bytes: 8192,
            });
            s.spool = spool("syslog");
            sinks.push(s);
        }
        if let Some(url) = &self.http_url {
            let mut headers = std::collections::BTreeMap::new();
            for h in &self.http_header {
                let (k, v) = h.split_once(':').ok_or_else(|| {
                    anyhow::anyhow!("--http-header `{h}`: expected `Name: value`")
                })?;
                headers.insert(k.trim().to_string(), v.trim().to_string());
            }
            let mut s = SinkConfig::new(SinkKind::Http {
                url: url.clone(),
                headers,
                batch: self.http_batch.max(1),
                ca_file: self.http_ca_file.clone(),
                timeout_ms: 5000,
            });
            s.spool = spool("http");
            sinks.push(s);
        }
        let rate_limit = (self.rate_limit > 0.0).then_some(RateLimitConfig {
            per_rule_per_second: self.rate_limit,
            burst: self.rate_limit_burst,
            summary_interval_secs: 60,
        });
        Ok(AlertsConfig { sinks, rate_limit })
    }
}

#[derive(Args, Debug)]
pub struct ProbesArgs {
    #[command(flatten)]
    pub sensor: SensorArgs,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Run(args) => commands::run::run(*args),
        Command::Events(args) => commands::events::run(args),
        Command::Probes(args) => commands::probes::run(args),
        Command::Rules(args) => commands::rules::run(args),
        Command::Replay(args) => commands::rules::replay(args),
        Command::Fields(args) => commands::rules::fields_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("monitor: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::SinkKind;

    #[test]
    fn alerts_cli_flags_make_sinks() {
        let cli = Cli::try_parse_from([
            "monitor",
            "run",
            "--alert-file",
            "/var/log/a.log",
            "--syslog",
            "tcp://127.0.0.1:601",
            "--http-url",
            "https://127.0.0.1:2801/",
            "--http-header",
            "Authorization: Bearer x:y",
            "--http-batch",
            "50",
            "--spool-dir",
            "/var/spool/monitor",
            "--rate-limit",
            "5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        let c = args.alerts.config().unwrap();
        let kinds: Vec<&str> = c.sinks.iter().map(|s| s.type_name()).collect();
        assert_eq!(kinds, ["stdout", "file", "syslog", "http"]);
        assert_eq!(c.sinks[0].format, Some(crate::alerts::Format::Json));
        assert!(c.sinks[0].spool.is_none());
        assert_eq!(
            c.sinks[3].spool.as_ref().unwrap().dir,
            PathBuf::from("/var/spool/monitor/http")
        );
        let SinkKind::Http { headers, batch, .. } = &c.sinks[3].kind else {
            panic!("not http");
        };
        assert_eq!(headers["Authorization"], "Bearer x:y");
        assert_eq!(*batch, 50);
        let r = c.rate_limit.unwrap();
        assert_eq!((r.per_rule_per_second, r.burst), (5.0, 20));
    }
}

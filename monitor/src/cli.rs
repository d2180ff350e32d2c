//! The command line: every subcommand's arguments and what each flag overrides in
//! the settings. `commands::main` parses it and runs the subcommand; nothing here
//! depends on `commands`.
use std::path::PathBuf;

use crate::{
    config::{Override, SettingsSource},
    event::EventKind,
};
use clap::{Args, Parser, Subcommand};

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
    /// [config: log; env: MONITOR_LOG; default: info]
    #[arg(long, global = true)]
    pub log: Option<String>,

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
    Events(Box<EventsArgs>),
    /// Load the kernel programs, report which hook serves each event source on this
    /// kernel (and why any was refused), then exit. The optional enhanced sources
    /// (`file_open`, `socket_connect`, `bprm_check_security`) try a BPF LSM program,
    /// then fentry on the `security_*` function, with `bpf_d_path` before the dentry
    /// walk where a path is read; `(skipped)` means the tracepoints serve alone.
    /// Then the records the kernel lost since the recorder was made (a pinned recorder
    /// an agent left counts from its start), by kind and cause: `ring_full`,
    /// `scratch_busy`, `read_failed`, `pending_full`, `missed_hook` (see
    /// docs/operations.md, `kernel_faults_total`).
    Probes(ProbesArgs),
    /// Validate, list and test rule files (Falco's rule format).
    Rules(RulesArgs),
    /// Evaluate a JSON-lines file of events against rules offline; print the alerts as
    /// JSON lines (rule, priority, output, output_fields, tags, time).
    Replay(ReplayArgs),
    /// Print the fields rules can use: name, type, description.
    Fields(FieldsArgs),
    /// Check the settings (file, MONITOR_* variables) and show where each value came
    /// from.
    Config(ConfigCmdArgs),
    /// List, show, reset and freeze the behaviour each workload learned (the
    /// profiles in the state directory, or with --fleet those the fleet shares).
    Profiles(ProfilesCmdArgs),
    /// Stop the running daemon (the agent reading the pinned recorder) and wait for
    /// it to exit. With --keep-recording its kernel side keeps recording for the next
    /// agent (a restart or upgrade); without, the recorder goes with it.
    Stop(StopArgs),
    /// Remove every pinned recorder (programs, ring buffer, tables) a daemon left in
    /// the kernel with --keep-recording. Refused while a daemon runs: stop it first.
    Uninstall(UninstallArgs),
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Leave the recorder running: what happens until the next agent starts is read
    /// by it (SIGUSR2 to the daemon does the same).
    #[arg(long)]
    pub keep_recording: bool,

    /// Where the daemon pins its recorder. [config: sensor.pin_root; default:
    /// /sys/fs/bpf/monitor]
    #[arg(long, value_name = "DIR")]
    pub pin_root: Option<PathBuf>,

    /// Seconds to wait for the daemon to exit.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Where the recorders are pinned. [config: sensor.pin_root; default:
    /// /sys/fs/bpf/monitor]
    #[arg(long, value_name = "DIR")]
    pub pin_root: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct KindsArgs {
    /// Event kinds to capture, comma-separated: exec, fork, exit, connect, open,
    /// syscall (ptrace, symlink, link, init_module, socket, dup and their variants).
    /// Kinds not listed are switched off in the kernel and cost nothing.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "exec,fork,exit,connect,open,syscall"
    )]
    pub kinds: Vec<EventKind>,
}

/// Where the settings come from, for `run` and `events`: the file, then `MONITOR_*`
/// variables, then flags.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Config file (YAML). Default: /etc/monitor/monitor.yaml when it exists, else
    /// built-in defaults. Every key can also be set as MONITOR_<SECTION>_<KEY>
    /// (e.g. MONITOR_SERVER_LISTEN); flags win over variables, variables over the file.
    #[arg(long, env = "MONITOR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn source(&self) -> SettingsSource {
        SettingsSource {
            explicit: self.config.clone(),
        }
    }
}

/// Adds `value` (when given) as the flag's override of the dotted key.
pub(crate) fn given<T: serde::Serialize>(
    out: &mut Vec<Override>,
    path: &'static str,
    flag: &'static str,
    value: Option<T>,
) {
    if let Some(v) = value {
        out.push(Override {
            path,
            value: serde_json::to_value(v).expect("flag values serialize"),
            flag,
        });
    }
}

#[derive(Args, Debug, Clone)]
pub struct SensorArgs {
    /// Size of the kernel ring buffer in bytes: a power of two, at least one page.
    /// Larger absorbs longer bursts; drops are counted and reported either way.
    /// [config: sensor.ring_buffer_bytes; default: 16777216]
    #[arg(long)]
    pub ring_buffer_bytes: Option<u32>,

    /// Kernel BTF to compute struct offsets from. The default is the running kernel's
    /// own; point it at an external BTF file for kernels built without one.
    /// [config: sensor.btf; default: /sys/kernel/btf/vmlinux]
    #[arg(long)]
    pub btf: Option<PathBuf>,

    /// Seconds between drop reports on stderr (only printed when events were dropped).
    /// [config: sensor.stats_interval_secs; default: 10]
    #[arg(long)]
    pub stats_interval: Option<u64>,

    /// `monitor run` only: send every event to user space, instead of letting the
    /// kernel drop those no active rule can match (`monitor rules list
    /// --kernel-filter` shows what it drops; `monitor events` never filters).
    /// [config: sensor.kernel_filter: false]
    #[arg(long)]
    pub no_kernel_filter: bool,

    /// `monitor run` only: do not pin the recorder in bpffs. The kernel's programs,
    /// ring buffer and tables then end with the agent, and a restart is a blind spot.
    /// [config: sensor.pin: false]
    #[arg(long)]
    pub no_pin: bool,

    /// `monitor run` only: where the recorder is pinned (a directory in bpffs; bpffs
    /// is mounted at its parent when it is not there yet). One agent per directory.
    /// [config: sensor.pin_root; default: /sys/fs/bpf/monitor]
    #[arg(long, value_name = "DIR")]
    pub pin_root: Option<PathBuf>,

    /// `monitor run` only: SIGINT and SIGTERM leave the pinned recorder running for
    /// the next agent (a rolling update); SIGUSR2 always does. Without it a stop
    /// removes the recorder, and `monitor uninstall` removes a kept one.
    /// [config: sensor.keep_recording: true]
    #[arg(long)]
    pub keep_recording: bool,

    /// `monitor run` only: where the daemon notes, every second, until when it
    /// recorded. A daemon that starts without a recorder to adopt reports the time
    /// since that note as a blind spot (log, totals, metrics).
    /// [config: sensor.last_seen_file; default: /run/monitor/last-seen]
    #[arg(long, value_name = "PATH")]
    pub last_seen_file: Option<PathBuf>,
}

impl SensorArgs {
    pub fn overrides(&self, out: &mut Vec<Override>) {
        given(
            out,
            "sensor.ring_buffer_bytes",
            "--ring-buffer-bytes",
            self.ring_buffer_bytes,
        );
        given(out, "sensor.btf", "--btf", self.btf.as_ref());
        given(
            out,
            "sensor.stats_interval_secs",
            "--stats-interval",
            self.stats_interval,
        );
        given(
            out,
            "sensor.kernel_filter",
            "--no-kernel-filter",
            self.no_kernel_filter.then_some(false),
        );
        given(out, "sensor.pin", "--no-pin", self.no_pin.then_some(false));
        given(out, "sensor.pin_root", "--pin-root", self.pin_root.as_ref());
        given(
            out,
            "sensor.keep_recording",
            "--keep-recording",
            self.keep_recording.then_some(true),
        );
        given(
            out,
            "sensor.last_seen_file",
            "--last-seen-file",
            self.last_seen_file.as_ref(),
        );
    }
}

#[derive(Args, Debug, Clone)]
pub struct ContextArgs {
    /// Print the sensor's events as they are, without process and container context
    /// (exec, fork and exit are then only captured when asked for).
    /// [config: context.enabled: false]
    #[arg(long)]
    pub no_context: bool,

    /// Where the host's root filesystem is mounted: /proc, cgroupfs, passwd files and
    /// the Docker socket are read below it (`/host` in a DaemonSet pod).
    /// [config: context.host_root; default: /]
    #[arg(long)]
    pub host_root: Option<PathBuf>,

    /// Docker API socket (a path, or `unix://PATH` as in DOCKER_HOST).
    /// [config: context.docker_socket; default: /var/run/docker.sock]
    #[arg(long)]
    pub docker_socket: Option<String>,

    /// Do not ask the Docker API for container metadata (ids are still reported).
    /// [config: context.docker: false]
    #[arg(long)]
    pub no_docker: bool,

    /// containerd's socket: its own API for `ctr`/nerdctl containers, its CRI plugin
    /// for Kubernetes pods. Watched when the socket exists at start; "" never.
    /// [config: context.containerd_socket; default: /run/containerd/containerd.sock]
    #[arg(long)]
    pub containerd_socket: Option<String>,

    /// CRI-O's socket, for Kubernetes pods on CRI-O nodes. Watched when it exists at
    /// start; "" never. [config: context.crio_socket; default: /run/crio/crio.sock]
    #[arg(long)]
    pub crio_socket: Option<String>,

    /// Podman's API socket (`podman system service`). Watched when it exists at start;
    /// "" never. [config: context.podman_socket; default: /run/podman/podman.sock]
    #[arg(long)]
    pub podman_socket: Option<String>,

    /// Most processes tracked at once; beyond it the oldest exited, then the oldest
    /// live ones are evicted (and counted). [config: context.process_cap; default: 65536]
    #[arg(long)]
    pub process_cap: Option<usize>,

    /// Seconds an exited process stays known, so late events still find it.
    /// [config: context.exited_grace_secs; default: 30]
    #[arg(long)]
    pub exited_grace_secs: Option<u64>,

    /// Ancestors reported per event. [config: context.ancestry_depth; default: 8]
    #[arg(long)]
    pub ancestry_depth: Option<usize>,

    /// Longest an event is held for its new container's metadata, in milliseconds. A
    /// new container's events wait (other containers' do not) until a runtime has
    /// described it, or says it does not know it, or this bound passes; then they go
    /// out with what is known. [config: context.metadata_wait_ms; default: 2000]
    #[arg(long)]
    pub metadata_wait_ms: Option<u64>,

    /// Seconds between two `container_stats` events of a running container (its CPU,
    /// memory and pids from its cgroups, and its event rates): made only when a rule
    /// or `--kinds` asks for them. [config: context.container_stats_interval_secs;
    /// default: 10]
    #[arg(long)]
    pub container_stats_interval: Option<u64>,

    /// Do not compute SHA-256 hashes of executed files. [config: context.exe_hash: false]
    #[arg(long)]
    pub no_exe_hash: bool,
}

impl ContextArgs {
    pub fn overrides(&self, out: &mut Vec<Override>) {
        given(
            out,
            "context.enabled",
            "--no-context",
            self.no_context.then_some(false),
        );
        given(
            out,
            "context.host_root",
            "--host-root",
            self.host_root.as_ref(),
        );
        given(
            out,
            "context.docker_socket",
            "--docker-socket",
            self.docker_socket.as_ref(),
        );
        given(
            out,
            "context.docker",
            "--no-docker",
            self.no_docker.then_some(false),
        );
        given(
            out,
            "context.containerd_socket",
            "--containerd-socket",
            self.containerd_socket.as_ref(),
        );
        given(
            out,
            "context.crio_socket",
            "--crio-socket",
            self.crio_socket.as_ref(),
        );
        given(
            out,
            "context.podman_socket",
            "--podman-socket",
            self.podman_socket.as_ref(),
        );
        given(
            out,
            "context.process_cap",
            "--process-cap",
            self.process_cap,
        );
        given(
            out,
            "context.exited_grace_secs",
            "--exited-grace-secs",
            self.exited_grace_secs,
        );
        given(
            out,
            "context.ancestry_depth",
            "--ancestry-depth",
            self.ancestry_depth,
        );
        given(
            out,
            "context.metadata_wait_ms",
            "--metadata-wait-ms",
            self.metadata_wait_ms,
        );
        given(
            out,
            "context.container_stats_interval_secs",
            "--container-stats-interval",
            self.container_stats_interval,
        );
        given(
            out,
            "context.exe_hash",
            "--no-exe-hash",
            self.no_exe_hash.then_some(false),
        );
    }
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub kinds: KindsArgs,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub sensor: SensorArgs,

    #[command(flatten)]
    pub context: ContextArgs,
}

impl EventsArgs {
    pub fn overrides(&self) -> Vec<Override> {
        let mut out = Vec::new();
        self.sensor.overrides(&mut out);
        self.context.overrides(&mut out);
        out
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Rule files or folders, loaded in the order given (repeat the flag; a folder
    /// loads its *.yaml files by name). [config: rules.paths; default:
    /// /etc/monitor/rules, else ./rules]
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// `all`: every matching rule raises an alert; `first`: only the first in load
    /// order. [config: rules.matching; default: all]
    #[arg(long, value_parser = ["all", "first"])]
    pub rule_matching: Option<String>,

    /// Reload when a rule file or the config file changes (SIGHUP always reloads).
    /// [config: rules.watch; default: false]
    #[arg(long)]
    pub watch: bool,

    /// Every response runs as dry-run: alerts say `would-kill`, nothing is acted on
    /// (the kill switch; `responses.enforce: false` in the config does the same and
    /// is honored on reload). [config: responses.enforce: false]
    #[arg(long)]
    pub no_enforce: bool,

    /// Address of the operations endpoint (/metrics, /healthz, /readyz); "" turns it
    /// off. [config: server.listen; default: 127.0.0.1:9376]
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,

    #[command(flatten)]
    pub sensor: SensorArgs,

    #[command(flatten)]
    pub context: ContextArgs,

    #[command(flatten)]
    pub alerts: AlertArgs,

    #[command(flatten)]
    pub profiles: ProfileArgs,
}

/// Learned behaviour profiles, for `monitor run`.
#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Keep each workload's learned profile in DIR (one JSON file per workload), so
    /// that what was learned survives restarts; `monitor profiles` reads it there.
    /// [config: profiles.state_dir; default: /var/lib/monitor/profiles]
    #[arg(long, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,

    /// Seconds of observed runtime (time a workload has a container running) during
    /// which its profile learns; then it is frozen and what it lacks is new.
    /// [config: profiles.learning_window_secs; default: 3600]
    #[arg(long, value_name = "SECS")]
    pub learning_window: Option<u64>,

    /// Learn no profiles and leave the state directory alone.
    /// [config: profiles.enabled: false]
    #[arg(long)]
    pub no_profiles: bool,

    /// Share profiles with the other nodes through NATS JetStream at URL
    /// (`nats://HOST:4222`, comma-separated for a cluster): one learning window for
    /// the fleet, freezes and resets fleet-wide, the local copy kept for outages.
    /// [config: profiles.fleet.url; default: "" (this node only)]
    #[arg(long, value_name = "URL")]
    pub fleet_url: Option<String>,
}

impl ProfileArgs {
    pub fn overrides(&self, out: &mut Vec<Override>) {
        given(
            out,
            "profiles.state_dir",
            "--profiles-dir",
            self.profiles_dir.as_ref(),
        );
        given(
            out,
            "profiles.learning_window_secs",
            "--learning-window",
            self.learning_window,
        );
        given(
            out,
            "profiles.enabled",
            "--no-profiles",
            self.no_profiles.then_some(false),
        );
        given(
            out,
            "profiles.fleet.url",
            "--fleet-url",
            self.fleet_url.as_ref(),
        );
    }
}

impl RunArgs {
    pub fn overrides(&self) -> Vec<Override> {
        let mut out = Vec::new();
        given(
            &mut out,
            "rules.paths",
            "--rules",
            (!self.rules.is_empty()).then_some(&self.rules),
        );
        given(
            &mut out,
            "rules.matching",
            "--rule-matching",
            self.rule_matching.as_ref(),
        );
        given(
            &mut out,
            "rules.watch",
            "--watch",
            self.watch.then_some(true),
        );
        given(
            &mut out,
            "responses.enforce",
            "--no-enforce",
            self.no_enforce.then_some(false),
        );
        given(&mut out, "server.listen", "--listen", self.listen.as_ref());
        self.sensor.overrides(&mut out);
        self.context.overrides(&mut out);
        self.alerts.overrides(&mut out);
        self.profiles.overrides(&mut out);
        out
    }
}

/// The alert formats that are JSON documents, as flags and config name them.
const DOCUMENT_FORMATS: [&str; 5] = ["json", "falco", "ocsf", "ocsf-activity", "ecs"];

/// Where `monitor run` sends alerts, besides stdout.
#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// Format of alerts on stdout: json (Falco's alert, an object per line; also
    /// `falco`), text (a line per alert), ocsf (OCSF 1.8.0 Detection Finding),
    /// ocsf-activity (OCSF activity class of the event), ecs (ECS 9.4.0), or auto
    /// (colored text on a terminal, JSON otherwise).
    /// [config: outputs.stdout.format; default: auto]
    #[arg(long, value_parser = DOCUMENT_FORMATS.iter().chain(&["text", "auto"]).copied().collect::<Vec<_>>())]
    pub stdout_format: Option<String>,

    /// Color the priority of text alerts on stdout: auto (on a terminal, unless
    /// NO_COLOR is set), always or never. [config: outputs.stdout.color; default: auto]
    #[arg(long, value_parser = ["auto", "always", "never"])]
    pub color: Option<String>,

    /// Also append alerts (JSON lines) to this file, rotated by size.
    /// [config: outputs.file.path]
    #[arg(long, value_name = "PATH")]
    pub alert_file: Option<PathBuf>,

    /// Format of the alert file: json (also `falco`), text, ocsf, ocsf-activity or
    /// ecs (as --stdout-format). [config: outputs.file.format; default: json]
    #[arg(long, value_parser = DOCUMENT_FORMATS.iter().chain(&["text"]).copied().collect::<Vec<_>>())]
    pub alert_file_format: Option<String>,

    /// Size past which the alert file is rotated (PATH.1, PATH.2, ...).
    /// [config: outputs.file.max_bytes; default: 104857600]
    #[arg(long)]
    pub alert_file_max_bytes: Option<u64>,

    /// Rotated alert files kept. [config: outputs.file.keep; default: 5]
    #[arg(long)]
    pub alert_file_keep: Option<u32>,

    /// Also send alerts to syslog (RFC 5424): udp://HOST:PORT, tcp://HOST:PORT or
    /// unix:///dev/log. [config: outputs.syslog.address]
    #[arg(long, value_name = "ADDRESS")]
    pub syslog: Option<String>,

    /// Syslog facility number (16 = local0). [config: outputs.syslog.facility;
    /// default: 16]
    #[arg(long)]
    pub syslog_facility: Option<u8>,

    /// Also POST alerts as JSON to this URL (http:// or https://).
    /// [config: outputs.http.url]
    #[arg(long, value_name = "URL")]
    pub http_url: Option<String>,

    /// Header added to every HTTP request, as `Name: value` (repeat the flag).
    /// [config: outputs.http.headers]
    #[arg(long, value_name = "HEADER", value_parser = parse_header)]
    pub http_header: Vec<(String, String)>,

    /// Alerts per HTTP request: 1 posts each alert as an object; more posts JSON
    /// arrays of up to N. [config: outputs.http.batch; default: 1]
    #[arg(long)]
    pub http_batch: Option<usize>,

    /// PEM CA certificates for https (default: the system's).
    /// [config: outputs.http.ca_file]
    #[arg(long, value_name = "PATH")]
    pub http_ca_file: Option<PathBuf>,

    /// The document each HTTP alert is: json (Falco's alert; also `falco`), ocsf,
    /// ocsf-activity or ecs (as --stdout-format). [config: outputs.http.format;
    /// default: json]
    #[arg(long, value_parser = DOCUMENT_FORMATS.to_vec())]
    pub http_format: Option<String>,

    /// Keep alerts a sink could not take in DIR/<sink> on disk, and deliver them when
    /// it is back (also after a restart). [config: outputs.spool.dir]
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Most bytes each sink's spool holds; alerts past it are dropped and counted.
    /// [config: outputs.spool.max_bytes; default: 268435456]
    #[arg(long)]
    pub spool_max_bytes: Option<u64>,

    /// Alerts per second each rule may raise (with --rate-limit-burst); the rest are
    /// counted and reported in a "monitor: alerts suppressed" alert. 0: no limit.
    /// [config: outputs.rate_limit.per_rule_per_second; default: 0]
    #[arg(long)]
    pub rate_limit: Option<f64>,

    /// Alerts a rule may raise at once under --rate-limit.
    /// [config: outputs.rate_limit.burst; default: 20]
    #[arg(long)]
    pub rate_limit_burst: Option<u32>,

    /// Count repeats of an alert (same rule, container, executable and output
    /// fields, times and ids aside) for this many seconds after the first, which goes
    /// out at once; then send one summary with the count, first and last time. 0: off.
    /// [config: outputs.aggregation.window_secs; default: 0]
    #[arg(long, value_name = "SECS")]
    pub aggregate_window: Option<u64>,
}

/// `Name: value`, as on the wire.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{text}`: expected `Name: value`")),
    }
}

impl AlertArgs {
    pub fn overrides(&self, out: &mut Vec<Override>) {
        given(
            out,
            "outputs.stdout.format",
            "--stdout-format",
            self.stdout_format.as_ref(),
        );
        given(out, "outputs.stdout.color", "--color", self.color.as_ref());
        given(
            out,
            "outputs.file.path",
            "--alert-file",
            self.alert_file.as_ref(),
        );
        given(
            out,
            "outputs.file.max_bytes",
            "--alert-file-max-bytes",
            self.alert_file_max_bytes,
        );
        given(
            out,
            "outputs.file.keep",
            "--alert-file-keep",
            self.alert_file_keep,
        );
        given(
            out,
            "outputs.syslog.address",
            "--syslog",
            self.syslog.as_ref(),
        );
        given(
            out,
            "outputs.syslog.facility",
            "--syslog-facility",
            self.syslog_facility,
        );
        given(
            out,
            "outputs.http.url",
            "--http-url",
            self.http_url.as_ref(),
        );
        let headers: serde_json::Map<String, serde_json::Value> = self
            .http_header
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().into()))
            .collect();
        given(
            out,
            "outputs.http.headers",
            "--http-header",
            (!headers.is_empty()).then_some(headers),
        );
        given(out, "outputs.http.batch", "--http-batch", self.http_batch);
        given(
            out,
            "outputs.http.ca_file",
            "--http-ca-file",
            self.http_ca_file.as_ref(),
        );
        given(
            out,
            "outputs.http.format",
            "--http-format",
            self.http_format.as_ref(),
        );
        given(
            out,
            "outputs.spool.dir",
            "--spool-dir",
            self.spool_dir.as_ref(),
        );
        given(
            out,
            "outputs.spool.max_bytes",
            "--spool-max-bytes",
            self.spool_max_bytes,
        );
        given(
            out,
            "outputs.rate_limit.per_rule_per_second",
            "--rate-limit",
            self.rate_limit,
        );
        given(
            out,
            "outputs.rate_limit.burst",
            "--rate-limit-burst",
            self.rate_limit_burst,
        );
        given(
            out,
            "outputs.aggregation.window_secs",
            "--aggregate-window",
            self.aggregate_window,
        );
    }
}

#[derive(Args, Debug)]
pub struct ProbesArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub sensor: SensorArgs,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ProbesArgs {
    pub fn overrides(&self) -> Vec<Override> {
        let mut out = Vec::new();
        self.sensor.overrides(&mut out);
        out
    }
}

// The subcommands' own arguments.

#[derive(Args, Debug)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load rule files and folders; print every error as `file:line:col: rule 'NAME':
    /// message` and exit non-zero when there is any.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print every rule: active (with its event types), disabled, or skipped and why.
    List {
        /// Default: /etc/monitor/rules, else ./rules (as `monitor run`).
        #[arg(env = "MONITOR_RULES")]
        paths: Vec<PathBuf>,
        /// Then print the kernel filter `monitor run` derives from these rules: per
        /// event kind and scope (host, containers), what the kernel passes to user
        /// space, and which rule keeps each fact open.
        #[arg(long)]
        kernel_filter: bool,
        /// Then print every response: its action and mode, the enforcement point it
        /// gets on this node and why, its scope and the active rules it covers.
        #[arg(long)]
        responses: bool,
    },
    /// Run the rule test fixtures (`*.fixtures.yaml`) beside the given rule files or in
    /// the given folders; exit non-zero when one fails.
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// JSON-lines file of events (`-` for stdin), as `monitor events` prints them.
    pub file: PathBuf,
    /// Rule files or folders.
    #[arg(long, required = true, num_args = 1..)]
    pub rules: Vec<PathBuf>,
    /// `all`: every matching rule alerts; `first`: only the first in load order.
    #[arg(long, default_value = "all", value_parser = ["all", "first"])]
    pub rule_matching: String,
    /// The alerts' `hostname` (default: this machine's, as `monitor run` gives it).
    #[arg(long)]
    pub hostname: Option<String>,
    /// What to print for each alert, as a sink of that format sends it: `json` (the
    /// Falco alert objects `monitor run` sends, one per line; also `falco`), `text`
    /// (its one-line text form), `ocsf` (OCSF 1.8.0 Detection Finding),
    /// `ocsf-activity` (OCSF activity class of the event) or `ecs` (ECS 9.4.0).
    #[arg(long, value_enum, default_value_t = crate::alerts::Format::Json)]
    pub format: crate::alerts::Format,
}

#[derive(Args, Debug)]
pub struct FieldsArgs {
    /// Print the catalog as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,

    /// Print the catalog as a Markdown table (the field reference in docs/rules.md;
    /// `cargo xtask docs` puts it there).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Args, Debug)]
pub struct ConfigCmdArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check the config file and MONITOR_* variables, and load the rules they name:
    /// every problem as `file:line:col: key: message`; exit 1 when there is any.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Check the settings only, not the rules they name (e.g. a config meant for
        /// an image whose rule folders are not on this machine).
        #[arg(long)]
        settings_only: bool,
    },
    /// Print every setting with its value and where it came from (default, file
    /// position, variable).
    Show(ConfigArgs),
}

#[derive(Args, Debug)]
pub struct ProfilesCmdArgs {
    /// Config file (YAML) whose `profiles` section names the state directory and the
    /// learning window. Default: /etc/monitor/monitor.yaml when it exists.
    #[arg(long, env = "MONITOR_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// The state directory holding the profiles (one JSON file per workload).
    /// [config: profiles.state_dir; default: /var/lib/monitor/profiles]
    #[arg(long, value_name = "DIR", global = true)]
    pub profiles_dir: Option<PathBuf>,

    /// The learning window, for showing how much of it has passed.
    /// [config: profiles.learning_window_secs; default: 3600]
    #[arg(long, value_name = "SECS", global = true)]
    pub learning_window: Option<u64>,

    /// Act on the fleet's profiles in the fleet store rather than on this node's
    /// state directory: `freeze --fleet` and `reset --fleet` reach every agent
    /// sharing the store within seconds.
    #[arg(long, global = true)]
    pub fleet: bool,

    /// The fleet store (NATS JetStream), for --fleet.
    /// [config: profiles.fleet.url]
    #[arg(long, value_name = "URL", global = true)]
    pub fleet_url: Option<String>,

    #[command(subcommand)]
    pub command: ProfilesCommand,
}

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// One line per workload: learning or frozen, observed runtime of the window,
    /// entries per set (executables, destinations, listening ports, written
    /// directories) and entries refused because a set was full.
    List,
    /// Every entry of one workload's profile, grouped by set.
    Show {
        /// As `list` prints it: deployment/NAMESPACE/NAME, image/REPOSITORY, ...
        workload: String,
    },
    /// Forget what a workload learned: it learns again from nothing, with a new
    /// window.
    Reset {
        /// As `list` prints it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        workload: Option<String>,
        /// Every workload.
        #[arg(long)]
        all: bool,
    },
    /// Stop learning now: from here on, what the profile lacks is new.
    Freeze {
        /// As `list` prints it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        workload: Option<String>,
        /// Every workload.
        #[arg(long)]
        all: bool,
    },
}

impl ProfilesCmdArgs {
    pub fn overrides(&self) -> Vec<Override> {
        let mut out = Vec::new();
        given(
            &mut out,
            "profiles.state_dir",
            "--profiles-dir",
            self.profiles_dir.as_ref(),
        );
        given(
            &mut out,
            "profiles.learning_window_secs",
            "--learning-window",
            self.learning_window,
        );
        given(
            &mut out,
            "profiles.fleet.url",
            "--fleet-url",
            self.fleet_url.as_ref(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::SinkKind;
    use crate::config;

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
            "--aggregate-window",
            "30",
            "--color",
            "never",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        let source = SettingsSource {
            explicit: Some("/dev/null".into()),
        };
        let loaded = config::load(&source, [], &args.overrides()).unwrap();
        assert_eq!(
            loaded.origin("outputs.http.url"),
            config::Origin::Flag("--http-url")
        );
        let c = loaded.settings.alerts_config();
        let kinds: Vec<&str> = c.sinks.iter().map(|s| s.type_name()).collect();
        assert_eq!(kinds, ["stdout", "file", "syslog", "http"]);
        assert_eq!(
            c.sinks[0].format, None,
            "auto: text on a terminal, else JSON"
        );
        assert!(c.sinks[0].spool.is_none());
        assert!(matches!(
            c.sinks[0].kind,
            SinkKind::Stdout { color: Some(false) }
        ));
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
        let a = c.aggregation.unwrap();
        assert_eq!((a.window_secs, a.max_keys), (30, 10_000));
    }

    #[test]
    fn profiles_cli_flags_make_the_profiles_config() {
        let source = SettingsSource {
            explicit: Some("/dev/null".into()),
        };
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Run(args) = cli.command else {
                panic!("not run");
            };
            config::load(&source, [], &args.overrides()).unwrap()
        };
        let loaded = parse(&[
            "monitor",
            "run",
            "--profiles-dir",
            "/srv/profiles",
            "--learning-window",
            "600",
        ]);
        assert_eq!(
            loaded.origin("profiles.state_dir"),
            config::Origin::Flag("--profiles-dir")
        );
        let c = loaded.settings.profiles_config();
        assert!(c.enabled);
        assert_eq!(c.state_dir, Some(PathBuf::from("/srv/profiles")));
        assert_eq!(c.learning_window, std::time::Duration::from_secs(600));
        assert_eq!((c.max_entries, c.max_profiles), (512, 1024));
        let off = parse(&["monitor", "run", "--no-profiles"]);
        assert!(!off.settings.profiles_config().enabled);
        let defaults = parse(&["monitor", "run"]).settings.profiles_config();
        assert_eq!(defaults, crate::profiles::ProfilesConfig::default());
    }
}

//! `monitor run`: the daemon. Kernel events with their context go through the rules;
//! what matches goes to the alert sinks (stdout JSON by default; files, syslog, HTTP
//! as configured) as Falco-compatible alerts. Metrics and health on the operations
//! endpoint; SIGHUP reloads; SIGTERM/SIGINT detach, drain, flush and exit 0.
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};

use crate::{
    alerts::Dispatcher,
    cli::RunArgs,
    commands::rules::{load, rule_paths},
    config::Loaded,
    context::host::HostRoot,
    daemon::Daemon,
    event::EventKind,
    pipeline::{self, PipelineConfig},
    server::{self, Metrics},
    signals,
};

pub fn run(args: RunArgs, loaded: Loaded) -> Result<()> {
    // First: a signal during the rest of start-up must stop the daemon cleanly.
    let (runtime, mut signals) = signals::runtime_with_signals()?;
    let settings = loaded.settings;
    if let Some(file) = &loaded.file {
        tracing::info!("settings from {}", file.display());
    }
    let paths = rule_paths(&settings.rules.paths)?;
    let mut engine = load(&paths).context("invalid rules, not starting")?;
    engine.set_rule_matching(settings.rule_matching());
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = settings.listen_address().map_err(|e| anyhow!(e))? {
        server::start(address, metrics.clone())?;
    }
    // Only what the rules need runs in the kernel (plus what the context lives on,
    // which `PipelineConfig::new` adds).
    let mut sensor = settings.sensor_config(engine.kernel_interest());
    sensor.pin_root = settings.pin_root();
    let mut config =
        PipelineConfig::new(sensor, settings.context_config(), settings.stats_interval());
    config.keep_recording = settings.sensor.keep_recording;
    config.last_seen = Some(settings.sensor.last_seen_file.clone());
    let kinds: Vec<&str> = config
        .sensor
        .interest
        .kinds()
        .iter()
        .map(EventKind::name)
        .collect();
    let hostname = crate::context::procfs::hostname(&HostRoot::new(&settings.context.host_root));
    let dispatcher = Dispatcher::new(&settings.alerts_config()).map_err(|e| anyhow!(e))?;
    let rules_from: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut daemon = Daemon::new(
        engine,
        dispatcher,
        settings,
        args.config.source(),
        args.overrides(),
        hostname,
        metrics.clone(),
    );
    let active = daemon.active_rules();
    let ready = |sensor: &crate::sensor::Sensor| {
        let probes: Vec<String> = sensor
            .probes()
            .iter()
            .filter_map(|p| Some(format!("{}={}", p.source, p.chosen?)))
            .collect();
        let recorder = sensor.recorder_report();
        let recorder = match (recorder.pinned, recorder.adopted) {
            (true, true) => format!("adopted ({} records waited)", recorder.backlog),
            (true, false) => "pinned".to_string(),
            (false, _) => "not pinned (ends with this agent)".to_string(),
        };
        let detail = format!(
            "ready: {active} rules active from {}; recorder: {recorder}; kernel events: {}; \
             probes: {}",
            rules_from.join(", "),
            kinds.join(","),
            probes.join(" ")
        );
        metrics.health.beat();
        metrics.health.set_ready(true, detail.clone());
        tracing::info!("monitor running: {detail}");
    };
    let result = runtime.block_on(pipeline::run(config, &mut signals, ready, &mut daemon));
    metrics
        .health
        .set_ready(false, "shutting down: delivering the last alerts".into());
    let raised = daemon.alerts;
    let stats = runtime.block_on(daemon.shutdown());
    tracing::info!("{raised} alerts raised");
    eprintln!("monitor: alerts {}", serde_json::to_string(&stats)?);
    result
}

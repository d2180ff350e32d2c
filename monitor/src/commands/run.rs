//! `monitor run`: the daemon. Kernel events with their context go through the rules;
//! what matches goes to the alert sinks (stdout JSON by default; files, syslog, HTTP
//! as configured) as Falco-compatible alerts.
use std::{io, time::Duration};

use anyhow::{Context as _, Result, anyhow};

use crate::{
    alerts::{self, Dispatcher},
    cli::RunArgs,
    clock::BootClock,
    commands::rules::{load, rule_paths},
    context::host::HostRoot,
    event::EventKind,
    pipeline::{self, Item, PipelineConfig, Sink},
    rules::{Engine, LiveEvent, RuleMatching, RuleStatus, Scratch},
};

struct Alerts {
    engine: Engine,
    scratch: Scratch,
    dispatcher: Dispatcher,
    clock: BootClock,
    hostname: String,
    alerts: u64,
}

impl Sink for Alerts {
    fn accept(&mut self, item: Item) -> io::Result<()> {
        // Fields are read from the event itself, with the values its JSON (what
        // `monitor events` prints and rule fixtures are written in) would give, so a
        // fixture that passes predicts the live result.
        let event = match &item {
            Item::Raw(event) => LiveEvent::raw(event, &self.clock),
            Item::Enriched(enriched) => LiveEvent::enriched(enriched, &self.clock),
        }
        .with_hostname(&self.hostname);
        self.engine
            .evaluate_live(&event, &mut self.scratch, |alert, json| {
                self.dispatcher
                    .submit(alerts::Alert::from_rule_alert(alert, &self.hostname, json));
                self.alerts += 1;
            })?;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Each sink delivers on its own thread.
        Ok(())
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let paths = rule_paths(&args.rules)?;
    let matching = match args.rule_matching.as_str() {
        "first" => RuleMatching::First,
        _ => RuleMatching::All,
    };
    let mut engine = load(&paths).context("invalid rules, not starting")?;
    engine.set_rule_matching(matching);
    let active = engine
        .summaries()
        .iter()
        .filter(|s| matches!(s.status, RuleStatus::Active { .. }))
        .count();
    let mut sensor = args.sensor.config();
    // Only what the rules need runs in the kernel (plus what the context lives on,
    // which `PipelineConfig::new` adds).
    sensor.kinds = engine.kernel_interest().into_iter().collect();
    let config = PipelineConfig::new(
        sensor,
        args.context.config()?,
        Duration::from_secs(args.stats_interval.max(1)),
    );
    let kinds: Vec<&str> = config.sensor.kinds.iter().map(EventKind::name).collect();
    let hostname = std::fs::read_to_string(
        HostRoot::new(&args.context.host_root).path("/proc/sys/kernel/hostname"),
    )
    .map(|h| h.trim().to_string())
    .unwrap_or_default();
    let dispatcher = Dispatcher::new(&args.alerts.config()?).map_err(|e| anyhow!(e))?;
    let mut sink = Alerts {
        engine,
        scratch: Scratch::default(),
        dispatcher,
        clock: BootClock::new(),
        hostname,
        alerts: 0,
    };
    let rules_from: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let ready = || {
        tracing::info!(
            "monitor running: {active} rules active from {} (kernel events: {})",
            rules_from.join(", "),
            kinds.join(",")
        )
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(pipeline::run(config, ready, &mut sink));
    // Deliver what the sinks hold, or keep it in their spools for the next start.
    let stats = runtime.block_on(sink.dispatcher.shutdown());
    tracing::info!("{} alerts raised", sink.alerts);
    eprintln!("monitor: alerts {}", serde_json::to_string(&stats)?);
    result
}

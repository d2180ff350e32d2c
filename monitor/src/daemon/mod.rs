//! The daemon's end of the pipeline: each event with its context goes through the
//! rules; what matches becomes a Falco-compatible alert for the sinks. Once a second it
//! brings the metrics up to date and raises alerts about itself; on SIGHUP (or a
//! watched file changing) it reloads settings and rules, keeping the running set when
//! the new one is invalid.
mod edges;
mod reload;
mod vitals;
mod watch;

use std::{collections::HashMap, io, sync::Arc};

use prometheus_client::metrics::counter::Counter;

use crate::{
    alerts::{self, AlertSubject, Dispatcher},
    clock::BootClock,
    config::{Override, Settings, SettingsSource},
    context::process::ProcessInfo,
    event::EventKind,
    kinds::Interest,
    pipeline::{Item, Sink, Status},
    responses::{KernelPlan, KernelTables, Outcome, Responder, Taken, Target},
    rules::{CompiledRule, Engine, LiveEvent, RuleStatus, Scratch, response::CompiledResponse},
    server::{Metrics, metrics::RuleLabels},
};

pub struct Daemon {
    engine: Engine,
    scratch: Scratch,
    dispatcher: Dispatcher,
    /// Bumped when the dispatcher is replaced, so sink counters restart cleanly.
    dispatcher_generation: u64,
    clock: BootClock,
    hostname: String,
    metrics: Arc<Metrics>,
    settings: Settings,
    /// How the settings were made, to make them again on reload.
    source: SettingsSource,
    overrides: Vec<Override>,
    watch: Option<watch::Fingerprint>,
    vitals: vitals::Vitals,
    pub alerts: u64,
    /// The matches counter of each rule that matched so far, by rule name.
    match_counters: HashMap<String, Counter>,
    state_edges: edges::StateEdges,
    responder: Responder,
}

impl Daemon {
    pub fn new(
        engine: Engine,
        dispatcher: Dispatcher,
        settings: Settings,
        source: SettingsSource,
        overrides: Vec<Override>,
        hostname: String,
        metrics: Arc<Metrics>,
    ) -> Daemon {
        metrics.rules_active.set(active_rules(&engine) as i64);
        crate::context::dns::watch(engine.watched_names());
        let mut responder = Responder::new(
            crate::context::host::HostRoot::new(&settings.context.host_root),
            settings.responses.clone(),
        );
        responder.set_kernel(KernelPlan::plan(&engine, &settings.responses));
        announce_responses(&engine, &settings, responder.kernel(), &metrics);
        let watch = settings
            .rules
            .watch
            .then(|| watch::Fingerprint::of(&source, &settings));
        Daemon {
            engine,
            scratch: Scratch::default(),
            dispatcher,
            dispatcher_generation: 0,
            clock: BootClock::new(),
            hostname,
            metrics,
            vitals: vitals::Vitals::new(settings.stats_interval()),
            settings,
            source,
            overrides,
            watch,
            alerts: 0,
            match_counters: HashMap::new(),
            state_edges: edges::StateEdges::default(),
            responder,
        }
    }

    pub fn active_rules(&self) -> usize {
        active_rules(&self.engine)
    }

    /// Delivers what the sinks hold, or keeps it in their spools for the next start.
    pub async fn shutdown(self) -> alerts::DispatcherStats {
        self.dispatcher.shutdown().await
    }
}

impl Daemon {
    /// The kernel acted at an event no response was handed (its rule did not come
    /// first under `rule_matching: first`, or the slots changed under a reload since):
    /// it is said and counted all the same, never left silent.
    fn unreported_kernel_action(&self, event: &LiveEvent<'_>, verdict: u32) {
        let Some((slot, outcome)) = monitor_common::kill::parse(verdict) else {
            return;
        };
        let connect = event.is_connect();
        let (response, rule) = self
            .responder
            .kernel()
            .slot_of(connect, slot)
            .unwrap_or(("?", "?"));
        let outcome = Outcome::of_kernel_verdict(outcome);
        let (what, point) = if connect {
            ("deny", crate::responses::Point::Cgroup)
        } else {
            ("kill", crate::responses::Point::Kernel)
        };
        tracing::warn!(
            "kernel {what} slot {slot} (response '{response}', rule '{rule}') acted on pid \
             {}: {}, yet no alert reports it (another rule came first, or the rules were \
             reloaded since)",
            event.host_pid(),
            outcome.as_str()
        );
        self.metrics
            .response_actions
            .get_or_create(&crate::server::metrics::ResponseLabels {
                response: response.to_string(),
                point: point.as_str().to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .inc();
    }
}

/// The start-up (and reload) log's word on responses: how many, and a warning for
/// each that gets less than it asks for on this node, so no downgrade is silent.
/// The metrics say the same per response and point, before any match.
fn announce_responses(
    engine: &Engine,
    settings: &Settings,
    kernel: &KernelPlan,
    metrics: &Metrics,
) {
    metrics.response_rules.clear();
    for response in engine.responses() {
        for rule in &response.rules {
            let point = match crate::responses::point_for(response, rule, kernel) {
                Ok(Some(point)) => point.as_str(),
                Ok(None) => "none",
                Err(_) => "unsupported",
            };
            metrics
                .response_rules
                .get_or_create(&crate::server::metrics::ResponsePointLabels {
                    response: response.name.clone(),
                    point: point.to_string(),
                })
                .inc();
        }
    }
    let responses = engine.responses();
    if responses.is_empty() {
        return;
    }
    tracing::info!(
        "{} responses active ({} enforcing); enforcement {}",
        responses.len(),
        responses
            .iter()
            .filter(|r| r.mode == crate::rules::response::Mode::Enforce)
            .count(),
        if settings.responses.enforce {
            "on"
        } else {
            "off: every response runs as dry-run"
        }
    );
    for response in responses {
        if response.action == crate::rules::response::Action::Kill {
            let (in_kernel, user_space) = kernel.points_of(&response.name, &response.rules);
            if !in_kernel.is_empty() {
                tracing::info!(
                    "response '{}' kills in the kernel, at the open, for: {}",
                    response.name,
                    in_kernel.join(", ")
                );
            }
            for (rule, why) in user_space {
                tracing::warn!(
                    "response '{}' ({}:{}) kills matches of '{rule}' from user space, once \
                     the engine decided (the process runs until then), not in the kernel: \
                     {why}",
                    response.name,
                    response.file,
                    response.line
                );
            }
        } else if response.action == crate::rules::response::Action::Deny {
            let (at_cgroup, unsupported) = kernel.points_of(&response.name, &response.rules);
            if !at_cgroup.is_empty() {
                tracing::info!(
                    "response '{}' denies in the kernel, before the connect (cgroup), for: {}",
                    response.name,
                    at_cgroup.join(", ")
                );
            }
            for (rule, why) in unsupported {
                tracing::warn!(
                    "response '{}' ({}:{}) cannot deny matches of '{rule}': {why}; their \
                     alerts say `unsupported`",
                    response.name,
                    response.file,
                    response.line
                );
            }
        }
        if response.rules.is_empty() {
            tracing::warn!(
                "response '{}' ({}:{}) covers no active rule: the rules it names are \
                 disabled or skipped here",
                response.name,
                response.file,
                response.line
            );
        }
    }
}

fn active_rules(engine: &Engine) -> usize {
    engine
        .summaries()
        .iter()
        .filter(|s| matches!(s.status, RuleStatus::Active { .. }))
        .count()
}

impl Sink for Daemon {
    fn accept(&mut self, item: Item) -> io::Result<()> {
        // Fields are read from the event itself, with the values its JSON (what
        // `monitor events` prints and rule fixtures are written in) would give, so a
        // fixture that passes predicts the live result.
        let event = match &item {
            Item::Raw(event) => LiveEvent::raw(event, &self.clock),
            Item::Enriched(enriched) => LiveEvent::enriched(enriched, &self.clock),
        }
        .with_hostname(&self.hostname);
        let (metrics, dispatcher, hostname, raised, counters, edges, responder) = (
            &self.metrics,
            &self.dispatcher,
            &self.hostname,
            &mut self.alerts,
            &mut self.match_counters,
            &mut self.state_edges,
            &mut self.responder,
        );
        // A container's sample: its rules alert on a change of state only.
        let sampled = match &item {
            Item::Enriched(e) if e.event.kind() == EventKind::ContainerStats => {
                Some(e.container.id.clone())
            }
            _ => None,
        };
        // A match the rate limit suppresses costs a counter, not an alert (with
        // aggregation on, the decision waits for the alert: see `admit_match`).
        let kernel_verdict = event.kernel_verdict();
        // Whether an alert reports what the kernel did at this event.
        let kernel_reported = std::cell::Cell::new(false);
        let respond =
            |rule: &CompiledRule, response: &CompiledResponse, process: Option<&ProcessInfo>| {
                let taken = responder.respond(
                    response,
                    Target {
                        rule: &rule.name,
                        kernel_verdict,
                        pid: process.map(|p| p.pid),
                        exec_id: process.map(|p| &*p.exec_id),
                        name: process.map_or(&[][..], |p| &p.name),
                    },
                );
                metrics
                    .response_actions
                    .get_or_create(&crate::server::metrics::ResponseLabels {
                        response: taken.name.clone(),
                        point: taken.point.map_or("none", |p| p.as_str()).to_string(),
                        outcome: taken.outcome.as_str().to_string(),
                    })
                    .inc();
                if matches!(
                    taken.point,
                    Some(crate::responses::Point::Kernel | crate::responses::Point::Cgroup)
                ) {
                    kernel_reported.set(true);
                }
                taken
            };
        let admit = |rule: &CompiledRule, taken: Option<&Taken>| {
            let counter = match counters.get(rule.name.as_str()) {
                Some(c) => c,
                None => counters.entry(rule.name.clone()).or_insert_with(|| {
                    metrics
                        .rule_matches
                        .get_or_create(&RuleLabels {
                            rule: rule.name.clone(),
                            priority: rule.priority.as_str().to_string(),
                        })
                        .clone()
                }),
            };
            counter.inc();
            // An action is always reported (the dispatcher does not fold or limit it).
            if taken.is_some_and(|t| matches!(t.outcome, Outcome::Killed | Outcome::Denied)) {
                return true;
            }
            if let Some(container) = &sampled
                && !edges.rises(container, &rule.name)
            {
                return false;
            }
            dispatcher.admit_match(&rule.name, hostname)
        };
        self.engine
            .evaluate_live(&event, &mut self.scratch, respond, admit, |alert, taken| {
                let mut alert = alerts::Alert::from_rule_alert(alert, hostname, &event);
                alert.response = taken;
                dispatcher.deliver_match(alert, event.exepath().as_deref());
                *raised += 1;
            });
        if let Some(container) = &sampled {
            self.state_edges
                .judged(container, std::time::Instant::now());
        }
        if kernel_verdict != 0 && !kernel_reported.get() {
            self.unreported_kernel_action(&event, kernel_verdict);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Each sink delivers on its own thread.
        Ok(())
    }

    fn delivery_mark(&self) -> Option<crate::alerts::DeliveryMark> {
        Some(self.dispatcher.mark())
    }

    fn delivered(&self, mark: &crate::alerts::DeliveryMark) -> bool {
        self.dispatcher.settled(mark)
    }

    fn delivery_progress(&self) -> impl Future<Output = ()> {
        self.dispatcher.settling()
    }

    fn kernel_filter(&self) -> Option<crate::rules::kernel_filter::KernelFilter> {
        self.settings
            .sensor
            .kernel_filter
            .then(|| self.engine.kernel_filter())
    }

    fn kernel_tables(&self) -> KernelTables {
        self.responder.kernel_tables()
    }

    async fn housekeeping(&mut self, status: &Status<'_>) -> Option<Interest> {
        self.metrics.health.beat();
        // One snapshot of the sinks serves the metrics and the checks.
        let sinks = self.dispatcher.stats();
        vitals::refresh_metrics(&self.metrics, status, &sinks, self.dispatcher_generation);
        for alert in self.vitals.check(status, &sinks, &self.hostname) {
            self.raise_internal(alert);
        }
        let changed = match &mut self.watch {
            Some(fingerprint) => fingerprint.changed(&self.source, &self.settings),
            None => false,
        };
        if changed {
            tracing::info!("a watched rule or config file changed: reloading");
            return self.reload().await;
        }
        None
    }

    async fn reload(&mut self) -> Option<Interest> {
        match self.try_reload().await {
            Ok(interest) => {
                self.metrics.reloads.get_or_create(&result("ok")).inc();
                Some(interest)
            }
            Err(message) => {
                self.metrics.reloads.get_or_create(&result("failed")).inc();
                // One log line per event, whatever the number of problems.
                tracing::error!(
                    "reload failed, the running rules and settings stay: {}",
                    message.replace('\n', " | ")
                );
                let alert = vitals::reload_failed(&message, &self.hostname);
                self.raise_internal(alert);
                None
            }
        }
    }
}

impl Daemon {
    fn raise_internal(&mut self, alert: alerts::Alert) {
        self.metrics
            .internal_alerts
            .get_or_create(&crate::server::metrics::kind(&alert.rule))
            .inc();
        self.dispatcher.submit(alert);
    }
}

fn result(r: &str) -> crate::server::metrics::ResultLabel {
    crate::server::metrics::ResultLabel { result: r.into() }
}

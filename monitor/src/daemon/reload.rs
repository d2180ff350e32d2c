//! Reloading: everything new is built and checked first; only then does it replace
//! what runs. Anything invalid leaves the running rules, settings and sinks as they
//! were.
use super::{Daemon, active_rules};
use crate::{
    alerts::Dispatcher, commands::rules::rule_paths, config, kinds::Interest, rules::Engine,
};

impl Daemon {
    pub(super) async fn try_reload(&mut self) -> Result<Interest, String> {
        let loaded = config::load(&self.source, std::env::vars(), &self.overrides)
            .map_err(|e| format!("invalid settings:\n{e}"))?;
        let new = loaded.settings;
        let paths = rule_paths(&new.rules.paths).map_err(|e| format!("{e:#}"))?;
        let mut engine = Engine::load_paths(&paths).map_err(|errors| {
            let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            format!("invalid rules:\n{}", lines.join("\n"))
        })?;
        engine.set_rule_matching(new.rule_matching());

        let old = &self.settings;
        for (section, changed) in [
            ("sensor", new.sensor != old.sensor),
            ("context", new.context != old.context),
            ("server", new.server != old.server),
            ("log", new.log != old.log),
        ] {
            if changed {
                tracing::warn!(
                    "the {section} settings changed; they take effect at the next start"
                );
            }
        }
        if new.outputs != old.outputs {
            self.replace_dispatcher(&new).await?;
        }
        if let Some(watch) = &mut self.watch {
            watch.remember(&self.source, &new);
        }
        let interest = engine.kernel_interest();
        let active = active_rules(&engine);
        tracing::info!(
            "reloaded: {active} rules active from {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.metrics.rules_active.set(active as i64);
        crate::context::dns::watch(engine.watched_names());
        self.responder.apply(new.responses.clone());
        self.responder
            .set_kernel(super::KernelPlan::plan(&engine, &new.responses));
        super::announce_responses(&engine, &new, self.responder.kernel(), &self.metrics);
        self.engine = engine;
        // A rule of the same name may have another priority now.
        self.match_counters.clear();
        self.settings = new;
        Ok(interest)
    }

    /// New outputs: the old sinks hand over first (delivering or spooling what they
    /// hold), because the new ones take over the same spools.
    async fn replace_dispatcher(&mut self, new: &config::Settings) -> Result<(), String> {
        let config = new.alerts_config();
        let previous = self.settings.alerts_config();
        let placeholder = Dispatcher::new(&crate::alerts::AlertsConfig {
            sinks: vec![],
            rate_limit: None,
            aggregation: None,
        })?;
        let old = std::mem::replace(&mut self.dispatcher, placeholder);
        old.shutdown().await;
        self.dispatcher_generation += 1;
        match Dispatcher::new(&config) {
            Ok(dispatcher) => {
                self.dispatcher = dispatcher;
                tracing::info!("alert outputs reconfigured");
                Ok(())
            }
            Err(err) => {
                // The previous outputs worked a moment ago: bring them back.
                self.dispatcher = Dispatcher::new(&previous)?;
                Err(format!("invalid outputs: {err}"))
            }
        }
    }
}

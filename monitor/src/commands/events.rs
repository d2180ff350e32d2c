//! `monitor events`: the live event stream as JSON lines.
use std::io::{self, BufWriter, StdoutLock, Write};

use anyhow::Result;

use crate::{
    cli::EventsArgs,
    clock::BootClock,
    config::Loaded,
    event::{EventKind, KindSet},
    kinds::Interest,
    output::event_json::{EnrichedJson, EventJson},
    pipeline::{self, Item, PipelineConfig, Sink},
    signals,
};

/// Writes the kinds the user asked for as JSON lines (the kernel may capture more, for
/// context).
struct JsonLines {
    out: BufWriter<StdoutLock<'static>>,
    clock: BootClock,
    shown: KindSet,
}

impl Sink for JsonLines {
    fn accept(&mut self, item: Item) -> io::Result<()> {
        if !self.shown.contains(item.event().kind()) {
            return Ok(());
        }
        match &item {
            Item::Raw(event) => serde_json::to_writer(
                &mut self.out,
                &EventJson {
                    event,
                    clock: &self.clock,
                },
            ),
            Item::Enriched(enriched) => serde_json::to_writer(
                &mut self.out,
                &EnrichedJson {
                    enriched,
                    clock: &self.clock,
                },
            ),
        }?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

pub fn run(args: EventsArgs, loaded: Loaded) -> Result<()> {
    let (runtime, mut signals) = signals::runtime_with_signals()?;
    let settings = &loaded.settings;
    let shown: KindSet = args.kinds.kinds.iter().copied().collect();
    // Profiles are the daemon's: streaming events learns nothing.
    let context = settings.context_config().map(|mut c| {
        c.profiles = None;
        c
    });
    let config = PipelineConfig::new(
        settings.sensor_config(Interest::of_kinds(shown)),
        context,
        settings.stats_interval(),
    );
    let mut sink = JsonLines {
        out: BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
        clock: BootClock::new(),
        shown,
    };
    let names: Vec<&str> = shown.iter().map(EventKind::name).collect();
    let ready = |_: &_| tracing::info!("sensor ready: streaming {} events", names.join(","));
    runtime.block_on(pipeline::run(config, &mut signals, ready, &mut sink))
}

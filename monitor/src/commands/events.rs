//! `monitor events`: the live event stream as JSON lines.
use std::{
    collections::BTreeMap,
    io::{BufWriter, StdoutLock, Write},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::EventsArgs,
    clock::BootClock,
    context::{Context, ContextConfig, ContextStats},
    event::{Event, EventKind, KindSet},
    output::event_json::{EnrichedJson, EventJson},
    sensor::{
        Sensor, SensorConfig,
        decode::{DecodeError, decode},
    },
};

/// Records handled per wake-up at most, so a burst is processed in bounded slices.
const MAX_BATCH: usize = 4096;

/// Writes events as JSON lines and counts what arrived, to compare with what the
/// kernel says it sent.
struct JsonLines {
    out: BufWriter<StdoutLock<'static>>,
    clock: BootClock,
    /// Kinds the user asked to see (the kernel may capture more, for context).
    shown: KindSet,
    received: BTreeMap<EventKind, u64>,
    malformed: BTreeMap<String, u64>,
    /// The first write error; events are still counted after it.
    write_error: Option<std::io::Error>,
}

impl JsonLines {
    async fn handle(&mut self, record: Result<Event, DecodeError>, context: &mut Option<Context>) {
        let event = match record {
            Ok(event) => event,
            Err(err) => {
                *self.malformed.entry(err.to_string()).or_default() += 1;
                tracing::debug!("skipped a malformed record: {err}");
                return;
            }
        };
        let kind = event.kind();
        *self.received.entry(kind).or_default() += 1;
        let result = match context {
            // Every event updates the context, shown or not.
            Some(context) => {
                let enriched = context.enrich(event).await;
                if !self.shown.contains(kind) || self.write_error.is_some() {
                    return;
                }
                serde_json::to_writer(
                    &mut self.out,
                    &EnrichedJson {
                        enriched: &enriched,
                        clock: &self.clock,
                    },
                )
            }
            None => {
                if !self.shown.contains(kind) || self.write_error.is_some() {
                    return;
                }
                serde_json::to_writer(
                    &mut self.out,
                    &EventJson {
                        event: &event,
                        clock: &self.clock,
                    },
                )
            }
        };
        self.write_error = result
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .err();
    }

    fn flush(&mut self) {
        if self.write_error.is_none() {
            self.write_error = self.out.flush().err();
        }
    }
}

/// The line printed on stderr at exit: `monitor: totals {json}`.
#[derive(Serialize)]
struct Totals<'a> {
    kinds: BTreeMap<&'static str, KindTotals>,
    malformed: &'a BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ContextStats>,
}

#[derive(Serialize)]
struct KindTotals {
    sent: u64,
    received: u64,
    dropped: u64,
    errors: u64,
}

enum Step {
    Read(std::io::Result<usize>),
    Tick,
    Stop,
}

pub fn run(args: EventsArgs) -> Result<()> {
    let mut sensor = args.sensor.config();
    let shown = sensor.kinds;
    let context = args.context.config()?;
    if context.is_some() {
        // The process table lives on these, whatever is shown.
        for kind in [EventKind::Exec, EventKind::Fork, EventKind::Exit] {
            sensor.kinds.insert(kind);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(stream(
        sensor,
        shown,
        context,
        Duration::from_secs(args.stats_interval.max(1)),
    ))
}

async fn stream(
    config: SensorConfig,
    shown: KindSet,
    context: Option<ContextConfig>,
    stats_interval: Duration,
) -> Result<()> {
    let mut sensor = Sensor::start(&config)?;
    let mut reader = sensor.take_reader()?;
    // Seeded after the programs are attached: a process started meanwhile is either in
    // /proc or has its events waiting in the ring buffer.
    let mut context = context.map(Context::new);
    if let Some(context) = &context {
        context.wait_ready(Duration::from_secs(5)).await;
    }
    let mut lines = JsonLines {
        out: BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
        clock: BootClock::new(),
        shown,
        received: BTreeMap::new(),
        malformed: BTreeMap::new(),
        write_error: None,
    };

    let names: Vec<&str> = shown.iter().map(EventKind::name).collect();
    tracing::info!("sensor ready: streaming {} events", names.join(","));
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut ticker = tokio::time::interval(stats_interval);
    ticker.tick().await;
    let mut last_dropped = 0u64;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let step = tokio::select! {
            read = reader.read_batch(MAX_BATCH, |bytes| batch.push(decode(bytes))) => Step::Read(read),
            _ = ticker.tick() => Step::Tick,
            _ = sigterm.recv() => Step::Stop,
            _ = sigint.recv() => Step::Stop,
        };
        match step {
            Step::Read(read) => {
                read.context("reading the ring buffer")?;
                for record in batch.drain(..) {
                    lines.handle(record, &mut context).await;
                }
                // Flush per batch: readers see events promptly, and a burst still costs
                // one write per batch rather than per event.
                lines.flush();
                if let Some(err) = &lines.write_error {
                    if err.kind() == std::io::ErrorKind::BrokenPipe {
                        tracing::info!("stdout closed; stopping");
                        break;
                    }
                    return Err(anyhow!("writing events to stdout: {err}"));
                }
            }
            Step::Tick => last_dropped = report_drops(&sensor, last_dropped),
            Step::Stop => break,
        }
    }

    // Stop producing, then take everything still in the buffer so the totals add up.
    sensor.detach();
    reader.drain(|bytes| batch.push(decode(bytes)));
    for record in batch.drain(..) {
        lines.handle(record, &mut context).await;
    }
    lines.flush();
    report_drops(&sensor, last_dropped);
    print_totals(&sensor, &lines, context.as_ref().map(Context::stats))
}

/// Logs kernel drops since the last report; returns the new total.
fn report_drops(sensor: &Sensor, last: u64) -> u64 {
    let Ok(counters) = sensor.counters() else {
        return last;
    };
    let total: u64 = counters.iter().map(|(_, c)| c.dropped).sum();
    if total > last {
        let by_kind: Vec<String> = counters
            .iter()
            .filter(|(_, c)| c.dropped > 0)
            .map(|(k, c)| format!("{k}={}", c.dropped))
            .collect();
        tracing::warn!(
            "kernel dropped {} events since the last report (ring buffer full; totals: {}); \
             raise --ring-buffer-bytes or narrow --kinds",
            total - last,
            by_kind.join(" ")
        );
    }
    total
}

fn print_totals(sensor: &Sensor, lines: &JsonLines, context: Option<ContextStats>) -> Result<()> {
    let mut kinds = BTreeMap::new();
    for (kind, c) in sensor.counters()? {
        let received = lines.received.get(&kind).copied().unwrap_or(0);
        if received != c.sent {
            tracing::error!(
                "{kind}: the kernel sent {} records but {received} arrived",
                c.sent
            );
        }
        kinds.insert(
            kind.name(),
            KindTotals {
                sent: c.sent,
                received,
                dropped: c.dropped,
                errors: c.errors,
            },
        );
    }
    let totals = Totals {
        kinds,
        malformed: &lines.malformed,
        context,
    };
    eprintln!("monitor: totals {}", serde_json::to_string(&totals)?);
    Ok(())
}

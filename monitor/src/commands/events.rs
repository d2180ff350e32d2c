//! `monitor events`: the live event stream as JSON lines.
use std::{
    collections::BTreeMap,
    io::{BufWriter, StdoutLock, Write},
    time::Duration,
};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::EventsArgs,
    clock::BootClock,
    event::EventKind,
    output::event_json::EventJson,
    sensor::{Sensor, SensorConfig, decode::decode},
};

/// Decodes records, writes them as JSON lines and counts what arrived, to compare
/// with what the kernel says it sent.
struct JsonLines {
    out: BufWriter<StdoutLock<'static>>,
    clock: BootClock,
    received: BTreeMap<EventKind, u64>,
    malformed: BTreeMap<String, u64>,
    /// The first write error; events are still counted after it.
    write_error: Option<std::io::Error>,
}

impl JsonLines {
    fn handle(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Ok(event) => {
                *self.received.entry(event.kind()).or_default() += 1;
                if self.write_error.is_none() {
                    let json = EventJson {
                        event: &event,
                        clock: &self.clock,
                    };
                    let result = serde_json::to_writer(&mut self.out, &json)
                        .map_err(std::io::Error::from)
                        .and_then(|()| self.out.write_all(b"\n"));
                    self.write_error = result.err();
                }
            }
            Err(err) => {
                *self.malformed.entry(err.to_string()).or_default() += 1;
                tracing::debug!("skipped a malformed record: {err}");
            }
        }
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
    let config = args.sensor.config();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(stream(
        config,
        Duration::from_secs(args.stats_interval.max(1)),
    ))
}

async fn stream(config: SensorConfig, stats_interval: Duration) -> Result<()> {
    let mut sensor = Sensor::start(&config)?;
    let mut reader = sensor.take_reader()?;
    let mut lines = JsonLines {
        out: BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
        clock: BootClock::new(),
        received: BTreeMap::new(),
        malformed: BTreeMap::new(),
        write_error: None,
    };

    let kinds: Vec<&str> = config.kinds.iter().map(EventKind::name).collect();
    tracing::info!("sensor ready: streaming {} events", kinds.join(","));
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut ticker = tokio::time::interval(stats_interval);
    ticker.tick().await;
    let mut last_dropped = 0u64;
    loop {
        let step = tokio::select! {
            read = reader.read_batch(|bytes| lines.handle(bytes)) => Step::Read(read),
            _ = ticker.tick() => Step::Tick,
            _ = sigterm.recv() => Step::Stop,
            _ = sigint.recv() => Step::Stop,
        };
        match step {
            Step::Read(read) => {
                read.context("reading the ring buffer")?;
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
    reader.drain(|bytes| lines.handle(bytes));
    lines.flush();
    report_drops(&sensor, last_dropped);
    print_totals(&sensor, &lines)
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

fn print_totals(sensor: &Sensor, lines: &JsonLines) -> Result<()> {
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
    };
    eprintln!("monitor: totals {}", serde_json::to_string(&totals)?);
    Ok(())
}

//! SIGINT and SIGTERM stop the agent at any moment, SIGHUP reloads. SIGUSR2 stops it
//! too, leaving a pinned recorder running for the next agent (`monitor stop
//! --keep-recording`).
//!
//! The handlers are installed first thing, before anything slow starts: until then a
//! signal would meet whatever the agent inherited, which is "die at once" (no detach,
//! no totals) or, for a background job of a non-interactive shell, "ignore" (the agent
//! runs on). Slow start-up steps that block a thread check [`StopSignals::flag`]
//! between their parts; async ones are selected against [`StopSignals::stopped`].
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result};
use futures_util::FutureExt;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct StopSignals {
    pub term: Signal,
    pub int: Signal,
    pub hup: Signal,
    pub usr2: Signal,
    flag: Arc<AtomicBool>,
    /// The stop asked to keep the recorder (SIGUSR2).
    keep: bool,
}

impl StopSignals {
    /// Must be called inside a tokio runtime (it registers with its signal driver).
    pub fn register() -> Result<StopSignals> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(StopSignals {
            term: listen(SignalKind::terminate(), "SIGTERM")?,
            int: listen(SignalKind::interrupt(), "SIGINT")?,
            hup: listen(SignalKind::hangup(), "SIGHUP")?,
            usr2: listen(SignalKind::user_defined2(), "SIGUSR2")?,
            flag: Arc::new(AtomicBool::new(false)),
            keep: false,
        })
    }

    /// Whether SIGINT, SIGTERM or SIGUSR2 came (now or before), without waiting.
    pub fn stop_requested(&mut self) -> bool {
        if self.flag.load(Ordering::Relaxed) {
            return true;
        }
        if self.usr2.recv().now_or_never().is_some() {
            self.keep = true;
        }
        let came = self.keep
            || self.term.recv().now_or_never().is_some()
            || self.int.recv().now_or_never().is_some();
        if came {
            self.flag.store(true, Ordering::Relaxed);
        }
        came
    }

    /// Waits for SIGINT, SIGTERM or SIGUSR2.
    pub async fn stopped(&mut self) {
        if self.flag.load(Ordering::Relaxed) {
            return;
        }
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.usr2.recv() => self.keep = true,
        }
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Records a stop that keeps the recorder (SIGUSR2 seen by the caller).
    pub fn keep_recording(&mut self) {
        self.keep = true;
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether the stop asked to keep the recorder.
    pub fn keeps_recording(&self) -> bool {
        self.keep
    }

    /// Set once a stop was asked for: blocking start-up work checks it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

/// The agent's runtime (one thread: the pipeline is one loop) with the signals
/// registered in it: what `monitor run` and `monitor events` make first.
pub fn runtime_with_signals() -> Result<(tokio::runtime::Runtime, StopSignals)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let signals = {
        let _inside = runtime.enter();
        StopSignals::register()?
    };
    Ok((runtime, signals))
}

/// What blocking start-up work returns when a stop came before it finished.
#[derive(Debug)]
pub struct StoppedDuringStart;

impl std::fmt::Display for StoppedDuringStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by a signal during start-up")
    }
}

impl std::error::Error for StoppedDuringStart {}

//! Rolling windows: recent values of each measure of one container, with their
//! means over the last minute and the last five.
use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::{Duration, Instant},
};

/// What a container's history keeps. Resource measures come from
/// [`super::usage::Usage`]; event rates (execs, connects, failed connects, distinct
/// destinations per minute) belong here too as new variants, recorded with
/// [`History::record`] once per sampling tick (a count per tick, or a per-minute
/// rate), so that every measure's window has one value per tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    Cores,
    CpuLimitPct,
    MemoryBytes,
    MemoryLimitPct,
    NewOomKills,
    Pids,
    PidsLimitPct,
}

/// What the history keeps: 5 minutes, the longest window asked for.
pub const HORIZON: Duration = Duration::from_secs(300);
pub const LAST_MINUTE: Duration = Duration::from_secs(60);
pub const LAST_5_MINUTES: Duration = Duration::from_secs(300);

/// Timestamped values of one measure, oldest first, none older than the horizon
/// (measured from the newest value).
#[derive(Clone, Debug)]
pub struct Window {
    horizon: Duration,
    points: VecDeque<(Instant, f64)>,
}

impl Window {
    pub fn new(horizon: Duration) -> Self {
        Self {
            horizon,
            points: VecDeque::new(),
        }
    }

    /// Adds a value. Values come in time order (one sampling loop); one older than
    /// the newest is dropped rather than searched into place. NaN and infinities are
    /// dropped too: one would poison every mean for five minutes.
    pub fn push(&mut self, at: Instant, value: f64) {
        if !value.is_finite() || self.points.back().is_some_and(|(last, _)| at < *last) {
            return;
        }
        self.points.push_back((at, value));
        self.prune(at);
    }

    /// Drops values older than the horizon at `now`: for measures that stopped
    /// getting values (a file that went away), which `push` alone never trims.
    pub fn prune(&mut self, now: Instant) {
        while self
            .points
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.horizon)
        {
            self.points.pop_front();
        }
    }

    /// Values younger than `span` at `now`. A value stands for the interval that
    /// ends at its timestamp, so one exactly `span` old is out.
    fn within(&self, now: Instant, span: Duration) -> impl Iterator<Item = f64> + '_ {
        self.points
            .iter()
            .rev()
            .take_while(move |(at, _)| now.saturating_duration_since(*at) < span)
            .filter(move |(at, _)| *at <= now)
            .map(|(_, v)| *v)
    }

    /// Mean of the values in the last `span`, over the samples there (the sampler
    /// ticks regularly, so this is the time average). A container younger than
    /// `span` gets the mean of what it has; `None` when it has nothing in the span.
    pub fn mean(&self, now: Instant, span: Duration) -> Option<f64> {
        let (sum, n) = self
            .within(now, span)
            .fold((0.0, 0u32), |(sum, n), v| (sum + v, n + 1));
        (n > 0).then(|| sum / f64::from(n))
    }

    /// Sum of the values in the last `span` (counts per tick → events in the span).
    pub fn sum(&self, now: Instant, span: Duration) -> f64 {
        self.within(now, span).sum()
    }

    pub fn max(&self, now: Instant, span: Duration) -> Option<f64> {
        self.within(now, span).reduce(f64::max)
    }

    /// The newest value.
    pub fn last(&self) -> Option<(Instant, f64)> {
        self.points.back().copied()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// The means a rule or a metric wants.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Means {
    pub last_minute: Option<f64>,
    pub last_5_minutes: Option<f64>,
}

/// One container's windows, one per measure. Generic over the key so a caller can
/// keep its own measures apart; [`Measure`] is the usual one.
#[derive(Clone, Debug)]
pub struct History<K = Measure> {
    horizon: Duration,
    windows: HashMap<K, Window>,
}

impl<K: Copy + Eq + Hash> Default for History<K> {
    fn default() -> Self {
        Self::with_horizon(HORIZON)
    }
}

impl<K: Copy + Eq + Hash> History<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_horizon(horizon: Duration) -> Self {
        Self {
            horizon,
            windows: HashMap::new(),
        }
    }

    pub fn record(&mut self, key: K, at: Instant, value: f64) {
        let horizon = self.horizon;
        self.windows
            .entry(key)
            .or_insert_with(|| Window::new(horizon))
            .push(at, value);
    }

    /// Trims every window to the horizon, and forgets measures with nothing left.
    pub fn prune(&mut self, now: Instant) {
        self.windows.retain(|_, window| {
            window.prune(now);
            !window.is_empty()
        });
    }

    pub fn window(&self, key: K) -> Option<&Window> {
        self.windows.get(&key)
    }

    pub fn mean(&self, key: K, now: Instant, span: Duration) -> Option<f64> {
        self.windows.get(&key)?.mean(now, span)
    }

    /// Means over the last 60 s and 300 s.
    pub fn means(&self, key: K, now: Instant) -> Means {
        Means {
            last_minute: self.mean(key, now, LAST_MINUTE),
            last_5_minutes: self.mean(key, now, LAST_5_MINUTES),
        }
    }

    /// Values held, all windows together (what the history costs in memory).
    pub fn len(&self) -> usize {
        self.windows.values().map(Window::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn one_and_five_minute_means() {
        let t0 = Instant::now();
        let mut w = Window::new(HORIZON);
        // 4 minutes at 1.0, then 1 minute at 3.0, every 10 s.
        for i in 1..=30 {
            let value = if i <= 24 { 1.0 } else { 3.0 };
            w.push(t0 + S(i * 10), value);
        }
        let now = t0 + S(300);
        assert_eq!(w.mean(now, LAST_MINUTE), Some(3.0));
        assert_eq!(w.mean(now, LAST_5_MINUTES), Some((24.0 + 18.0) / 30.0));
        assert_eq!(w.max(now, LAST_5_MINUTES), Some(3.0));
        assert_eq!(w.sum(now, LAST_MINUTE), 18.0);
        // Later, with nothing new: the minute is empty, older values age out.
        assert_eq!(w.mean(now + S(60), LAST_MINUTE), None);
        assert_eq!(w.mean(now + S(250), LAST_5_MINUTES), Some(3.0));
    }

    #[test]
    fn young_container_covers_what_it_has() {
        let t0 = Instant::now();
        let mut w = Window::new(HORIZON);
        w.push(t0 + S(10), 2.0);
        w.push(t0 + S(20), 4.0);
        let now = t0 + S(20);
        assert_eq!(w.mean(now, LAST_MINUTE), Some(3.0));
        assert_eq!(w.mean(now, LAST_5_MINUTES), Some(3.0));
        assert_eq!(Window::new(HORIZON).mean(now, LAST_MINUTE), None);
    }

    #[test]
    fn memory_is_bounded_by_the_horizon() {
        let t0 = Instant::now();
        let mut w = Window::new(HORIZON);
        for i in 0..10_000 {
            w.push(t0 + S(i), 1.0);
        }
        assert_eq!(w.len(), 301);
        let mut h: History = History::new();
        h.record(Measure::Pids, t0, 5.0);
        h.record(Measure::Cores, t0 + S(400), 0.5);
        h.prune(t0 + S(400));
        assert!(h.window(Measure::Pids).is_none());
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn bad_values_and_out_of_order_are_dropped() {
        let t0 = Instant::now();
        let mut w = Window::new(HORIZON);
        w.push(t0 + S(10), 1.0);
        w.push(t0 + S(11), f64::NAN);
        w.push(t0 + S(12), f64::INFINITY);
        w.push(t0 + S(5), 100.0);
        assert_eq!(w.len(), 1);
        assert_eq!(w.last(), Some((t0 + S(10), 1.0)));
    }

    #[test]
    fn history_keys_are_independent() {
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        enum Rate {
            Execs,
            Connects,
        }
        let t0 = Instant::now();
        let mut h = History::<Rate>::new();
        for i in 1..=6 {
            h.record(Rate::Execs, t0 + S(i * 10), 2.0);
            h.record(Rate::Connects, t0 + S(i * 10), i as f64);
        }
        let now = t0 + S(60);
        assert_eq!(h.means(Rate::Execs, now).last_minute, Some(2.0));
        assert_eq!(
            h.means(Rate::Connects, now),
            Means {
                last_minute: Some(3.5),
                last_5_minutes: Some(3.5)
            }
        );
        assert_eq!(h.window(Rate::Execs).unwrap().sum(now, LAST_MINUTE), 12.0);
    }
}

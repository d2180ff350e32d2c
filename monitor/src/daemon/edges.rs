//! Rules on `container_stats` judge a state that lasts (a container busy for minutes
//! is one fact, sampled every few seconds): each such rule alerts when its condition
//! becomes true for a container, and again only after it has been false.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

/// A container not sampled for this long has gone; its states are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct StateEdges {
    /// Per container, the rules true at its last sample, and when that was.
    firing: HashMap<Arc<str>, (HashSet<String>, Instant)>,
    /// The rules true at the sample being judged.
    now: HashSet<String>,
}

impl StateEdges {
    /// A rule matched the sample being judged: alert only if it was not already true.
    pub fn rises(&mut self, container: &str, rule: &str) -> bool {
        self.now.insert(rule.to_string());
        !self
            .firing
            .get(container)
            .is_some_and(|(rules, _)| rules.contains(rule))
    }

    /// The sample of `container` has been judged: its matches are its state now.
    pub fn judged(&mut self, container: &Arc<str>, at: Instant) {
        let now = std::mem::take(&mut self.now);
        self.firing.insert(container.clone(), (now, at));
        self.firing
            .retain(|_, (_, seen)| at.saturating_duration_since(*seen) < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_state_alerts_once_and_again_after_it_cleared() {
        let mut edges = StateEdges::default();
        let c: Arc<str> = Arc::from("c1");
        let t = Instant::now();
        assert!(edges.rises("c1", "High CPU"));
        edges.judged(&c, t);
        assert!(!edges.rises("c1", "High CPU"), "still true: no new alert");
        edges.judged(&c, t);
        // A sample where it is false clears it.
        edges.judged(&c, t);
        assert!(edges.rises("c1", "High CPU"), "true again after clearing");
        edges.judged(&c, t);
        assert!(
            edges.rises("c2", "High CPU"),
            "another container is its own state"
        );
    }
}

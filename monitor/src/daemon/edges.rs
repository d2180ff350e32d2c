//! Rules on `container_stats` judge a state that lasts (a container busy for minutes
//! is one fact, sampled every few seconds): each such rule alerts when its condition
//! becomes true for a container, and again only after it has been false for a minute.
//! A measure that hovers at a threshold (a mean of 91, 89, 90 % of a CPU limit) is one
//! state, not an alert per crossing.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

/// A container not sampled for this long has gone; its states are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// How long a rule must have been false before it can alert again: the window of the
/// rules' one-minute means.
const CLEAR_AFTER: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct StateEdges {
    /// Per container: each rule that is firing and when it was last true, and when
    /// the container was last sampled.
    firing: HashMap<Arc<str>, (HashMap<String, Instant>, Instant)>,
    /// The rules true at the sample being judged.
    now: HashSet<String>,
}

impl StateEdges {
    /// A rule matched the sample being judged: alert only if it was not already firing.
    pub fn rises(&mut self, container: &str, rule: &str) -> bool {
        self.now.insert(rule.to_string());
        !self
            .firing
            .get(container)
            .is_some_and(|(rules, _)| rules.contains_key(rule))
    }

    /// The sample of `container` has been judged at `at`: its matches are firing, and
    /// rules false for [`CLEAR_AFTER`] are not any more.
    pub fn judged(&mut self, container: &Arc<str>, at: Instant) {
        let (rules, seen) = self
            .firing
            .entry(container.clone())
            .or_insert_with(|| (HashMap::new(), at));
        for rule in self.now.drain() {
            rules.insert(rule, at);
        }
        rules.retain(|_, last_true| at.saturating_duration_since(*last_true) < CLEAR_AFTER);
        *seen = at;
        self.firing
            .retain(|_, (_, seen)| at.saturating_duration_since(*seen) < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_state_alerts_once_and_again_only_after_a_minute_false() {
        let mut edges = StateEdges::default();
        let c: Arc<str> = Arc::from("c1");
        let t = Instant::now();
        let at = |secs: u64| t + Duration::from_secs(secs);
        assert!(edges.rises("c1", "High CPU"));
        edges.judged(&c, at(0));
        assert!(!edges.rises("c1", "High CPU"), "still true: no new alert");
        edges.judged(&c, at(10));
        // False for 50 s, then true again: the same state, hovering at its threshold.
        edges.judged(&c, at(20));
        edges.judged(&c, at(59));
        assert!(!edges.rises("c1", "High CPU"), "back within the minute");
        edges.judged(&c, at(60));
        // False for a whole minute clears it.
        edges.judged(&c, at(90));
        edges.judged(&c, at(120));
        assert!(
            edges.rises("c1", "High CPU"),
            "true again after a minute false"
        );
        edges.judged(&c, at(130));
        assert!(
            edges.rises("c2", "High CPU"),
            "another container is its own state"
        );
    }
}

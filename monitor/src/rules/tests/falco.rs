//! The Falco stable ruleset, loaded unchanged from the shared folder.
use crate::rules::Engine;

const FALCO_RULES: &str = "/work/shared/falco-rules/falco_rules.yaml";

#[test]
fn falco_ruleset_summary() {
    let engine = Engine::load_paths(&[FALCO_RULES.into()]).unwrap_or_else(|e| panic!("{e}"));
    for s in engine.summaries() {
        println!("{:?} {}", s.status, s.name);
    }
}

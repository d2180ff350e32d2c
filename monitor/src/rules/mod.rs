//! The rule engine: Falco's rule language (lists, macros, rules, exceptions, overrides)
//! loaded from YAML, compiled once and evaluated per event without allocating.
//!
//! Entry points: [`Engine::load_paths`] / [`Engine::load_sources`] build an engine;
//! [`Engine::evaluate`] runs it on anything implementing [`FieldSource`] (the JSON
//! event of fixtures and replays is [`JsonEvent`], the daemon's live event
//! [`LiveEvent`]; both mean the same by every field, see [`event_fields`]);
//! [`Engine::evaluate_live`] also builds the alerts; [`Engine::alert`] formats a match;
//! [`Engine::kernel_interest`] tells the sensor which event kinds the rules need;
//! [`fields::catalog`] lists every field.
//!
//! The stages, as in Falco's engine, each a file: `yaml` reads with positions, `loader`
//! collects definitions (append, override), `assemble` flattens lists, turns
//! exceptions into conditions and compiles macros, rules and responses, `compile`
//! builds the `tree` of checks, `event_types` finds what each rule can match,
//! `dispatch` and `specialize` index rules by event type, and `eval` runs the tree
//! against an event. This file only names them.
pub mod compile;
mod dispatch;
pub mod error;
pub mod eval;
pub mod event_fields;
pub mod event_types;
pub mod fields;
pub mod fixtures;
pub mod json_event;
pub mod kernel_filter;
pub mod live_event;
pub mod loader;
pub mod output;
pub mod parser;
pub mod recorded;
pub mod response;
pub mod source;
pub mod specialize;
pub mod text;
pub mod tree;
pub mod yaml;

mod assemble;
mod engine;
#[cfg(test)]
mod tests;

pub use engine::{Alert, CompiledRule, Engine, RuleMatching, RuleStatus, RuleSummary};
pub use error::{LoadErrors, RuleError};
pub use eval::Scratch;
pub use json_event::JsonEvent;
pub use live_event::LiveEvent;
pub use loader::Priority;
pub use source::{EventType, FieldArg, FieldSource, FieldValue, ResolvedField};

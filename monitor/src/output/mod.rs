//! Output formats for events (and later alerts).
pub mod escape;
pub mod event_json;

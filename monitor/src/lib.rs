//! monitor: an eBPF runtime security agent for containers.
//!
//! Data flows one way: `sensor` (kernel programs, ring buffer, decoding) produces
//! [`event::Event`]s; `context` adds the process and container they belong to;
//! `output` turns them into text for people and machines.
pub mod cli;
pub mod clock;
pub mod commands;
pub mod context;
pub mod event;
pub mod output;
pub mod pipeline;
pub mod rules;
pub mod sensor;

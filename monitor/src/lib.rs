//! monitor: an eBPF runtime security agent for containers.
//!
//! Data flows one way: `sensor` (kernel programs, ring buffer, decoding) produces
//! [`event::Event`]s; `context` adds the process and container they belong to;
//! `output` turns them into text for people and machines; `rules` flags what matters
//! and `alerts` delivers it to stdout, files, syslog and HTTP. `resources` samples
//! containers' CPU, memory and pids from their cgroups, `container_stats` turns them
//! and the containers' event rates into `container_stats` events, and `profiles`
//! learns what each workload normally does.
pub mod alerts;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod container_stats;
pub mod context;
pub mod daemon;
pub mod event;
pub mod kinds;
pub mod output;
pub mod pipeline;
pub mod profiles;
pub mod resources;
pub mod responses;
pub mod rules;
pub mod sensor;
pub mod server;
pub mod signals;

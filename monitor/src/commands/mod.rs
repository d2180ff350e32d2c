//! One module per subcommand.
pub mod config;
pub mod events;
pub mod probes;
pub mod profiles;
pub mod recorder;
pub mod rules;
pub mod run;

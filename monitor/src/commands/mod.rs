//! One module per subcommand, and [`main`], which parses the command line (`cli`),
//! loads the settings and runs the subcommand.
pub mod config;
pub mod events;
pub mod probes;
pub mod profiles;
pub mod recorder;
pub mod rules;
pub mod run;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::Parser;

use crate::{
    cli::{Cli, Command, ConfigArgs, given},
    config::{ConfigError, Loaded, Override},
};

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Loads the settings of a command that runs the sensor; `--log` is a flag like the
/// others.
fn settings(
    log: &Option<String>,
    config: &ConfigArgs,
    mut overrides: Vec<Override>,
) -> Result<Loaded, ConfigError> {
    if let Some(log) = log {
        overrides.push(Override {
            path: "log",
            value: log.clone().into(),
            flag: "--log",
        });
    }
    crate::config::load(&config.source(), std::env::vars(), &overrides)
}

fn pin_root(root: &Option<PathBuf>) -> Vec<Override> {
    let mut out = Vec::new();
    given(&mut out, "sensor.pin_root", "--pin-root", root.as_ref());
    out
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match &cli.command {
        Command::Run(args) => Some(settings(&cli.log, &args.config, args.overrides())),
        Command::Events(args) => Some(settings(&cli.log, &args.config, args.overrides())),
        Command::Probes(args) => Some(settings(&cli.log, &args.config, args.overrides())),
        Command::Stop(args) => Some(settings(&cli.log, &args.config, pin_root(&args.pin_root))),
        Command::Uninstall(args) => {
            Some(settings(&cli.log, &args.config, pin_root(&args.pin_root)))
        }
        _ => None,
    };
    let loaded = match loaded.transpose() {
        Ok(loaded) => loaded,
        Err(err) => {
            for problem in &err.problems {
                eprintln!("monitor: config error: {problem}");
            }
            eprintln!("monitor: fix the settings above (`monitor config check` shows them all)");
            return ExitCode::FAILURE;
        }
    };
    let log = match &loaded {
        Some(loaded) => loaded.settings.log.clone(),
        None => cli
            .log
            .clone()
            .or_else(|| std::env::var("MONITOR_LOG").ok())
            .unwrap_or_else(|| "info".into()),
    };
    init_logging(&log);
    let result = match (cli.command, loaded) {
        (Command::Run(args), Some(loaded)) => run::run(*args, loaded),
        (Command::Events(args), Some(loaded)) => events::run(*args, loaded),
        (Command::Probes(args), Some(loaded)) => probes::run(args, loaded),
        (Command::Stop(args), Some(loaded)) => {
            recorder::stop(&loaded.settings, args.keep_recording, args.timeout)
        }
        (Command::Uninstall(_), Some(loaded)) => recorder::uninstall(&loaded.settings),
        (Command::Rules(args), _) => rules::run(args),
        (Command::Replay(args), _) => rules::replay(args),
        (Command::Fields(args), _) => rules::fields_cmd(args),
        (Command::Config(args), _) => config::run(args),
        (Command::Profiles(args), _) => profiles::run(args),
        (command, None) => unreachable!("settings are loaded for {command:?}"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("monitor: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

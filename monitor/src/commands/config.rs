//! `monitor config check|show`: the settings the daemon would run with.
use anyhow::{Result, bail};

use crate::{
    cli::{ConfigArgs, ConfigCmdArgs, ConfigCommand},
    commands::rules::{load as load_rules, rule_paths},
    config::{self, Loaded},
};

fn load(args: &ConfigArgs) -> Result<Loaded> {
    config::load(&args.source(), std::env::vars(), &[]).map_err(|err| {
        for problem in &err.problems {
            eprintln!("{problem}");
        }
        anyhow::anyhow!("{} problem(s) in the settings", err.problems.len())
    })
}

pub fn run(args: ConfigCmdArgs) -> Result<()> {
    match args.command {
        ConfigCommand::Check {
            config: args,
            settings_only,
        } => {
            let loaded = load(&args)?;
            let from = match &loaded.file {
                Some(path) => path.display().to_string(),
                None => format!(
                    "built-in defaults ({} does not exist)",
                    args.source().path().display()
                ),
            };
            if settings_only {
                println!("ok: settings from {from}");
                return Ok(());
            }
            let paths = rule_paths(&loaded.settings.rules.paths)?;
            let engine = match load_rules(&paths) {
                Ok(engine) => engine,
                Err(err) => bail!("the settings are valid but the rules are not:\n{err:#}"),
            };
            println!(
                "ok: settings from {from}; {} rules loaded from {}",
                engine.summaries().len(),
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        ConfigCommand::Show(args) => {
            let loaded = load(&args)?;
            let tree = serde_json::to_value(&loaded.settings)?;
            for (key, value) in config::leaves(&tree) {
                let shown = match value.as_object() {
                    // Header values are often tokens: only their names are shown.
                    Some(headers) => {
                        let names: Vec<&str> = headers.keys().map(String::as_str).collect();
                        format!("[{}] (values hidden)", names.join(", "))
                    }
                    None => value.to_string(),
                };
                println!("{key} = {shown}    # {}", loaded.origin(&key));
            }
            Ok(())
        }
    }
}

//! `monitor rules validate|list|test`, `monitor replay` and `monitor fields`.
use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow, bail};

use crate::{
    alerts::Alert,
    cli::{FieldsArgs, ReplayArgs, RulesArgs, RulesCommand},
    responses::{KernelPlan, Point, ResponsesSettings},
    rules::{Engine, JsonEvent, RuleMatching, RuleStatus, Scratch, fields, fixtures},
};

/// Where rules are looked for when `--rules` is not given: the installed location,
/// then the source tree's default ruleset.
const DEFAULT_RULE_PATHS: [&str; 2] = ["/etc/monitor/rules", "rules"];

pub fn rule_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    DEFAULT_RULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .map(|p| vec![p])
        .ok_or_else(|| {
            anyhow!(
                "no rules: none of {} exists; pass --rules PATH (files or folders)",
                DEFAULT_RULE_PATHS.join(", ")
            )
        })
}

/// Loads rules; every error is printed as `file:line:col: rule 'NAME': message`.
pub fn load(paths: &[PathBuf]) -> Result<Engine> {
    match Engine::load_paths(paths) {
        Ok(e) => Ok(e),
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            bail!("{} error(s) in the rules", errors.0.len())
        }
    }
}

pub fn run(args: RulesArgs) -> Result<()> {
    match args.command {
        RulesCommand::Validate { paths } => {
            let engine = load(&paths)?;
            let active = engine.rules().len();
            println!("ok: {} rules ({active} active)", engine.summaries().len());
            Ok(())
        }
        RulesCommand::List {
            paths,
            kernel_filter,
            responses,
        } => {
            let engine = load(&rule_paths(&paths)?)?;
            let mut out = std::io::stdout().lock();
            for s in engine.summaries() {
                let status = match &s.status {
                    RuleStatus::Active { event_types } => format!(
                        "active    ({})",
                        event_types
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    RuleStatus::Disabled => "disabled".to_string(),
                    RuleStatus::Skipped { reason } => format!("skipped   {reason}"),
                };
                writeln!(out, "{:<13} {:<60} {status}", s.priority.as_str(), s.name)?;
            }
            if kernel_filter {
                writeln!(
                    out,
                    "\nkernel filter (events outside it are dropped in the kernel):"
                )?;
                write!(out, "{}", engine.kernel_filter().describe())?;
            }
            if responses {
                list_responses(&engine, &mut out)?;
            }
            Ok(())
        }
        RulesCommand::Test { paths } => test(&paths),
    }
}

/// `rules list --responses`: per response, what it asks, and per rule it covers the
/// point it gets here and why.
fn list_responses(engine: &Engine, out: &mut impl Write) -> std::io::Result<()> {
    let kernel = KernelPlan::plan(engine, &ResponsesSettings::default());
    writeln!(out, "\nresponses ({}):", engine.responses().len())?;
    for response in engine.responses() {
        writeln!(
            out,
            "{} ({}:{})\n  {} {}",
            response.name,
            response.file,
            response.line,
            response.action.as_str(),
            response.mode.as_str()
        )?;
        if let Some(scope) = &response.scope_text {
            writeln!(out, "  scope: {scope}")?;
        }
        if response.rules.is_empty() {
            writeln!(out, "  covers no active rule")?;
        }
        for rule in &response.rules {
            let point = match crate::responses::point_for(response, rule, &kernel) {
                Ok(Some(Point::Kernel)) => {
                    format!("point kernel: {}", crate::responses::WHY_KERNEL)
                }
                Ok(Some(Point::Cgroup)) => {
                    format!("point cgroup: {}", crate::responses::WHY_CGROUP)
                }
                Ok(Some(point)) => format!(
                    "point {}: {}",
                    point.as_str(),
                    kernel
                        .point(&response.name, rule)
                        .err()
                        .unwrap_or("the process runs until the engine decided")
                ),
                Ok(None) => "no point: the alert is the whole response".to_string(),
                Err(needs) => format!("unsupported: {needs}"),
            };
            writeln!(out, "  rule: {rule}\n    {point}")?;
        }
    }
    Ok(())
}

/// Splits the arguments into rule files and fixture files.
fn rule_and_fixture_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let is_fixture = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".fixtures.yaml"))
    };
    let mut rules = Vec::new();
    let mut fixtures = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_fixture(f))
                .collect();
            entries.sort();
            fixtures.extend(entries);
            rules.push(p.clone());
        } else if is_fixture(p) {
            fixtures.push(p.clone());
        } else {
            rules.push(p.clone());
            let beside = p.with_extension("fixtures.yaml");
            if beside.is_file() && !fixtures.contains(&beside) {
                fixtures.push(beside);
            }
        }
    }
    Ok((rules, fixtures))
}

fn test(paths: &[PathBuf]) -> Result<()> {
    let (rule_paths, fixture_paths) = rule_and_fixture_files(paths)?;
    let engine = load(&rule_paths)?;
    if fixture_paths.is_empty() {
        bail!("no fixtures (*.fixtures.yaml) found beside the rules");
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for f in &fixture_paths {
        match fixtures::parse_file(f) {
            Ok(mut v) => all.append(&mut v),
            Err(es) => {
                for e in es {
                    eprintln!("{e}");
                    errors += 1;
                }
            }
        }
    }
    if errors > 0 {
        bail!("{errors} error(s) in the fixtures");
    }
    let results = fixtures::run(&engine, &all);
    let mut failed = 0;
    for r in &results {
        if r.failures.is_empty() {
            println!("ok   {}:{}: {}", r.file, r.line, r.name);
        } else {
            failed += 1;
            println!("FAIL {}:{}: {}", r.file, r.line, r.name);
            for f in &r.failures {
                println!("       {f}");
            }
            println!("       fired: [{}]", r.fired.join(", "));
        }
    }
    println!(
        "{} fixtures, {} passed, {failed} failed",
        results.len(),
        results.len() - failed
    );
    if failed > 0 {
        bail!("{failed} fixture(s) failed");
    }
    Ok(())
}

pub fn replay(args: ReplayArgs) -> Result<()> {
    let mut engine = load(&args.rules)?;
    if args.rule_matching == "first" {
        engine.set_rule_matching(RuleMatching::First);
    }
    let kernel = KernelPlan::plan(&engine, &ResponsesSettings::default());
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?,
        ))
    };
    let hostname = match args.hostname {
        Some(hostname) => hostname,
        None => crate::context::procfs::hostname(&crate::context::host::HostRoot::new("/")),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut scratch = Scratch::default();
    let mut matched = Vec::new();
    let (mut events, mut alerts, mut bad) = (0u64, 0u64, 0u64);
    for (i, line) in reader.lines().enumerate() {
        let line = line.context("reading events")?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{}:{}: invalid JSON: {e}", args.file.display(), i + 1);
                bad += 1;
                continue;
            }
        };
        let ev = match JsonEvent::new(&value) {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("{}:{}: {e}", args.file.display(), i + 1);
                bad += 1;
                continue;
            }
        };
        events += 1;
        engine.evaluate(&ev, &mut scratch, &mut matched);
        for rule in &matched {
            // What the daemon sends for this match, built the same way; a response
            // covering it says what it would do.
            let mut alert = Alert::from_rule_alert(engine.alert(rule, &ev), &hostname, &value);
            alert.response = engine
                .response_for(rule, &ev, &mut scratch)
                .map(|response| crate::responses::preview(response, &rule.name, &kernel));
            writeln!(out, "{}", alert.render(args.format, false))?;
            alerts += 1;
        }
    }
    out.flush()?;
    eprintln!("monitor: replayed {events} events, {alerts} alerts, {bad} lines skipped");
    Ok(())
}

pub fn fields_cmd(args: FieldsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<_> = fields::catalog()
            .iter()
            .map(|f| {
                serde_json::json!({"name": f.name, "type": f.ty.as_str(),
                    "available": f.available, "description": f.description})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    if args.markdown {
        writeln!(out, "| field | type | description |")?;
        writeln!(out, "| --- | --- | --- |")?;
        for f in fields::catalog() {
            let unavailable = if f.available {
                ""
            } else {
                " (Never has a value here; accepted so that Falco rules naming it load.)"
            };
            writeln!(
                out,
                "| `{}` | {} | {}{unavailable} |",
                usage_name(f),
                f.ty.as_str(),
                f.description.replace('|', "\\|")
            )?;
        }
        return Ok(());
    }
    for f in fields::catalog() {
        writeln!(
            out,
            "{:<42} {:<7} {}",
            usage_name(f),
            f.ty.as_str(),
            f.description
        )?;
    }
    Ok(())
}

/// The field's name as a rule writes it, with its argument's shape.
fn usage_name(f: &fields::FieldInfo) -> String {
    match f.arg {
        fields::ArgKind::None => f.name.to_string(),
        fields::ArgKind::AncestorIndex => format!("{}[N]", f.name),
        fields::ArgKind::Key => format!("{}[KEY]", f.name),
        fields::ArgKind::OptionalKey => format!("{} or {}[KEY]", f.name, f.name),
        fields::ArgKind::EventArg => format!("{}.NAME", f.name),
    }
}

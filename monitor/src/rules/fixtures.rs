//! Rule test fixtures: YAML files beside the rules (`NAME.fixtures.yaml`) listing events
//! and the rules that must and must not fire on each. See `rules/README.md`.
use std::{path::Path, sync::Arc};

use serde_json::Value;

use super::{
    Engine, JsonEvent, Scratch,
    error::RuleError,
    text::{Loc, SourceFile},
    yaml::{self, Kind, Node, Style},
};

#[derive(Debug, Clone)]
pub struct Fixture {
    pub file: Arc<str>,
    pub line: usize,
    pub name: String,
    pub event: Value,
    pub fires: Vec<String>,
    pub not_fires: Vec<String>,
    /// No rule other than those in `fires` may fire (`exclusive: true`).
    pub exclusive: bool,
    /// Responses that must act on the event (through any rule that fired).
    pub responds: Vec<String>,
    /// The action the event must get: `kill`, `deny`, `alert`, or `none` when no
    /// response may act; unset: not checked.
    pub action: Option<String>,
}

/// One fixture's result: empty `failures` means it passed.
#[derive(Debug, Clone)]
pub struct FixtureResult {
    pub file: Arc<str>,
    pub line: usize,
    pub name: String,
    pub fired: Vec<String>,
    pub failures: Vec<String>,
}

/// YAML to JSON: plain scalars become numbers, booleans or null when they read as such.
pub fn to_json(node: &Node) -> Value {
    match &node.kind {
        Kind::Scalar(s, Style::Plain) => {
            if node.is_null() {
                Value::Null
            } else if let Some(b) = node.as_bool() {
                Value::Bool(b)
            } else if let Ok(n) = s.parse::<i64>() {
                n.into()
            } else if let Ok(n) = s.parse::<u64>() {
                n.into()
            } else if let Ok(f) = s.parse::<f64>() {
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(s.clone()))
            } else {
                Value::String(s.clone())
            }
        }
        Kind::Scalar(s, _) => Value::String(s.clone()),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

/// Parses a fixtures file.
pub fn parse(file_name: &str, text: &str) -> Result<Vec<Fixture>, Vec<RuleError>> {
    let file = SourceFile {
        name: Arc::from(file_name),
        text: Arc::from(text),
    };
    let root = match yaml::parse(text) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![RuleError {
                file: file.name.clone(),
                line: e.mark.line,
                col: e.mark.col,
                item: None,
                message: format!("invalid YAML: {}", e.message),
            }]);
        }
    };
    let Kind::Seq(items) = &root.kind else {
        return Err(vec![
            Loc::of(&file, &root).error(None, "a fixtures file must be a list"),
        ]);
    };
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let Kind::Map(entries) = &item.kind else {
            errors.push(Loc::of(&file, item).error(None, "a fixture must be a mapping"));
            continue;
        };
        let mut name = None;
        let mut event = None;
        let mut fires = Vec::new();
        let mut not_fires = Vec::new();
        let mut exclusive = false;
        let mut responds = Vec::new();
        let mut action = None;
        for (k, v) in entries {
            let key = k.as_str().unwrap_or("");
            let names = |v: &Node, errors: &mut Vec<RuleError>| -> Vec<String> {
                match &v.kind {
                    Kind::Seq(items) => items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect(),
                    _ if v.is_null() => Vec::new(),
                    _ => {
                        errors.push(
                            Loc::of(&file, v)
                                .error(None, format!("'{key}' must be a list of names")),
                        );
                        Vec::new()
                    }
                }
            };
            match key {
                "name" => name = v.as_str().map(str::to_string),
                "event" => event = Some(to_json(v)),
                "fires" => fires = names(v, &mut errors),
                "not_fires" => not_fires = names(v, &mut errors),
                "responds" => responds = names(v, &mut errors),
                "action" => match v.as_str() {
                    Some(a @ ("kill" | "deny" | "alert" | "none")) => action = Some(a.to_string()),
                    _ => errors.push(
                        Loc::of(&file, v).error(None, "'action' must be kill, deny, alert or none"),
                    ),
                },
                "exclusive" => match v.as_bool() {
                    Some(b) => exclusive = b,
                    None => errors
                        .push(Loc::of(&file, v).error(None, "'exclusive' must be true or false")),
                },
                other => errors.push(
                    Loc::of(&file, k).error(None, format!("unknown key '{other}' in fixture")),
                ),
            }
        }
        let Some(event) = event else {
            errors.push(Loc::of(&file, item).error(None, "fixture has no 'event'"));
            continue;
        };
        out.push(Fixture {
            file: file.name.clone(),
            line: item.mark.line,
            name: name.unwrap_or_else(|| format!("line {}", item.mark.line)),
            event,
            fires,
            not_fires,
            exclusive,
            responds,
            action,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub fn parse_file(path: &Path) -> Result<Vec<Fixture>, Vec<RuleError>> {
    let text = super::loader::read_rules_file(path).map_err(|e| vec![e])?;
    parse(&path.display().to_string(), &text)
}

/// Runs fixtures against an engine (every matching rule is collected, whatever the
/// engine's `rule_matching`).
pub fn run(engine: &Engine, fixtures: &[Fixture]) -> Vec<FixtureResult> {
    let mut scratch = Scratch::default();
    let mut matched = Vec::new();
    let mut results = Vec::new();
    for f in fixtures {
        let mut failures = Vec::new();
        let mut fired = Vec::new();
        match JsonEvent::new(&f.event) {
            Err(e) => failures.push(format!("invalid event: {e}")),
            Ok(ev) => {
                // The daemon's evaluation, so a fixture predicts the live result.
                engine.evaluate_all(&ev, &mut scratch, &mut matched);
                fired.extend(matched.iter().map(|r| r.name.clone()));
                for name in f.fires.iter().chain(&f.not_fires) {
                    if engine.rule(name).is_none() {
                        failures.push(format!("rule '{name}' is not loaded (or not active)"));
                    }
                }
                for name in &f.fires {
                    if engine.rule(name).is_some() && !fired.contains(name) {
                        failures.push(format!("expected rule '{name}' to fire, it did not"));
                    }
                }
                for name in &f.not_fires {
                    if fired.contains(name) {
                        failures.push(format!("expected rule '{name}' not to fire, it did"));
                    }
                }
                // Responses, as the daemon picks them: per fired rule, the first
                // covering response whose scope takes the event.
                let acting: Vec<_> = matched
                    .iter()
                    .filter_map(|rule| engine.response_for(rule, &ev, &mut scratch))
                    .collect();
                for name in &f.responds {
                    if !engine.responses().iter().any(|r| &r.name == name) {
                        failures.push(format!("response '{name}' is not loaded"));
                    } else if !acting.iter().any(|r| &r.name == name) {
                        failures.push(format!("expected response '{name}' to act, it did not"));
                    }
                }
                if let Some(expected) = &f.action {
                    let got = acting.first().map_or("none", |r| r.action.as_str());
                    if got != expected {
                        failures.push(format!(
                            "expected action '{expected}', the event gets '{got}'"
                        ));
                    }
                }
                if f.exclusive {
                    for name in &fired {
                        if !f.fires.contains(name) && !f.not_fires.contains(name) {
                            failures.push(format!(
                                "expected no rule but those in 'fires' to fire, '{name}' did"
                            ));
                        }
                    }
                }
            }
        }
        results.push(FixtureResult {
            file: f.file.clone(),
            line: f.line,
            name: f.name.clone(),
            fired,
            failures,
        });
    }
    results
}

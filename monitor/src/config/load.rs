//! Building the settings from their three sources, remembering where each value came
//! from so that an error names the file position, the variable or the flag to fix.
use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use serde_json::{Map, Number, Value};

use super::{DEFAULT_CONFIG_PATH, Settings};
use crate::rules::yaml::{self, Kind, Mark, Node, Style};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    Default,
    File { path: PathBuf, mark: Mark },
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File { path, mark } => {
                write!(f, "{}:{}:{}", path.display(), mark.line, mark.col)
            }
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A value given on the command line for the key at `path` (dotted, as in the file).
pub struct Override {
    pub path: &'static str,
    pub value: Value,
    pub flag: &'static str,
}

/// Which file to read.
#[derive(Clone, Debug, Default)]
pub struct SettingsSource {
    /// Given with --config or MONITOR_CONFIG: it must exist. `None`: the default
    /// path, used when present.
    pub explicit: Option<PathBuf>,
}

impl SettingsSource {
    pub fn path(&self) -> PathBuf {
        self.explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

/// Every problem found, one per line, each starting with where to fix it.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// The settings, and which file (if any) they were read from.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub file: Option<PathBuf>,
    origins: HashMap<String, Origin>,
}

impl Loaded {
    /// Where the value of a dotted key came from.
    pub fn origin(&self, path: &str) -> Origin {
        self.origins.get(path).cloned().unwrap_or(Origin::Default)
    }
}

/// The environment variable that overrides a dotted key: `server.listen` is
/// `MONITOR_SERVER_LISTEN`.
pub fn env_var_name(path: &str) -> String {
    format!("MONITOR_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Reads the file, applies the environment and the flags, and checks the result.
pub fn load(
    source: &SettingsSource,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    let path = source.path();
    let mut origins = HashMap::new();
    let mut key_marks = HashMap::new();
    let missing = std::fs::metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    let (mut tree, file) = if missing && source.explicit.is_none() {
        (Value::Object(Map::new()), None)
    } else if missing {
        return Err(ConfigError {
            problems: vec![format!(
                "{}: cannot read the config file: it does not exist",
                path.display()
            )],
        });
    } else {
        let text = yaml::read_source(&path).map_err(|e| ConfigError {
            problems: vec![format!(
                "{}:{}:{}: config file: {}",
                path.display(),
                e.mark.line,
                e.mark.col,
                e.message
            )],
        })?;
        let tree = file_tree(&path, &text, &mut origins, &mut key_marks)?;
        (tree, Some(path.clone()))
    };

    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let leaves = leaves(&defaults);
    let mut problems = Vec::new();
    let env: HashMap<String, String> = env.into_iter().collect();
    for (key, default) in &leaves {
        let name = env_var_name(key);
        let Some(text) = env.get(&name) else {
            continue;
        };
        match env_value(default, text) {
            Ok(value) => {
                set(&mut tree, key, value);
                origins.insert(key.clone(), Origin::Env(name));
            }
            Err(message) => problems.push(format!("environment variable {name}: {message}")),
        }
    }
    for o in overrides {
        set(&mut tree, o.path, o.value.clone());
        origins.insert(o.path.to_string(), Origin::Flag(o.flag));
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }

    // A key without a recorded origin took it from its closest given parent (a flag
    // or variable that set a whole map).
    let locate = |key: &str| -> String {
        let mut at = key;
        loop {
            if let Some(origin) = origins.get(at) {
                return format!("{origin}: {key}");
            }
            match at.rfind(['.', '[']) {
                Some(i) => at = &at[..i],
                None => break,
            }
        }
        match &file {
            Some(f) => format!("{}: {key}", f.display()),
            None => key.to_string(),
        }
    };
    let settings: Settings = match serde_path_to_error::deserialize(tree) {
        Ok(settings) => settings,
        Err(err) => {
            let key = dotted(err.path());
            let message = err.inner().to_string();
            // An unknown key is reported at the key itself, not at its parent.
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .map(|name| {
                    if key == name || key.ends_with(&format!(".{name}")) {
                        key.clone()
                    } else {
                        join(&key, name)
                    }
                });
            let at = match unknown.as_deref().and_then(|k| key_marks.get(k)) {
                Some(mark) => format!(
                    "{}: {}",
                    Origin::File {
                        path: path.clone(),
                        mark: *mark
                    },
                    unknown.as_deref().unwrap_or_default()
                ),
                None => locate(&key),
            };
            return Err(ConfigError {
                problems: vec![format!("{at}: {}", plain_message(&message))],
            });
        }
    };
    let invalid = settings.validate();
    if !invalid.is_empty() {
        return Err(ConfigError {
            problems: invalid
                .into_iter()
                .map(|i| format!("{}: {}", locate(i.path), i.message))
                .collect(),
        });
    }
    Ok(Loaded {
        settings,
        file,
        origins,
    })
}

/// serde's wording, with the type names our users know.
fn plain_message(message: &str) -> String {
    message
        .replace("u32", "a whole number")
        .replace("u64", "a whole number")
        .replace("u8", "a whole number")
        .replace("usize", "a whole number")
        .replace("f64", "a number")
}

fn file_tree(
    path: &Path,
    text: &str,
    origins: &mut HashMap<String, Origin>,
    key_marks: &mut HashMap<String, Mark>,
) -> Result<Value, ConfigError> {
    let at = |mark: Mark| Origin::File {
        path: path.to_path_buf(),
        mark,
    };
    let root = yaml::parse(text).map_err(|e| ConfigError {
        problems: vec![format!("{}: invalid YAML: {}", at(e.mark), e.message)],
    })?;
    let Some(root) = root else {
        return Ok(Value::Object(Map::new()));
    };
    if root.is_null() {
        return Ok(Value::Object(Map::new()));
    }
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(ConfigError {
            problems: vec![format!(
                "{}: the config must be a mapping of settings (log:, rules:, sensor:, ...), \
                 found {}",
                at(root.mark),
                root.describe()
            )],
        });
    }
    let mut problems = Vec::new();
    let mut record = |key: &str, value: Mark, key_mark: Option<Mark>| {
        origins.insert(key.to_string(), at(value));
        if let Some(m) = key_mark {
            key_marks.insert(key.to_string(), m);
        }
    };
    let value = to_value(&root, String::new(), &mut record, &mut problems, &at);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError { problems })
    }
}

fn to_value(
    node: &Node,
    key: String,
    record: &mut impl FnMut(&str, Mark, Option<Mark>),
    problems: &mut Vec<String>,
    at: &impl Fn(Mark) -> Origin,
) -> Value {
    match &node.kind {
        Kind::Scalar(s, style) => scalar(s, *style),
        Kind::Seq(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let k = format!("{key}[{i}]");
                    record(&k, item.mark, None);
                    to_value(item, k, record, problems, at)
                })
                .collect(),
        ),
        Kind::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let Some(name) = k.as_str() else {
                    problems.push(format!("{}: a key must be a plain name", at(k.mark)));
                    continue;
                };
                let child = join(&key, name);
                record(&child, v.mark, Some(k.mark));
                let value = to_value(v, child, record, problems, at);
                map.insert(name.to_string(), value);
            }
            Value::Object(map)
        }
    }
}

/// YAML 1.2 core schema for plain scalars; quoted ones are always strings.
fn scalar(s: &str, style: Style) -> Value {
    if style != Style::Plain {
        return Value::String(s.to_string());
    }
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = s.parse::<u64>() {
            return Value::Number(n.into());
        }
        if let Ok(n) = s.parse::<i64>() {
            return Value::Number(n.into());
        }
    }
    if s.bytes().any(|b| b.is_ascii_digit())
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = join(&out, key),
            Segment::Enum { variant } => out = join(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

/// Every setting of a settings tree with its dotted key: sections are walked into,
/// except free-form maps (`headers`), which are one setting.
pub fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map)
                if prefix.is_empty() || !(map.is_empty() || prefix.ends_with("headers")) =>
            {
                for (k, v) in map {
                    walk(v, join(&prefix, k), out);
                }
            }
            _ => out.push((prefix, value.clone())),
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// A variable's text as the type of the key's default: numbers and booleans parsed,
/// lists comma-separated, maps as `Name: value` pairs separated by newlines.
fn env_value(default: &Value, text: &str) -> Result<Value, String> {
    match default {
        Value::Bool(_) => match text.trim() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            other => Err(format!("`{other}`: expected true or false")),
        },
        Value::Number(_) => match scalar(text.trim(), Style::Plain) {
            n @ Value::Number(_) => Ok(n),
            _ => Err(format!("`{text}`: expected a number")),
        },
        Value::Array(_) => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        Value::Object(_) => {
            let mut map = Map::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let (k, v) = line
                    .split_once(':')
                    .ok_or_else(|| format!("`{line}`: expected `Name: value` per line"))?;
                map.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
            }
            Ok(Value::Object(map))
        }
        Value::Null | Value::String(_) => Ok(Value::String(text.to_string())),
    }
}

/// Sets a dotted key, creating the sections on the way.
fn set(tree: &mut Value, path: &str, value: Value) {
    let mut node = tree;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let map = node.as_object_mut().expect("object");
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

//! Reads rule files in Falco's YAML format into definitions: lists, macros, rules,
//! with `append: true` and `override:` applied in load order.
use std::{collections::HashMap, sync::Arc};

use super::{
    error::RuleError,
    response::{Action, Mode as ResponseMode, ResponseDef},
    text::{Loc, LocatedText, SourceFile},
    yaml::{self, Kind, Node},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return None,
        })
    }

    /// The name Falco prints in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ListDef {
    pub name: String,
    pub items: Vec<(String, Loc)>,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct MacroDef {
    pub name: String,
    pub condition: LocatedText,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct ExceptionDef {
    pub name: String,
    pub loc: Loc,
    /// One field (`fields: proc.name`) or several (`fields: [a, b]`).
    pub fields: Vec<(String, Loc)>,
    pub single_field: bool,
    pub comps: Vec<(String, Loc)>,
    /// Each entry: one value (single field) or one tuple (several fields); a value may
    /// itself be a list (for `in`).
    pub values: Vec<(Node, Loc)>,
}

#[derive(Clone, Debug)]
pub struct RuleDef {
    pub name: String,
    pub loc: Loc,
    pub desc: Option<String>,
    pub condition: Option<LocatedText>,
    pub output: Option<LocatedText>,
    pub priority: Option<(String, Loc)>,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub source: String,
    pub exceptions: Vec<ExceptionDef>,
}

/// Everything defined by a set of files, later definitions applied over earlier ones.
#[derive(Default, Debug)]
pub struct Definitions {
    pub lists: Vec<ListDef>,
    pub macros: Vec<MacroDef>,
    pub rules: Vec<RuleDef>,
    pub responses: Vec<ResponseDef>,
    list_index: HashMap<String, usize>,
    macro_index: HashMap<String, usize>,
    rule_index: HashMap<String, usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Append,
    Replace,
}

struct ItemCtx<'a> {
    file: &'a SourceFile,
    what: &'static str,
    name: String,
    errors: &'a mut Vec<RuleError>,
}

impl ItemCtx<'_> {
    fn label(&self) -> String {
        format!("{} '{}'", self.what, self.name)
    }
    fn err(&mut self, node: &Node, msg: impl Into<String>) {
        let label = self.label();
        self.errors
            .push(Loc::of(self.file, node).error(Some(&label), msg));
    }
}

fn scalar<'n>(ctx: &mut ItemCtx<'_>, key: &str, node: &'n Node) -> Option<&'n str> {
    match node.as_str() {
        Some(s) => Some(s),
        None => {
            ctx.err(
                node,
                format!("'{key}' must be a string, found {}", node.describe()),
            );
            None
        }
    }
}

fn string_list(ctx: &mut ItemCtx<'_>, key: &str, node: &Node) -> Vec<(String, Loc)> {
    if node.is_null() {
        return Vec::new();
    }
    match &node.kind {
        Kind::Seq(items) => {
            let mut out = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => out.push((s.to_string(), Loc::of(ctx.file, item))),
                    None => ctx.err(
                        item,
                        format!("'{key}' items must be strings, found {}", item.describe()),
                    ),
                }
            }
            out
        }
        _ => {
            ctx.err(
                node,
                format!("'{key}' must be a list, found {}", node.describe()),
            );
            Vec::new()
        }
    }
}

fn boolean(ctx: &mut ItemCtx<'_>, key: &str, node: &Node) -> Option<bool> {
    let b = node.as_bool();
    if b.is_none() {
        ctx.err(node, format!("'{key}' must be true or false"));
    }
    b
}

/// Parses the `override:` mapping into key → mode.
fn overrides(ctx: &mut ItemCtx<'_>, node: &Node, allowed: &[&str]) -> HashMap<String, Mode> {
    let mut out = HashMap::new();
    let Kind::Map(entries) = &node.kind else {
        ctx.err(node, "'override' must be a mapping of key: append|replace");
        return out;
    };
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default().to_string();
        if !allowed.contains(&key.as_str()) {
            ctx.err(
                k,
                format!(
                    "key '{key}' cannot be overridden (allowed: {})",
                    allowed.join(", ")
                ),
            );
            continue;
        }
        match v.as_str() {
            Some("append") => {
                out.insert(key, Mode::Append);
            }
            Some("replace") => {
                out.insert(key, Mode::Replace);
            }
            _ => ctx.err(
                v,
                format!("override of '{key}' must be 'append' or 'replace'"),
            ),
        }
    }
    out
}

impl Definitions {
    /// Loads one file's items on top of what is already defined.
    pub fn load_file(&mut self, file: &SourceFile, errors: &mut Vec<RuleError>) {
        let root = match yaml::parse(&file.text) {
            Ok(Some(root)) => root,
            Ok(None) => return,
            Err(e) => {
                errors.push(RuleError {
                    file: file.name.clone(),
                    line: e.mark.line,
                    col: e.mark.col,
                    item: None,
                    message: format!("invalid YAML: {}", e.message),
                });
                return;
            }
        };
        if root.is_null() {
            return;
        }
        let Kind::Seq(items) = &root.kind else {
            errors.push(Loc::of(file, &root).error(
                None,
                "a rules file must be a list of items (- rule:, - macro:, - list:)",
            ));
            return;
        };
        for item in items {
            self.load_item(file, item, errors);
        }
    }

    fn load_item(&mut self, file: &SourceFile, item: &Node, errors: &mut Vec<RuleError>) {
        let Kind::Map(entries) = &item.kind else {
            errors.push(Loc::of(file, item).error(
                None,
                format!("expected a mapping item, found {}", item.describe()),
            ));
            return;
        };
        let get = |k: &str| entries.iter().find(|(key, _)| key.as_str() == Some(k));
        let (what, allowed): (&'static str, &[&str]) = if get("rule").is_some() {
            (
                "rule",
                &[
                    "rule",
                    "desc",
                    "condition",
                    "output",
                    "priority",
                    "tags",
                    "enabled",
                    "source",
                    "exceptions",
                    "append",
                    "override",
                    "warn_evttypes",
                    "skip-if-unknown-filter",
                ],
            )
        } else if get("macro").is_some() {
            ("macro", &["macro", "condition", "append", "override"])
        } else if get("list").is_some() {
            ("list", &["list", "items", "append", "override"])
        } else if get("response").is_some() {
            (
                "response",
                &[
                    "response", "desc", "rules", "tags", "action", "mode", "scope", "enabled",
                ],
            )
        } else if get("required_engine_version").is_some() {
            ("required_engine_version", &["required_engine_version"])
        } else if get("required_plugin_versions").is_some() {
            ("required_plugin_versions", &["required_plugin_versions"])
        } else {
            let first = entries
                .first()
                .and_then(|(k, _)| k.as_str())
                .unwrap_or("?")
                .to_string();
            let at = entries.first().map(|(k, _)| k).unwrap_or(item);
            errors.push(Loc::of(file, at).error(
                None,
                format!("unknown item '{first}': expected rule, macro, list, response, required_engine_version or required_plugin_versions"),
            ));
            return;
        };
        let name_node = get(what).map(|(_, v)| v);
        let name = name_node.and_then(|n| n.as_str()).unwrap_or("").to_string();
        let mut ctx = ItemCtx {
            file,
            what,
            name,
            errors,
        };
        let mut bad = false;
        for (k, _) in entries {
            let key = k.as_str().unwrap_or("");
            if !allowed.contains(&key) {
                ctx.err(k, format!("unknown key '{key}'"));
                bad = true;
            }
        }
        match what {
            "required_engine_version" | "required_plugin_versions" => {}
            _ => {
                if let Some(n) = name_node
                    && (n.as_str().is_none() || ctx.name.is_empty())
                {
                    ctx.err(n, format!("{what} name must be a non-empty string"));
                    return;
                }
                // Unknown keys are reported; the rest of the item is still checked.
                let _ = bad;
                let entries: Vec<(&str, &Node)> = entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or(""), v))
                    .collect();
                match what {
                    "list" => self.load_list(&mut ctx, item, &entries),
                    "macro" => self.load_macro(&mut ctx, item, &entries),
                    "response" => self.load_response(&mut ctx, item, &entries),
                    _ => self.load_rule(&mut ctx, item, &entries),
                }
            }
        }
    }

    /// Decides define / append / replace per key from `append:` and `override:`.
    fn modes(
        ctx: &mut ItemCtx<'_>,
        entries: &[(&str, &Node)],
        appendable: &[&str],
        overridable: &[&str],
    ) -> Option<(bool, HashMap<String, Mode>)> {
        let append = match entries.iter().find(|(k, _)| *k == "append") {
            Some((_, v)) => boolean(ctx, "append", v)?,
            None => false,
        };
        let ovr = entries
            .iter()
            .find(|(k, _)| *k == "override")
            .map(|(_, v)| overrides(ctx, v, overridable));
        if append && ovr.is_some() {
            let node = entries
                .iter()
                .find(|(k, _)| *k == "append")
                .map(|(_, v)| *v)?;
            ctx.err(node, "'append' and 'override' cannot be used together");
            return None;
        }
        let mut modes = HashMap::new();
        if let Some(ovr) = ovr {
            for (k, v) in entries {
                if matches!(*k, "rule" | "macro" | "list" | "override") {
                    continue;
                }
                match ovr.get(*k) {
                    Some(Mode::Append) if !appendable.contains(k) => {
                        ctx.err(v, format!("key '{k}' cannot be appended, only replaced"));
                        return None;
                    }
                    Some(m) => {
                        modes.insert(k.to_string(), *m);
                    }
                    None => {
                        ctx.err(v, format!("key '{k}' is not listed in 'override'"));
                        return None;
                    }
                }
            }
            for k in ovr.keys() {
                if !entries.iter().any(|(e, _)| e == k) {
                    let node = entries
                        .iter()
                        .find(|(e, _)| *e == "override")
                        .map(|(_, v)| *v)?;
                    ctx.err(
                        node,
                        format!("'override' names '{k}' but the item does not set it"),
                    );
                    return None;
                }
            }
            return Some((true, modes));
        }
        if append {
            for (k, _) in entries {
                if appendable.contains(k) {
                    modes.insert(k.to_string(), Mode::Append);
                }
            }
            return Some((true, modes));
        }
        Some((false, modes))
    }

    fn load_list(&mut self, ctx: &mut ItemCtx<'_>, item: &Node, entries: &[(&str, &Node)]) {
        let Some((is_update, modes)) = Self::modes(ctx, entries, &["items"], &["items"]) else {
            return;
        };
        let items_node = entries.iter().find(|(k, _)| *k == "items").map(|(_, v)| *v);
        let items = items_node
            .map(|n| string_list(ctx, "items", n))
            .unwrap_or_default();
        if !is_update {
            if items_node.is_none() {
                ctx.err(item, "list is missing 'items'");
                return;
            }
            let name_node = entries
                .iter()
                .find(|(k, _)| *k == "list")
                .map(|(_, v)| *v)
                .unwrap_or(item);
            let def = ListDef {
                name: ctx.name.clone(),
                items,
                loc: Loc::of(ctx.file, name_node),
            };
            match self.list_index.get(&ctx.name) {
                Some(&i) => self.lists[i] = def,
                None => {
                    self.list_index.insert(ctx.name.clone(), self.lists.len());
                    self.lists.push(def);
                }
            }
            return;
        }
        let Some(&i) = self.list_index.get(&ctx.name) else {
            ctx.err(
                item,
                format!(
                    "list '{}' is not defined: cannot append to or override it",
                    ctx.name
                ),
            );
            return;
        };
        match modes.get("items") {
            Some(Mode::Append) => self.lists[i].items.extend(items),
            Some(Mode::Replace) => self.lists[i].items = items,
            _ => {}
        }
    }

    fn load_macro(&mut self, ctx: &mut ItemCtx<'_>, item: &Node, entries: &[(&str, &Node)]) {
        let Some((is_update, modes)) = Self::modes(ctx, entries, &["condition"], &["condition"])
        else {
            return;
        };
        let cond = match entries.iter().find(|(k, _)| *k == "condition") {
            Some((_, v)) => match scalar(ctx, "condition", v) {
                Some(s) => Some((s.to_string(), Loc::of(ctx.file, v))),
                None => return,
            },
            None => None,
        };
        if !is_update {
            let Some((text, loc)) = cond else {
                ctx.err(item, "macro is missing 'condition'");
                return;
            };
            let def = MacroDef {
                name: ctx.name.clone(),
                condition: LocatedText::new(&text, loc),
                loc: Loc::of(ctx.file, item),
            };
            match self.macro_index.get(&ctx.name) {
                Some(&i) => self.macros[i] = def,
                None => {
                    self.macro_index.insert(ctx.name.clone(), self.macros.len());
                    self.macros.push(def);
                }
            }
            return;
        }
        let Some(&i) = self.macro_index.get(&ctx.name) else {
            ctx.err(
                item,
                format!(
                    "macro '{}' is not defined: cannot append to or override it",
                    ctx.name
                ),
            );
            return;
        };
        if let Some((text, loc)) = cond {
            match modes.get("condition") {
                Some(Mode::Append) => self.macros[i].condition.append(&text, loc),
                Some(Mode::Replace) => self.macros[i].condition = LocatedText::new(&text, loc),
                _ => {}
            }
        }
    }

    /// A `- response:` item. Responses are whole items: a later one of the same name
    /// replaces the earlier one (no append or override).
    fn load_response(&mut self, ctx: &mut ItemCtx<'_>, item: &Node, entries: &[(&str, &Node)]) {
        let mut def = ResponseDef {
            name: ctx.name.clone(),
            loc: Loc::of(ctx.file, item),
            rules: Vec::new(),
            tags: Vec::new(),
            action: Action::Alert,
            mode: ResponseMode::default(),
            scope: None,
            enabled: true,
        };
        let mut ok = true;
        let mut action = None;
        for (k, v) in entries {
            match *k {
                "desc" if scalar(ctx, k, v).is_none() => ok = false,
                "rules" => def.rules = string_list(ctx, k, v),
                "tags" => def.tags = string_list(ctx, k, v),
                "action" => match scalar(ctx, k, v) {
                    Some(s) => match Action::parse(s) {
                        Some(a) => action = Some(a),
                        None => {
                            ctx.err(
                                v,
                                format!("invalid action '{s}': expected kill, deny or alert"),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "mode" => match scalar(ctx, k, v) {
                    Some(s) => match ResponseMode::parse(s) {
                        Some(m) => def.mode = m,
                        None => {
                            ctx.err(
                                v,
                                format!("invalid mode '{s}': expected dry-run or enforce"),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "scope" => match scalar(ctx, k, v) {
                    Some(s) => def.scope = Some(LocatedText::new(s, Loc::of(ctx.file, v))),
                    None => ok = false,
                },
                "enabled" => match boolean(ctx, k, v) {
                    Some(b) => def.enabled = b,
                    None => ok = false,
                },
                _ => {}
            }
        }
        match action {
            Some(a) => def.action = a,
            None if ok => {
                ctx.err(item, "missing required key 'action' (kill, deny or alert)");
                ok = false;
            }
            None => {}
        }
        if ok && def.rules.is_empty() && def.tags.is_empty() {
            ctx.err(
                item,
                "a response names the rules it covers: 'rules: [...]', 'tags: [...]' or both",
            );
            ok = false;
        }
        if !ok {
            return;
        }
        match self.responses.iter_mut().find(|r| r.name == def.name) {
            Some(existing) => *existing = def,
            None => self.responses.push(def),
        }
    }

    fn load_rule(&mut self, ctx: &mut ItemCtx<'_>, item: &Node, entries: &[(&str, &Node)]) {
        const APPENDABLE: &[&str] = &["condition", "output", "desc", "tags", "exceptions"];
        const OVERRIDABLE: &[&str] = &[
            "condition",
            "output",
            "desc",
            "priority",
            "tags",
            "exceptions",
            "enabled",
            "source",
            "warn_evttypes",
            "skip-if-unknown-filter",
        ];
        let Some((mut is_update, mut modes)) = Self::modes(ctx, entries, APPENDABLE, OVERRIDABLE)
        else {
            return;
        };
        // Falco's legacy form `- rule: X / enabled: false` toggles an existing rule.
        if !is_update
            && entries.len() == 2
            && entries.iter().any(|(k, _)| *k == "enabled")
            && self.rule_index.contains_key(&ctx.name)
        {
            is_update = true;
            modes.insert("enabled".into(), Mode::Replace);
        }
        let mut desc = None;
        let mut condition = None;
        let mut output = None;
        let mut priority = None;
        let mut tags = None;
        let mut enabled = None;
        let mut source = None;
        let mut exceptions = None;
        let mut ok = true;
        for (k, v) in entries {
            match *k {
                "desc" => match scalar(ctx, k, v) {
                    Some(s) => desc = Some(s.trim_end().to_string()),
                    None => ok = false,
                },
                "condition" | "output" => match scalar(ctx, k, v) {
                    Some(s) => {
                        let t = (s.to_string(), Loc::of(ctx.file, v));
                        if *k == "condition" {
                            condition = Some(t)
                        } else {
                            output = Some(t)
                        }
                    }
                    None => ok = false,
                },
                "priority" => match scalar(ctx, k, v) {
                    Some(s) => {
                        if Priority::parse(s).is_none() {
                            ctx.err(v, format!("invalid priority '{s}': expected EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFORMATIONAL or DEBUG"));
                            ok = false;
                        }
                        priority = Some((s.to_string(), Loc::of(ctx.file, v)));
                    }
                    None => ok = false,
                },
                "tags" => {
                    tags = Some(
                        string_list(ctx, k, v)
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect::<Vec<_>>(),
                    )
                }
                "enabled" => match boolean(ctx, k, v) {
                    Some(b) => enabled = Some(b),
                    None => ok = false,
                },
                "source" => match scalar(ctx, k, v) {
                    Some(s) => source = Some(s.to_string()),
                    None => ok = false,
                },
                "exceptions" => match self::exceptions(ctx, v) {
                    Some(e) => exceptions = Some(e),
                    None => ok = false,
                },
                "skip-if-unknown-filter" | "warn_evttypes" if boolean(ctx, k, v).is_none() => {
                    ok = false
                }
                _ => {}
            }
        }
        if !ok {
            return;
        }
        if !is_update {
            for key in ["condition", "output", "desc", "priority"] {
                if !entries.iter().any(|(k, _)| *k == key) {
                    ctx.err(item, format!("missing required key '{key}'"));
                    ok = false;
                }
            }
            if !ok {
                return;
            }
            let def = RuleDef {
                name: ctx.name.clone(),
                loc: Loc::of(ctx.file, item),
                desc,
                condition: condition.map(|(t, l)| LocatedText::new(&t, l)),
                output: output.map(|(t, l)| LocatedText::new(&t, l)),
                priority,
                tags: tags.unwrap_or_default(),
                enabled: enabled.unwrap_or(true),
                source: source.unwrap_or_else(|| "syscall".into()),
                exceptions: exceptions.unwrap_or_default(),
            };
            match self.rule_index.get(&ctx.name) {
                Some(&i) => self.rules[i] = def,
                None => {
                    self.rule_index.insert(ctx.name.clone(), self.rules.len());
                    self.rules.push(def);
                }
            }
            return;
        }
        let Some(&i) = self.rule_index.get(&ctx.name) else {
            ctx.err(
                item,
                format!(
                    "rule '{}' is not defined: cannot append to or override it",
                    ctx.name
                ),
            );
            return;
        };
        let rule = &mut self.rules[i];
        let mode = |k: &str| modes.get(k).copied();
        if let Some((t, l)) = condition {
            match (mode("condition"), rule.condition.as_mut()) {
                (Some(Mode::Append), Some(c)) => c.append(&t, l),
                _ => rule.condition = Some(LocatedText::new(&t, l)),
            }
        }
        if let Some((t, l)) = output {
            match (mode("output"), rule.output.as_mut()) {
                (Some(Mode::Append), Some(c)) => c.append(&t, l),
                _ => rule.output = Some(LocatedText::new(&t, l)),
            }
        }
        if let Some(d) = desc {
            match (mode("desc"), rule.desc.as_mut()) {
                (Some(Mode::Append), Some(old)) => {
                    old.push(' ');
                    old.push_str(&d);
                }
                _ => rule.desc = Some(d),
            }
        }
        if let Some(p) = priority {
            rule.priority = Some(p);
        }
        if let Some(t) = tags {
            if mode("tags") == Some(Mode::Append) {
                for tag in t {
                    if !rule.tags.contains(&tag) {
                        rule.tags.push(tag);
                    }
                }
            } else {
                rule.tags = t;
            }
        }
        if let Some(e) = enabled {
            rule.enabled = e;
        }
        if let Some(s) = source {
            rule.source = s;
        }
        if let Some(exc) = exceptions {
            if mode("exceptions") == Some(Mode::Append) {
                for e in exc {
                    match rule.exceptions.iter_mut().find(|x| x.name == e.name) {
                        // Same name: its values are added to the existing exception.
                        Some(existing) => existing.values.extend(e.values),
                        None => rule.exceptions.push(e),
                    }
                }
            } else {
                rule.exceptions = exc;
            }
        }
    }
}

fn exceptions(ctx: &mut ItemCtx<'_>, node: &Node) -> Option<Vec<ExceptionDef>> {
    if node.is_null() {
        return Some(Vec::new());
    }
    let Kind::Seq(items) = &node.kind else {
        ctx.err(node, "'exceptions' must be a list");
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        let Kind::Map(entries) = &item.kind else {
            ctx.err(
                item,
                "an exception must be a mapping with name, fields, comps, values",
            );
            ok = false;
            continue;
        };
        let mut name = None;
        let mut fields = None;
        let mut single = false;
        let mut comps = None;
        let mut values = Vec::new();
        for (k, v) in entries {
            match k.as_str().unwrap_or("") {
                "name" => name = v.as_str().map(str::to_string),
                "fields" => match &v.kind {
                    Kind::Scalar(s, _) => {
                        single = true;
                        fields = Some(vec![(s.clone(), Loc::of(ctx.file, v))]);
                    }
                    _ => fields = Some(string_list(ctx, "fields", v)),
                },
                "comps" => match &v.kind {
                    Kind::Scalar(s, _) => comps = Some(vec![(s.clone(), Loc::of(ctx.file, v))]),
                    _ => comps = Some(string_list(ctx, "comps", v)),
                },
                "values" => match &v.kind {
                    Kind::Seq(vals) => {
                        values = vals
                            .iter()
                            .map(|x| (x.clone(), Loc::of(ctx.file, x)))
                            .collect()
                    }
                    _ if v.is_null() => {}
                    _ => {
                        ctx.err(v, "exception 'values' must be a list");
                        ok = false;
                    }
                },
                other => {
                    ctx.err(k, format!("unknown key '{other}' in exception"));
                    ok = false;
                }
            }
        }
        let Some(name) = name else {
            ctx.err(item, "exception is missing 'name'");
            ok = false;
            continue;
        };
        let fields = fields.unwrap_or_default();
        let comps = comps.unwrap_or_default();
        if !fields.is_empty() && !comps.is_empty() && comps.len() != fields.len() {
            ctx.err(
                item,
                format!(
                    "exception '{name}': {} comps for {} fields",
                    comps.len(),
                    fields.len()
                ),
            );
            ok = false;
        }
        out.push(ExceptionDef {
            name,
            loc: Loc::of(ctx.file, item),
            fields,
            single_field: single,
            comps,
            values,
        });
    }
    ok.then_some(out)
}

/// Reads the files (a folder stands for its `*.yaml` files sorted by name, fixtures
/// excluded) in order.
pub fn expand_paths(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, RuleError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| io_error(p, &e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let n = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.ends_with(".yaml") && !n.ends_with(".fixtures.yaml") && f.is_file()
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

pub fn io_error(p: &std::path::Path, e: &std::io::Error) -> RuleError {
    RuleError {
        file: Arc::from(p.display().to_string()),
        line: 1,
        col: 1,
        item: None,
        message: format!("cannot read: {e}"),
    }
}

/// A rules file's text (see `yaml::read_source`), or the error at its place.
pub fn read_rules_file(p: &std::path::Path) -> Result<String, RuleError> {
    super::yaml::read_source(p).map_err(|e| RuleError {
        file: Arc::from(p.display().to_string()),
        line: e.mark.line,
        col: e.mark.col,
        item: None,
        message: e.message,
    })
}

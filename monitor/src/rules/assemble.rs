//! Assembles the engine from the loaded definitions, as Falco's rule collector and
//! compiler do: named lists flattened, exceptions turned into conditions, macros, rules
//! and responses compiled, each rule indexed by the event types it can match.
use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
};

use super::{
    EventType, Priority, compile,
    compile::{Compiler, Scope},
    dispatch::TypeRules,
    engine::{CompiledRule, Engine, RuleMatching, RuleStatus, RuleSummary},
    error::{LoadErrors, RuleError},
    event_types,
    loader::{self, Definitions, ExceptionDef, RuleDef},
    output::OutputTemplate,
    parser,
    parser::{Check, Expr, FieldExpr, Op, Rhs, Value},
    response, specialize, text,
    text::{Loc, SourceFile},
    tree::Node,
    yaml::{self, Kind},
};

impl Engine {
    /// Loads rule files and folders (a folder's `*.yaml` files sorted by name,
    /// `*.fixtures.yaml` excluded), in order. All errors of the load are returned.
    pub fn load_paths(paths: &[PathBuf]) -> Result<Engine, LoadErrors> {
        let files = loader::expand_paths(paths).map_err(|e| LoadErrors(vec![e]))?;
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            match loader::read_rules_file(&f) {
                Ok(text) => sources.push((f.display().to_string(), text)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        Engine::load_sources(&sources)
    }

    /// Loads rules from `(file name, text)` pairs, in order.
    pub fn load_sources(sources: &[(String, String)]) -> Result<Engine, LoadErrors> {
        let mut errors = Vec::new();
        let mut defs = Definitions::default();
        for (name, text) in sources {
            let file = SourceFile {
                name: Arc::from(name.as_str()),
                text: Arc::from(text.as_str()),
            };
            defs.load_file(&file, &mut errors);
        }
        let engine = build(&defs, &mut errors);
        // The same macro error can surface through several rules: report it once.
        let mut seen = HashSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        if errors.is_empty() {
            Ok(engine)
        } else {
            Err(LoadErrors(errors))
        }
    }
}

/// Removes the quotes of a list item written as `'"a b"'` (Falco's way of putting
/// spaces or special characters in an item).
fn unquote_item(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        let inner = &t[1..t.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    t.to_string()
}

fn flatten_lists(defs: &Definitions, errors: &mut Vec<RuleError>) -> HashMap<String, Vec<String>> {
    let by_name: HashMap<&str, &loader::ListDef> =
        defs.lists.iter().map(|l| (l.name.as_str(), l)).collect();
    fn walk(
        name: &str,
        by_name: &HashMap<&str, &loader::ListDef>,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
        cycle: &mut Option<String>,
    ) {
        let Some(list) = by_name.get(name) else {
            return;
        };
        stack.push(name.to_string());
        for (item, _) in &list.items {
            if by_name.contains_key(item.as_str()) {
                if stack.iter().any(|s| s == item) {
                    if cycle.is_none() {
                        let mut chain = stack.clone();
                        chain.push(item.clone());
                        *cycle = Some(chain.join(" -> "));
                    }
                    continue;
                }
                walk(item, by_name, stack, out, cycle);
            } else {
                let v = unquote_item(item);
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        stack.pop();
    }
    let mut out = HashMap::new();
    for list in &defs.lists {
        let mut items = Vec::new();
        let mut cycle = None;
        walk(
            &list.name,
            &by_name,
            &mut Vec::new(),
            &mut items,
            &mut cycle,
        );
        if let Some(c) = cycle {
            errors.push(list.loc.error(
                Some(&format!("list '{}'", list.name)),
                format!("list cycle: {c}"),
            ));
        }
        out.insert(list.name.clone(), items);
    }
    out
}

fn field_expr_of(text: &str) -> Result<FieldExpr, String> {
    match parser::parse_condition(&format!("{text} exists")) {
        Ok(Expr::Check(Check { field, .. })) => Ok(field),
        _ => Err(format!("invalid field '{text}'")),
    }
}

fn value_of(node: &yaml::Node) -> Option<Rhs> {
    match &node.kind {
        Kind::Scalar(s, _) => Some(Rhs::Value(Value {
            text: s.clone(),
            quoted: false,
            pos: 0,
        })),
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(|s| Value {
                    text: s.to_string(),
                    quoted: false,
                    pos: 0,
                })
            })
            .collect::<Option<Vec<_>>>()
            .map(Rhs::List),
        Kind::Map(_) => None,
    }
}

/// Builds `exc1 or exc2 ...` for a rule's exceptions (None when no exception has values).
fn exceptions_expr(rule: &str, excs: &[ExceptionDef], errors: &mut Vec<RuleError>) -> Option<Expr> {
    let item = format!("rule '{rule}'");
    let mut alts = Vec::new();
    for e in excs {
        if e.values.is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut ok = true;
        for (f, loc) in &e.fields {
            match field_expr_of(f) {
                Ok(fe) => fields.push(fe),
                Err(m) => {
                    errors.push(loc.error(Some(&item), format!("exception '{}': {m}", e.name)));
                    ok = false;
                }
            }
        }
        if fields.is_empty() {
            errors.push(e.loc.error(
                Some(&item),
                format!("exception '{}' has values but no fields", e.name),
            ));
            continue;
        }
        let mut ops = Vec::new();
        for i in 0..fields.len() {
            let (text, loc) = match e.comps.get(i) {
                Some((t, l)) => (t.as_str(), Some(l)),
                None => (if e.single_field { "in" } else { "=" }, None),
            };
            match Op::parse(text) {
                Some(op) => ops.push(op),
                None => {
                    let loc = loc.unwrap_or(&e.loc);
                    errors.push(loc.error(
                        Some(&item),
                        format!("exception '{}': unknown operator '{text}'", e.name),
                    ));
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        let check = |field: &FieldExpr, op: Op, rhs: Rhs| {
            Expr::Check(Check {
                field: field.clone(),
                op,
                op_pos: 0,
                rhs,
            })
        };
        if e.single_field {
            let op = ops[0];
            if op.takes_list() {
                let values: Vec<Value> = e
                    .values
                    .iter()
                    .filter_map(|(n, loc)| match value_of(n) {
                        Some(Rhs::Value(v)) => Some(v),
                        _ => {
                            errors.push(loc.error(Some(&item), format!("exception '{}': values must be plain values for a single field", e.name)));
                            None
                        }
                    })
                    .collect();
                alts.push(check(&fields[0], op, Rhs::List(values)));
            } else {
                for (n, loc) in &e.values {
                    match value_of(n) {
                        Some(rhs @ Rhs::Value(_)) => alts.push(check(&fields[0], op, rhs)),
                        _ => errors.push(loc.error(
                            Some(&item),
                            format!(
                                "exception '{}': values must be plain values for a single field",
                                e.name
                            ),
                        )),
                    }
                }
            }
            continue;
        }
        for (n, loc) in &e.values {
            let Kind::Seq(tuple) = &n.kind else {
                errors.push(loc.error(
                    Some(&item),
                    format!(
                        "exception '{}': each value must be a list of {} items (one per field)",
                        e.name,
                        fields.len()
                    ),
                ));
                continue;
            };
            if tuple.len() != fields.len() {
                errors.push(loc.error(
                    Some(&item),
                    format!(
                        "exception '{}': value has {} items but fields has {}",
                        e.name,
                        tuple.len(),
                        fields.len()
                    ),
                ));
                continue;
            }
            let mut conj = Vec::new();
            for ((f, op), v) in fields.iter().zip(&ops).zip(tuple) {
                match value_of(v) {
                    Some(Rhs::List(l)) if !op.takes_list() => {
                        let _ = l;
                        errors.push(loc.error(
                            Some(&item),
                            format!(
                                "exception '{}': a list value needs 'in', 'intersects' or 'pmatch'",
                                e.name
                            ),
                        ));
                    }
                    Some(Rhs::Value(v)) if op.takes_list() => {
                        conj.push(check(f, *op, Rhs::List(vec![v])))
                    }
                    Some(rhs) => conj.push(check(f, *op, rhs)),
                    None => errors.push(loc.error(
                        Some(&item),
                        format!("exception '{}': invalid value", e.name),
                    )),
                }
            }
            if conj.len() == fields.len() {
                alts.push(Expr::And(conj));
            }
        }
    }
    if alts.is_empty() {
        None
    } else {
        Some(Expr::Or(alts))
    }
}

pub(super) fn build(defs: &Definitions, errors: &mut Vec<RuleError>) -> Engine {
    let lists = flatten_lists(defs, errors);
    // Parse every macro once.
    let mut macros = HashMap::new();
    let mut macro_text = HashMap::new();
    for m in &defs.macros {
        let expr = match parser::parse_condition(&m.condition.text) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.push(m.condition.error(
                    e.pos,
                    Some(&format!("macro '{}'", m.name)),
                    e.message,
                ));
                None
            }
        };
        macros.insert(m.name.clone(), compile::MacroDef { expr });
        macro_text.insert(m.name.clone(), &m.condition);
    }
    let scope = Scope {
        macros: &macros,
        lists: &lists,
    };
    let push_compile_errors =
        |c: &mut Compiler<'_>, own: &text::LocatedText, item: &str, errors: &mut Vec<RuleError>| {
            for e in c.errors.drain(..) {
                match &e.in_macro {
                    Some(m) => {
                        if let Some(t) = macro_text.get(m) {
                            errors.push(t.error(e.pos, Some(&format!("macro '{m}'")), e.message));
                        }
                    }
                    None => errors.push(own.error(e.pos, Some(item), e.message)),
                }
            }
        };
    // Check every macro on its own, used or not.
    for m in &defs.macros {
        if let Some(Some(expr)) = macros.get(&m.name).map(|d| d.expr.as_ref()) {
            let mut c = Compiler::new(&scope);
            // Compile through a reference so cycles are found with the macro's name.
            let _ = c.compile(&Expr::Macro {
                name: m.name.clone(),
                pos: 0,
            });
            let _ = expr;
            push_compile_errors(&mut c, &m.condition, &format!("macro '{}'", m.name), errors);
        }
    }
    let mut rules = Vec::new();
    let mut summaries = Vec::new();
    for r in &defs.rules {
        let item = format!("rule '{}'", r.name);
        let priority = r
            .priority
            .as_ref()
            .and_then(|(p, _)| Priority::parse(p))
            .unwrap_or(Priority::Debug);
        let summary = |status| RuleSummary {
            name: r.name.clone(),
            file: r.loc.file.clone(),
            line: r.loc.mark.line,
            priority,
            status,
        };
        if r.source != "syscall" {
            summaries.push(summary(RuleStatus::Skipped {
                reason: format!("source '{}' is not supported (only syscall)", r.source),
            }));
            continue;
        }
        let Some(compiled) = compile_rule(r, &scope, &item, errors, &push_compile_errors) else {
            continue;
        };
        let (node, output) = compiled;
        let (set, _) = event_types::event_types(&node);
        let types = event_types::our_types(&set);
        if !r.enabled {
            summaries.push(summary(RuleStatus::Disabled));
            continue;
        }
        if types.is_empty() {
            let reason = match &set {
                event_types::TypeSet::Only(s) if !s.is_empty() => format!(
                    "needs evt.type in ({}), which this agent does not produce",
                    s.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                _ => "the condition cannot match any event type this agent produces".to_string(),
            };
            summaries.push(summary(RuleStatus::Skipped { reason }));
            continue;
        }
        summaries.push(summary(RuleStatus::Active {
            event_types: types.clone(),
        }));
        rules.push(CompiledRule {
            name: r.name.clone(),
            desc: r.desc.clone().unwrap_or_default(),
            priority,
            tags: r.tags.clone(),
            event_types: types,
            output,
            condition: node,
        });
    }
    let mut by_type: Vec<Vec<(usize, Node)>> = EventType::ALL.iter().map(|_| Vec::new()).collect();
    for (i, r) in rules.iter().enumerate() {
        for &t in &r.event_types {
            match specialize::specialize(&r.condition, t) {
                Node::Const(false) => {}
                node => by_type[t.index()].push((i, node)),
            }
        }
    }
    let mut responses = compile_responses(defs, &rules, &scope, errors, &push_compile_errors);
    let slots = compile::assign_slots(
        rules
            .iter_mut()
            .map(|r| &mut r.condition)
            .chain(by_type.iter_mut().flatten().map(|(_, node)| node))
            .chain(responses.iter_mut().filter_map(|r| r.scope.as_mut())),
    );
    let by_type = by_type.into_iter().map(TypeRules::new).collect();
    let responses_by_rule = rules
        .iter()
        .map(|rule| {
            responses
                .iter()
                .enumerate()
                .filter(|(_, r)| r.rules.contains(&rule.name))
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    Engine {
        rules,
        by_type,
        summaries,
        slots,
        matching: RuleMatching::All,
        responses,
        responses_by_rule,
    }
}

/// Resolves each enabled response's rules (names and tags, which must name defined
/// rules) to the active ones, and compiles its scope like a rule's condition.
fn compile_responses(
    defs: &Definitions,
    rules: &[CompiledRule],
    scope: &Scope<'_>,
    errors: &mut Vec<RuleError>,
    push_errors: &PushErrors<'_>,
) -> Vec<response::CompiledResponse> {
    let mut out = Vec::new();
    for r in defs.responses.iter().filter(|r| r.enabled) {
        let item = format!("response '{}'", r.name);
        let before = errors.len();
        for (name, loc) in &r.rules {
            if !defs.rules.iter().any(|d| &d.name == name) {
                errors.push(loc.error(
                    Some(&item),
                    format!("no rule is named '{name}' (names are exact, case included)"),
                ));
            }
        }
        for (tag, loc) in &r.tags {
            if !defs.rules.iter().any(|d| d.tags.contains(tag)) {
                errors.push(loc.error(Some(&item), format!("no rule carries the tag '{tag}'")));
            }
        }
        let scope_node = r.scope.as_ref().and_then(|text| {
            let expr = parser::parse_condition(&text.text)
                .map_err(|e| errors.push(text.error(e.pos, Some(&item), e.message)))
                .ok()?;
            let mut c = Compiler::new(scope);
            let node = c.compile(&expr);
            push_errors(&mut c, text, &item, errors);
            Some(node)
        });
        if errors.len() != before {
            continue;
        }
        let covered = rules
            .iter()
            .filter(|rule| {
                r.rules.iter().any(|(name, _)| *name == rule.name)
                    || r.tags.iter().any(|(tag, _)| rule.tags.contains(tag))
            })
            .map(|rule| rule.name.clone())
            .collect();
        out.push(response::CompiledResponse {
            name: r.name.clone(),
            file: r.loc.file.clone(),
            line: r.loc.mark.line,
            action: r.action,
            mode: r.mode,
            rules: covered,
            scope_text: r.scope.as_ref().map(|t| t.text.trim().to_string()),
            scope: scope_node,
        });
    }
    out
}

type PushErrors<'a> = dyn Fn(&mut Compiler<'_>, &text::LocatedText, &str, &mut Vec<RuleError>) + 'a;

fn compile_rule(
    r: &RuleDef,
    scope: &Scope<'_>,
    item: &str,
    errors: &mut Vec<RuleError>,
    push_errors: &PushErrors<'_>,
) -> Option<(Node, OutputTemplate)> {
    let before = errors.len();
    let (Some(cond), Some(out)) = (&r.condition, &r.output) else {
        errors.push(r.loc.error(Some(item), "rule has no condition or output"));
        return None;
    };
    let output = match OutputTemplate::parse(&out.text) {
        Ok(o) => Some(o),
        Err((pos, msg)) => {
            errors.push(out.error(pos, Some(item), msg));
            None
        }
    };
    let expr = match parser::parse_condition(&cond.text) {
        Ok(e) => e,
        Err(e) => {
            errors.push(cond.error(e.pos, Some(item), e.message));
            return None;
        }
    };
    let mut c = Compiler::new(scope);
    let mut node = c.compile(&expr);
    push_errors(&mut c, cond, item, errors);
    if let Some(exc) = exceptions_expr(&r.name, &r.exceptions, errors) {
        let mut ce = Compiler::new(scope);
        let exc_node = ce.compile(&exc);
        let loc: &Loc = &r.exceptions[0].loc;
        for e in ce.errors.drain(..) {
            errors.push(loc.error(Some(item), format!("exception: {}", e.message)));
        }
        node = Node::And(vec![node, Node::Not(Box::new(exc_node))].into());
    }
    if errors.len() != before {
        return None;
    }
    Some((node, output?))
}

//! The rule engine: Falco's rule language (lists, macros, rules, exceptions, overrides)
//! loaded from YAML, compiled once and evaluated per event without allocating.
//!
//! Entry points: [`Engine::load_paths`] / [`Engine::load_sources`] build an engine;
//! [`Engine::evaluate`] runs it on anything implementing [`FieldSource`] (the JSON
//! event of fixtures and replays is [`JsonEvent`], the daemon's live event
//! [`LiveEvent`]; both mean the same by every field, see [`event_fields`]);
//! [`Engine::evaluate_live`] also builds the alerts; [`Engine::alert`] formats a match;
//! [`Engine::kernel_interest`] tells the sensor which event kinds the rules need;
//! [`fields::catalog`] lists every field.
pub mod compile;
mod dispatch;
pub mod error;
pub mod eval;
pub mod event_fields;
pub mod event_types;
pub mod fields;
pub mod fixtures;
pub mod json_event;
pub mod kernel_filter;
pub mod live_event;
pub mod loader;
pub mod output;
pub mod parser;
pub mod recorded;
pub mod response;
pub mod source;
pub mod specialize;
pub mod text;
pub mod tree;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
};

pub use error::{LoadErrors, RuleError};
pub use eval::Scratch;
pub use json_event::JsonEvent;
pub use live_event::LiveEvent;
pub use loader::Priority;
pub use source::{EventType, FieldArg, FieldSource, FieldValue, ResolvedField};

use compile::{Compiler, Scope};
use dispatch::TypeRules;
use loader::{Definitions, ExceptionDef, RuleDef};
use output::OutputTemplate;
use parser::{Check, Expr, FieldExpr, Op, Rhs, Value};
use text::{Loc, SourceFile};
use tree::Node;
use yaml::Kind;

use crate::kinds::Interest;

/// Whether every matching rule alerts, or only the first (in load order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleMatching {
    #[default]
    All,
    First,
}

/// What became of a rule at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleStatus {
    /// Runs on these event types.
    Active { event_types: Vec<EventType> },
    /// `enabled: false`.
    Disabled,
    /// Cannot run here; the reason says why.
    Skipped { reason: String },
}

#[derive(Clone, Debug)]
pub struct RuleSummary {
    pub name: String,
    pub file: Arc<str>,
    pub line: usize,
    pub priority: Priority,
    pub status: RuleStatus,
}

/// A rule ready to run.
#[derive(Debug)]
pub struct CompiledRule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub event_types: Vec<EventType>,
    output: OutputTemplate,
    condition: Node,
}

impl CompiledRule {
    /// Evaluates the rule's condition on one event.
    pub fn matches<S: FieldSource + ?Sized>(&self, src: &S, scratch: &mut Scratch) -> bool {
        self.condition.eval(src, scratch)
    }

    /// The compiled condition (for inspection and tests).
    pub fn condition_node(&self) -> &Node {
        &self.condition
    }

    /// Formats the rule's output for an event: the text and the output fields.
    pub fn format<S: FieldSource + ?Sized>(
        &self,
        src: &S,
    ) -> (String, serde_json::Map<String, serde_json::Value>) {
        self.output.render(src)
    }
}

/// The fields every alert's `output_fields` carries, as Falco's default
/// `append_output` adds them.
const APPENDED_FIELDS: [(&str, fields::FieldId); 6] = [
    ("container.id", fields::FieldId::ContainerId),
    ("container.name", fields::FieldId::ContainerName),
    (
        "container.image.repository",
        fields::FieldId::ContainerImageRepository,
    ),
    ("container.image.tag", fields::FieldId::ContainerImageTag),
    ("k8s.ns.name", fields::FieldId::K8sNsName),
    ("k8s.pod.name", fields::FieldId::K8sPodName),
];

/// A rule's match, formatted: what `crate::alerts::Alert` is built from.
#[derive(Clone, Debug)]
pub struct Alert {
    pub time: serde_json::Value,
    pub rule: String,
    pub priority: Priority,
    pub output: String,
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
    pub source: &'static str,
}

/// A loaded and compiled ruleset.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    /// Per event type, the rules that can match it, each with its condition
    /// specialised for the type.
    by_type: Vec<TypeRules>,
    summaries: Vec<RuleSummary>,
    /// Number of slots of the per-event field and macro caches.
    slots: (usize, usize),
    matching: RuleMatching,
    responses: Vec<response::CompiledResponse>,
    /// Per active rule (by index in `rules`), the responses covering it, in load order.
    responses_by_rule: Vec<Vec<usize>>,
}

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

    pub fn set_rule_matching(&mut self, matching: RuleMatching) {
        self.matching = matching;
    }

    /// Every rule with what became of it, in load order.
    pub fn summaries(&self) -> &[RuleSummary] {
        &self.summaries
    }

    /// The active rules.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn rule(&self, name: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Every enabled response, in load order.
    pub fn responses(&self) -> &[response::CompiledResponse] {
        &self.responses
    }

    /// The opens `rule` matches within `response`'s scope, when the kernel decides
    /// them exactly (an in-kernel kill may act on them); otherwise why not.
    pub fn kill_region(
        &self,
        response: &response::CompiledResponse,
        rule: &str,
    ) -> Result<kernel_filter::KillRegion, String> {
        kernel_filter::kill_region(self.active_rule(rule)?, response.scope.as_ref())
    }

    /// The IP connects `rule` matches within `response`'s scope, when the kernel
    /// decides them exactly before they happen (an in-kernel deny may refuse them);
    /// otherwise why not.
    pub fn deny_region(
        &self,
        response: &response::CompiledResponse,
        rule: &str,
    ) -> Result<kernel_filter::DenyRegion, String> {
        kernel_filter::deny_region(self.active_rule(rule)?, response.scope.as_ref())
    }

    fn active_rule(&self, rule: &str) -> Result<&CompiledRule, String> {
        self.rules
            .iter()
            .find(|r| r.name == rule)
            .ok_or_else(|| format!("no active rule is named '{rule}'"))
    }

    /// The first response (in load order) covering `rule` whose scope takes the
    /// event: the one that acts on this match.
    pub fn response_for<S: FieldSource + ?Sized>(
        &self,
        rule: &CompiledRule,
        src: &S,
        scratch: &mut Scratch,
    ) -> Option<&response::CompiledResponse> {
        let index = self.rules.iter().position(|r| std::ptr::eq(r, rule))?;
        self.responses_by_rule[index]
            .iter()
            .map(|&i| &self.responses[i])
            .find(|response| response.in_scope(src, scratch))
    }

    /// Runs the rules that apply to the event's type; pushes the matching ones to
    /// `out` (cleared first). With `RuleMatching::First` at most one.
    // Not inlined: one call per event is nothing, and profilers see it.
    #[inline(never)]
    pub fn evaluate<'e, S: FieldSource + ?Sized>(
        &'e self,
        src: &S,
        scratch: &mut Scratch,
        out: &mut Vec<&'e CompiledRule>,
    ) {
        self.run_rules(src, scratch, out, self.matching)
    }

    /// [`Engine::evaluate`] with every matching rule, whatever `rule_matching` says
    /// (rule fixtures).
    #[inline(never)]
    pub fn evaluate_all<'e, S: FieldSource + ?Sized>(
        &'e self,
        src: &S,
        scratch: &mut Scratch,
        out: &mut Vec<&'e CompiledRule>,
    ) {
        self.run_rules(src, scratch, out, RuleMatching::All)
    }

    #[inline(always)]
    fn run_rules<'e, S: FieldSource + ?Sized>(
        &'e self,
        src: &S,
        scratch: &mut Scratch,
        out: &mut Vec<&'e CompiledRule>,
        matching: RuleMatching,
    ) {
        out.clear();
        scratch.with_event(src, self.slots, |ctx| {
            self.by_type[src.event_type().index()].each_candidate(ctx, |ctx, i, condition| {
                if condition.eval_in(ctx) {
                    out.push(&self.rules[i]);
                    return matching != RuleMatching::First;
                }
                true
            })
        })
    }

    /// The alert for a rule that matched an event.
    pub fn alert<S: FieldSource + ?Sized>(&self, rule: &CompiledRule, src: &S) -> Alert {
        let (output, mut output_fields) = rule.format(src);
        // What Falco's default `append_output` adds to every syscall alert, so SIEMs
        // and Falcosidekick find the container and pod whatever the rule's output says.
        for (name, id) in APPENDED_FIELDS {
            if !output_fields.contains_key(name) {
                let field = ResolvedField {
                    id,
                    arg: FieldArg::None,
                };
                output_fields.insert(name.to_string(), src.field(&field).to_json());
            }
        }
        let time = src
            .field(&ResolvedField {
                id: fields::FieldId::EvtTime,
                arg: FieldArg::None,
            })
            .to_json();
        Alert {
            time,
            rule: rule.name.clone(),
            priority: rule.priority,
            output,
            output_fields,
            tags: rule.tags.clone(),
            source: "syscall",
        }
    }

    /// The kernel filter these rules allow (see [`kernel_filter`]).
    pub fn kernel_filter(&self) -> kernel_filter::KernelFilter {
        kernel_filter::KernelFilter::of_rules(&self.rules)
    }

    /// The DNS names the active rules compare an address's name with (`fd.sip.name =
    /// x`), which the agent resolves to name addresses as Falco does.
    pub fn watched_names(&self) -> BTreeSet<String> {
        use fields::FieldId::*;
        let mut names = BTreeSet::new();
        for rule in &self.rules {
            event_types::for_each_check(rule.condition_node(), &mut |c| {
                if !matches!(c.field.id, FdSipName | FdRipName | FdCipName | FdLipName) {
                    return;
                }
                match &c.matcher {
                    tree::Matcher::StrEq(v) => {
                        names.insert(v.to_string());
                    }
                    tree::Matcher::StrIn(set) => {
                        names.extend(set.iter().map(|v| v.to_string()));
                    }
                    _ => {}
                }
            });
        }
        names
    }

    /// The event types (and so kinds) the active rules need from the kernel: those the
    /// rules name, less the syscalls the kernel filter admits in no scope (no rule can
    /// match them), which need not even be attached.
    pub fn kernel_interest(&self) -> Interest {
        let filter = self.kernel_filter();
        self.rules
            .iter()
            .flat_map(|r| {
                r.event_types
                    .iter()
                    .copied()
                    .chain(kernel_filter::counted_types(r))
            })
            .filter(|t| filter.may_admit(*t))
            .collect()
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

fn build(defs: &Definitions, errors: &mut Vec<RuleError>) -> Engine {
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

//! The loaded engine: its rules, each with its compiled condition and output, the
//! per-event-type index, and what it answers (evaluation, alerts, the kernel's
//! interest and filter, the responses that cover a rule).
use std::{collections::BTreeSet, sync::Arc};

use super::{
    Scratch,
    dispatch::TypeRules,
    event_types, fields, kernel_filter,
    loader::Priority,
    output::OutputTemplate,
    response,
    source::{EventType, FieldArg, FieldSource, ResolvedField},
    tree,
    tree::Node,
};
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
    pub(super) output: OutputTemplate,
    pub(super) condition: Node,
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
    /// The event's `evt.type`.
    pub event_type: super::EventType,
}

/// A loaded and compiled ruleset.
#[derive(Debug)]
pub struct Engine {
    pub(super) rules: Vec<CompiledRule>,
    /// Per event type, the rules that can match it, each with its condition
    /// specialised for the type.
    pub(super) by_type: Vec<TypeRules>,
    pub(super) summaries: Vec<RuleSummary>,
    /// Number of slots of the per-event field and macro caches.
    pub(super) slots: (usize, usize),
    pub(super) matching: RuleMatching,
    pub(super) responses: Vec<response::CompiledResponse>,
    /// Per active rule (by index in `rules`), the responses covering it, in load order.
    pub(super) responses_by_rule: Vec<Vec<usize>>,
}

impl Engine {
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
            event_type: src.event_type(),
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

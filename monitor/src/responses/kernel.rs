//! What the kernel enforces: per kill or deny response and rule it covers, the
//! kernel point (a kill at the open, a deny at the connect) when the kernel decides
//! the rule (within the response's scope) exactly and nothing could choose another
//! response for the same match; otherwise why not (a kill then acts from user space;
//! a deny has no other point). The slots installed are those of enforcing responses.
use std::collections::{HashMap, HashSet};

use monitor_common::{deny, kill};

use super::ResponsesSettings;
use crate::rules::{
    Engine,
    kernel_filter::{DenyRegion, KillRegion},
    response::{Action, CompiledResponse, Mode},
};

/// One installed kill: a rule of an enforcing response, as the kernel holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedSlot {
    pub response: String,
    pub rule: String,
    pub region: KillRegion,
    /// The response's window for its cap (shared by its slots).
    pub window: u32,
    pub per_minute: u32,
}

/// One installed deny: a rule of an enforcing deny response, as the kernel holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedDeny {
    pub response: String,
    pub rule: String,
    pub region: DenyRegion,
}

/// The in-kernel kills and denies of one engine and settings.
#[derive(Clone, Debug, Default)]
pub struct KernelPlan {
    pub slots: Vec<PlannedSlot>,
    pub denies: Vec<PlannedDeny>,
    /// Per kill or deny response and rule: `Ok` for the kernel point, or why not.
    points: HashMap<(String, String), Result<(), String>>,
}

impl KernelPlan {
    /// Decides every kill and deny response's point per rule. Only enforcing
    /// responses (with enforcement on) take slots; a dry run is told the point it
    /// would get.
    pub fn plan(engine: &Engine, settings: &ResponsesSettings) -> KernelPlan {
        let mut plan = KernelPlan::default();
        // The engine gives a match to the first response covering its rule whose
        // scope takes the event; the kernel cannot tell scopes it does not decide
        // apart, so only the first response covering a rule may act in the kernel.
        let mut first: HashMap<&str, &str> = HashMap::new();
        let mut windows: HashMap<&str, u32> = HashMap::new();
        for response in engine.responses() {
            for rule in &response.rules {
                let first_for_rule = *first.entry(rule).or_insert(&response.name);
                if response.action == Action::Alert {
                    continue;
                }
                let enforcing = response.mode == Mode::Enforce && settings.enforce;
                let point = if first_for_rule != response.name {
                    Err(format!(
                        "response '{first_for_rule}' comes first for this rule, and the \
                         kernel cannot tell which of the two takes a match"
                    ))
                } else if response.action == Action::Deny {
                    plan.plan_deny(engine, response, rule, enforcing)
                } else {
                    engine.kill_region(response, rule).and_then(|region| {
                        if !enforcing {
                            return Ok(());
                        }
                        if plan.slots.len() == kill::SLOTS {
                            return Err(format!(
                                "all {} kernel kill slots are taken by responses loaded \
                                 earlier",
                                kill::SLOTS
                            ));
                        }
                        let next = windows.len() as u32;
                        let window = *windows.entry(&response.name).or_insert(next);
                        plan.slots.push(PlannedSlot {
                            response: response.name.clone(),
                            rule: rule.clone(),
                            region,
                            window,
                            per_minute: settings.kills_per_minute,
                        });
                        Ok(())
                    })
                };
                plan.points
                    .insert((response.name.clone(), rule.clone()), point);
            }
        }
        plan
    }

    fn plan_deny(
        &mut self,
        engine: &Engine,
        response: &CompiledResponse,
        rule: &str,
        enforcing: bool,
    ) -> Result<(), String> {
        let region = engine.deny_region(response, rule)?;
        if !enforcing {
            return Ok(());
        }
        if self.denies.len() == deny::SLOTS {
            return Err(format!(
                "all {} kernel deny slots are taken by responses loaded earlier",
                deny::SLOTS
            ));
        }
        self.denies.push(PlannedDeny {
            response: response.name.clone(),
            rule: rule.to_string(),
            region,
        });
        Ok(())
    }

    /// The kernel point for `response`'s actions on `rule`, or why it has none.
    pub fn point(&self, response: &str, rule: &str) -> Result<(), &str> {
        match self.points.get(&(response.to_string(), rule.to_string())) {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(why),
            None => Err("no kernel action was planned for this rule"),
        }
    }

    /// The rules of `response` with the kernel point, and the others with why not.
    pub fn points_of(
        &self,
        response: &str,
        rules: &[String],
    ) -> (Vec<String>, Vec<(String, String)>) {
        let mut kernel = Vec::new();
        let mut user_space = Vec::new();
        for rule in rules {
            match self.point(response, rule) {
                Ok(()) => kernel.push(rule.clone()),
                Err(why) => user_space.push((rule.clone(), why.to_string())),
            }
        }
        (kernel, user_space)
    }

    /// The response and rule of the slot a kernel verdict names: a kill slot's for
    /// an open, a deny slot's for a connect.
    pub fn slot_of(&self, connect: bool, index: usize) -> Option<(&str, &str)> {
        if connect {
            self.denies
                .get(index)
                .map(|d| (d.response.as_str(), d.rule.as_str()))
        } else {
            self.slots
                .get(index)
                .map(|s| (s.response.as_str(), s.rule.as_str()))
        }
    }
}

/// What the kernel's enforcement tables hold: the kill and deny slots, and the task
/// names they spare.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTables {
    pub slots: Vec<PlannedSlot>,
    pub denies: Vec<PlannedDeny>,
    pub exempt: Vec<[u8; 16]>,
}

/// The task names (comm, as the kernel pads them) no kill acts on.
pub fn exempt_comms(names: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Vec<[u8; 16]> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .map(|name| {
            // A comm holds 15 bytes and its NUL: the kernel cuts longer names
            // (`containerd-shim-runc-v2` runs as `containerd-shim`), and so does this,
            // sparing every name with those 15 bytes (the safe side).
            let name = &name.as_ref()[..name.as_ref().len().min(15)];
            let mut comm = [0u8; 16];
            comm[..name.len()].copy_from_slice(name);
            comm
        })
        .filter(|comm| seen.insert(*comm))
        .collect()
}

//! Acting on responses (`- response:` items, see [`crate::rules::response`]): for a
//! rule match a response covers, choose the enforcement point this node has, act or
//! say what would have been done, and report exactly that in the alert.
//!
//! The one rule here: never claim an action that was not taken, and never act on a
//! process that is not the one whose event matched.
mod kernel;
mod kill;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use monitor_common::kill as verdicts;
use serde::{Deserialize, Serialize};

pub use kernel::{KernelPlan, KernelTables, PlannedDeny, PlannedSlot, exempt_comms};

use crate::{
    context::{host::HostRoot, procfs},
    rules::response::{Action, CompiledResponse, Mode},
};

/// Where an action takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// In the kernel, at the event: the open's exit program sends SIGKILL before the
    /// process returns to user space.
    Kernel,
    /// From the agent, after the rule engine decided: the process ran until then.
    UserSpace,
    /// In the kernel, before the connect: a cgroup `connect4`/`connect6` program
    /// refuses it with `EPERM`, so no packet leaves.
    Cgroup,
}

impl Point {
    pub fn as_str(self) -> &'static str {
        match self {
            Point::Kernel => "kernel",
            Point::UserSpace => "user-space",
            Point::Cgroup => "cgroup",
        }
    }
}

/// What became of a response on one match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Killed,
    WouldKill,
    Denied,
    WouldDeny,
    /// `action: alert`: the alert is the whole response.
    Alerted,
    /// The target is one a response never acts on (the agent, PID 1, a runtime, a
    /// process the settings exempt).
    Exempt,
    /// The action was tried and did not happen; the reason says why.
    Failed,
    /// Not tried: the response already killed `responses.kills_per_minute` processes
    /// in the last minute.
    Capped,
    /// This node has no point for the action; the reason says what it needs.
    Unsupported,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Killed => "killed",
            Outcome::WouldKill => "would-kill",
            Outcome::Denied => "denied",
            Outcome::WouldDeny => "would-deny",
            Outcome::Alerted => "alerted",
            Outcome::Exempt => "exempt",
            Outcome::Failed => "failed",
            Outcome::Capped => "capped",
            Outcome::Unsupported => "unsupported",
        }
    }

    /// What a kernel verdict's outcome (`monitor_common::kill`, `deny`) says was done.
    pub fn of_kernel_verdict(outcome: u32) -> Outcome {
        match outcome {
            verdicts::KILLED => Outcome::Killed,
            monitor_common::deny::DENIED => Outcome::Denied,
            verdicts::EXEMPT => Outcome::Exempt,
            verdicts::CAPPED => Outcome::Capped,
            _ => Outcome::Failed,
        }
    }

    /// What the action would have done, in a dry run.
    fn would(action: Action) -> Outcome {
        if action == Action::Deny {
            Outcome::WouldDeny
        } else {
            Outcome::WouldKill
        }
    }
}

/// The `response` object of an alert: what was done about this match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// The response's name.
    pub name: String,
    pub action: String,
    /// The mode applied: `dry-run` when the response or the kill switch says so.
    pub mode: String,
    /// Where the action took (or would take) effect; absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Point>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The process whose event matched.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The rule that matched.
    pub rule: &'a str,
    /// What an in-kernel kill or deny did at the event
    /// (`monitor_common::kill::verdict`; 0: no slot held it).
    pub kernel_verdict: u32,
    /// Host pid (thread group id).
    pub pid: Option<u32>,
    /// The exec id the event carried: the program that did what the rule saw.
    pub exec_id: Option<&'a str>,
    /// Task name (comm).
    pub name: &'a [u8],
}

/// The process names no response acts on, whatever the settings say: the agent's
/// own runtime neighbours, whose death would take every container of the node with
/// them.
const RUNTIME_PROCESSES: &[&str] = &[
    "dockerd",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "runc",
    "crun",
    "crio",
    "conmon",
    "podman",
    "kubelet",
];

/// Why a kill takes the kernel point (`rules list --responses` says it).
pub const WHY_KERNEL: &str = "the kernel decides this rule exactly at the open, and the \
     open's exit program kills the caller before it returns to user space";

/// Why a deny takes the cgroup point (`rules list --responses` says it).
pub const WHY_CGROUP: &str = "the kernel decides this rule exactly at the connect, and \
     the cgroup connect4/connect6 programs refuse it with EPERM before a packet leaves \
     (needs the cgroup v2 hierarchy)";

/// The point `response` gets on this node for matches of `rule`, or why it gets
/// none.
pub fn point_for(
    response: &CompiledResponse,
    rule: &str,
    kernel: &KernelPlan,
) -> Result<Option<Point>, String> {
    match response.action {
        Action::Kill if kernel.point(&response.name, rule).is_ok() => Ok(Some(Point::Kernel)),
        Action::Kill => Ok(Some(Point::UserSpace)),
        Action::Deny => match kernel.point(&response.name, rule) {
            Ok(()) => Ok(Some(Point::Cgroup)),
            Err(why) => Err(format!("deny has no point for this rule: {why}")),
        },
        Action::Alert => Ok(None),
    }
}

/// Why a kill was not tried: the response's cap.
fn capped_reason(kills_per_minute: u32) -> String {
    format!(
        "not killed: the response reached its cap of {kills_per_minute} kills per minute \
         (responses.kills_per_minute)"
    )
}

/// What responses (`- response:` items in rule files) may do on this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesSettings {
    /// False: every response runs as dry-run, whatever its mode (the kill switch).
    pub enforce: bool,
    /// Kills per response per minute; a match beyond is reported `failed` and counted.
    pub kills_per_minute: u32,
    /// Process names (comm) no response acts on, beside the agent, PID 1, the
    /// container runtimes and kubelet, which are always spared.
    pub exempt_processes: Vec<String>,
}

impl Default for ResponsesSettings {
    fn default() -> Self {
        ResponsesSettings {
            enforce: true,
            kills_per_minute: 10,
            exempt_processes: Vec::new(),
        }
    }
}

/// What `response` would do on a match of `rule`, where nothing may act (`monitor
/// replay`): a dry run whatever the response's mode, with the point this node would
/// give it.
pub fn preview(response: &CompiledResponse, rule: &str, kernel: &KernelPlan) -> Taken {
    let (point, outcome, reason) = match point_for(response, rule, kernel) {
        Err(needs) => (None, Outcome::Unsupported, Some(needs)),
        Ok(None) => (None, Outcome::Alerted, None),
        Ok(Some(point)) => (
            Some(point),
            Outcome::would(response.action),
            Some(REPLAY_ACTS_ON_NOTHING.to_string()),
        ),
    };
    Taken {
        name: response.name.clone(),
        action: response.action.as_str().to_string(),
        mode: Mode::DryRun.as_str().to_string(),
        point,
        outcome,
        reason,
    }
}

/// The reason a preview gives.
pub const REPLAY_ACTS_ON_NOTHING: &str =
    "a replay acts on nothing: the daemon would first check the process's exemptions";

pub struct Responder {
    host: HostRoot,
    boot_id: String,
    own_pid: u32,
    settings: ResponsesSettings,
    exempt: HashSet<Vec<u8>>,
    /// Per response: the start of its current minute and the kills in it.
    windows: HashMap<String, (Instant, u32)>,
    /// The kills the kernel makes (installed by the pipeline from the same plan).
    kernel: KernelPlan,
}

impl Responder {
    pub fn new(host: HostRoot, settings: ResponsesSettings) -> Self {
        let boot_id = procfs::boot_id(&host);
        let mut responder = Responder {
            host,
            boot_id,
            own_pid: std::process::id(),
            // `apply` sets both from `settings`.
            settings: ResponsesSettings::default(),
            exempt: HashSet::new(),
            windows: HashMap::new(),
            kernel: KernelPlan::default(),
        };
        responder.apply(settings);
        responder
    }

    /// New settings (a reload): the kill switch takes effect on the next match.
    pub fn apply(&mut self, settings: ResponsesSettings) {
        self.exempt = RUNTIME_PROCESSES
            .iter()
            .map(|name| name.as_bytes().to_vec())
            .chain(
                settings
                    .exempt_processes
                    .iter()
                    .map(|name| name.as_bytes().to_vec()),
            )
            .collect();
        self.settings = settings;
    }

    /// The in-kernel kills now planned (a start or a reload).
    pub fn set_kernel(&mut self, kernel: KernelPlan) {
        self.kernel = kernel;
    }

    pub fn kernel(&self) -> &KernelPlan {
        &self.kernel
    }

    /// What the kernel's kill tables should hold now.
    pub fn kernel_tables(&self) -> KernelTables {
        KernelTables {
            slots: self.kernel.slots.clone(),
            denies: self.kernel.denies.clone(),
            exempt: exempt_comms(&self.exempt),
        }
    }

    /// Runs `response` on the match of `target`, and says what was done.
    pub fn respond(&mut self, response: &CompiledResponse, target: Target<'_>) -> Taken {
        let enforce = response.mode == Mode::Enforce && self.settings.enforce;
        let mut taken = Taken {
            name: response.name.clone(),
            action: response.action.as_str().to_string(),
            mode: if enforce { Mode::Enforce } else { Mode::DryRun }
                .as_str()
                .to_string(),
            point: None,
            outcome: Outcome::Alerted,
            reason: (response.mode == Mode::Enforce && !enforce).then(|| {
                "enforcement is off (--no-enforce or responses.enforce: false)".to_string()
            }),
        };
        match point_for(response, target.rule, &self.kernel) {
            Err(needs) => {
                taken.outcome = Outcome::Unsupported;
                taken.reason = Some(needs);
            }
            Ok(None) => {}
            Ok(Some(point)) => {
                taken.point = Some(point);
                if let Some((_, verdict)) = verdicts::parse(target.kernel_verdict) {
                    self.reported_by_kernel(&mut taken, target, verdict);
                } else if let Some(why) = self.exemption(target) {
                    taken.outcome = Outcome::Exempt;
                    taken.reason = Some(why);
                } else if !enforce {
                    taken.outcome = Outcome::would(response.action);
                } else if point == Point::Cgroup {
                    taken.outcome = Outcome::Failed;
                    taken.reason = Some(
                        "not denied: no deny slot judged this connect (the cgroup programs \
                         are not attached, its cgroup was not classified yet, or the rules \
                         changed since), so the connect went ahead"
                            .to_string(),
                    );
                } else {
                    if point == Point::Kernel {
                        // Enforced at the kernel point, yet no slot judged this open.
                        taken.point = Some(Point::UserSpace);
                    }
                    self.kill_from_user_space(&mut taken, response, target, point);
                }
            }
        }
        taken
    }

    /// What the kernel said it did at the event: a kill at the open, or a deny at the
    /// connect (the point the plan gave says which).
    fn reported_by_kernel(&self, taken: &mut Taken, target: Target<'_>, verdict: u32) {
        if taken.point != Some(Point::Cgroup) {
            taken.point = Some(Point::Kernel);
        }
        let outcome = Outcome::of_kernel_verdict(verdict);
        let reason = match outcome {
            Outcome::Killed => "killed in the kernel as the open returned: the process ran no \
                 further instruction"
                .to_string(),
            Outcome::Denied => "refused in the kernel before the connect: it failed with \
                 EPERM and no packet left"
                .to_string(),
            Outcome::Exempt => self.exemption(target).unwrap_or_else(|| {
                "a process no response acts on (the agent, PID 1, a container runtime, kubelet \
                 or responses.exempt_processes)"
                    .to_string()
            }),
            Outcome::Capped => capped_reason(self.settings.kills_per_minute),
            _ => "not killed: the kernel could not send the signal".to_string(),
        };
        taken.outcome = outcome;
        taken.reason = Some(reason);
    }

    fn kill_from_user_space(
        &mut self,
        taken: &mut Taken,
        response: &CompiledResponse,
        target: Target<'_>,
        planned: Point,
    ) {
        if *self.kills_this_minute(&response.name) >= self.settings.kills_per_minute {
            taken.outcome = Outcome::Capped;
            taken.reason = Some(capped_reason(self.settings.kills_per_minute));
            return;
        }
        match self.kill(target) {
            Ok(()) => {
                // Only kills count toward the cap: a target that was already gone
                // took nothing from it.
                *self.kills_this_minute(&response.name) += 1;
                taken.outcome = Outcome::Killed;
                taken.reason = Some(if planned == Point::Kernel {
                    "killed from user space once the rule matched: no kernel slot judged \
                     this open (a path the kernel cannot judge by its bytes, a cgroup not \
                     classified yet, or an open outside the open syscalls), so the process \
                     ran until then"
                        .into()
                } else {
                    "killed from user space once the rule matched: the process ran until \
                     then"
                        .into()
                });
            }
            Err(why) => {
                taken.outcome = Outcome::Failed;
                taken.reason = Some(why);
            }
        }
    }

    /// Why no response may act on `target`, if so.
    fn exemption(&self, target: Target<'_>) -> Option<String> {
        let pid = target.pid?;
        if pid == self.own_pid {
            return Some("the agent itself".into());
        }
        if pid == 1 {
            return Some("the host's PID 1".into());
        }
        if self.exempt.contains(target.name) {
            return Some(format!(
                "process '{}' is exempt (a container runtime, kubelet or responses.exempt_processes)",
                String::from_utf8_lossy(target.name)
            ));
        }
        None
    }

    /// The kills `response` made in its current minute (a new minute starts at zero).
    fn kills_this_minute(&mut self, response: &str) -> &mut u32 {
        let now = Instant::now();
        let window = self.windows.entry(response.to_string()).or_insert((now, 0));
        if now.duration_since(window.0) >= Duration::from_secs(60) {
            *window = (now, 0);
        }
        &mut window.1
    }

    fn kill(&self, target: Target<'_>) -> Result<(), String> {
        let (Some(pid), Some(exec_id)) = (target.pid, target.exec_id) else {
            return Err("not killed: the event names no process to kill".into());
        };
        kill::kill_exactly(&self.host, &self.boot_id, pid, exec_id)
    }
}

#[cfg(test)]
mod tests {
    //! Real processes, real signals: children of the test are the targets.
    use std::{
        os::unix::process::ExitStatusExt,
        process::{Child, Command},
        sync::Arc,
    };

    use super::*;
    use crate::rules::Engine;

    fn engine(action: &str, mode: &str) -> Engine {
        let rules = "\
- rule: r
  desc: d
  condition: evt.type = execve
  output: o
  priority: notice
";
        let response =
            format!("- response: resp\n  rules: [r]\n  action: {action}\n  mode: {mode}\n");
        Engine::load_sources(&[("r.yaml".into(), rules.into()), ("s.yaml".into(), response)])
            .unwrap()
    }

    fn settings(enforce: bool, kills_per_minute: u32) -> ResponsesSettings {
        ResponsesSettings {
            enforce,
            kills_per_minute,
            exempt_processes: vec!["spared".into()],
        }
    }

    fn responder(enforce: bool, kills_per_minute: u32) -> Responder {
        Responder::new(HostRoot::new("/"), settings(enforce, kills_per_minute))
    }

    /// A `sleep` child and its exec id as the agent computes it.
    fn sleeper() -> (Child, Arc<str>) {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let host = HostRoot::new("/");
        let exec_id = procfs::exec_id_now(&host, &procfs::boot_id(&host), child.id()).unwrap();
        (child, exec_id)
    }

    fn target<'a>(child: &Child, exec_id: &'a str) -> Target<'a> {
        Target {
            rule: "r",
            kernel_verdict: 0,
            pid: Some(child.id()),
            exec_id: Some(exec_id),
            name: b"sleep",
        }
    }

    fn alive(child: &mut Child) -> bool {
        child.try_wait().unwrap().is_none()
    }

    #[test]
    fn an_enforced_kill_ends_exactly_the_process_that_matched() {
        let engine = engine("kill", "enforce");
        let (mut child, exec_id) = sleeper();
        let taken = responder(true, 10).respond(&engine.responses()[0], target(&child, &exec_id));
        assert_eq!(
            (taken.mode.as_str(), taken.point, taken.outcome),
            ("enforce", Some(Point::UserSpace), Outcome::Killed)
        );
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_pid_that_runs_another_program_is_not_killed() {
        let engine = engine("kill", "enforce");
        let (mut child, _) = sleeper();
        let taken =
            responder(true, 10).respond(&engine.responses()[0], target(&child, "0123456789ab"));
        assert_eq!(taken.outcome, Outcome::Failed);
        assert!(
            taken
                .reason
                .as_deref()
                .unwrap()
                .contains("no longer runs the program"),
            "{taken:?}"
        );
        assert!(alive(&mut child));
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone (reaped): the same exec id finds no process to kill.
        let (mut gone, exec_id) = sleeper();
        gone.kill().unwrap();
        gone.wait().unwrap();
        let taken = responder(true, 10).respond(&engine.responses()[0], target(&gone, &exec_id));
        assert_eq!(
            (taken.outcome, taken.reason.as_deref()),
            (
                Outcome::Failed,
                Some("not killed: the process had already exited")
            )
        );
    }

    #[test]
    fn dry_run_and_the_kill_switch_only_say_what_would_be_done() {
        let (mut child, exec_id) = sleeper();
        let dry = engine("kill", "dry-run");
        let taken = responder(true, 10).respond(&dry.responses()[0], target(&child, &exec_id));
        assert_eq!(
            (taken.mode.as_str(), taken.outcome, taken.reason),
            ("dry-run", Outcome::WouldKill, None)
        );
        let enforced = engine("kill", "enforce");
        let taken =
            responder(false, 10).respond(&enforced.responses()[0], target(&child, &exec_id));
        assert_eq!(
            (taken.mode.as_str(), taken.outcome),
            ("dry-run", Outcome::WouldKill)
        );
        assert!(taken.reason.unwrap().contains("enforcement is off"));
        assert!(alive(&mut child));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn the_agent_pid_1_runtimes_and_exempt_names_are_spared() {
        let engine = engine("kill", "enforce");
        let response = &engine.responses()[0];
        let mut responder = responder(true, 10);
        let own = std::process::id();
        for (pid, name, why) in [
            (own, &b"monitor"[..], "the agent itself"),
            (1, b"systemd", "the host's PID 1"),
            (
                own + 100_000,
                b"containerd",
                "process 'containerd' is exempt",
            ),
            (own + 100_001, b"spared", "process 'spared' is exempt"),
        ] {
            let taken = responder.respond(
                response,
                Target {
                    rule: "r",
                    kernel_verdict: 0,
                    pid: Some(pid),
                    exec_id: Some("x"),
                    name,
                },
            );
            assert_eq!(taken.outcome, Outcome::Exempt, "{name:?}");
            assert!(taken.reason.unwrap().starts_with(why));
        }
    }

    #[test]
    fn the_kill_cap_holds_per_response() {
        let engine = engine("kill", "enforce");
        let mut responder = responder(true, 1);
        // A target already gone takes nothing from the cap.
        let (mut gone, gone_id) = sleeper();
        gone.kill().unwrap();
        gone.wait().unwrap();
        let taken = responder.respond(&engine.responses()[0], target(&gone, &gone_id));
        assert_eq!(taken.outcome, Outcome::Failed);
        let (mut first, first_id) = sleeper();
        let (mut second, second_id) = sleeper();
        let taken = responder.respond(&engine.responses()[0], target(&first, &first_id));
        assert_eq!(taken.outcome, Outcome::Killed);
        let taken = responder.respond(&engine.responses()[0], target(&second, &second_id));
        assert_eq!(taken.outcome, Outcome::Capped);
        assert!(alive(&mut second));
        first.wait().unwrap();
        second.kill().unwrap();
        second.wait().unwrap();
    }

    /// A rule the kernel decides exactly: its kills take the kernel point.
    fn kernel_engine(mode: &str) -> Engine {
        let rules = "\
- rule: r
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow and container.id != host
  output: o
  priority: notice
";
        let response = format!("- response: resp\n  rules: [r]\n  action: kill\n  mode: {mode}\n");
        Engine::load_sources(&[("r.yaml".into(), rules.into()), ("s.yaml".into(), response)])
            .unwrap()
    }

    #[test]
    fn the_kernel_verdict_is_reported_as_it_is_and_never_acted_on_again() {
        let engine = kernel_engine("enforce");
        let mut responder = responder(true, 10);
        responder.set_kernel(KernelPlan::plan(&engine, &settings(true, 10)));
        assert_eq!(responder.kernel_tables().slots.len(), 1);
        let (mut child, exec_id) = sleeper();
        for (outcome, want) in [
            (verdicts::KILLED, Outcome::Killed),
            (verdicts::EXEMPT, Outcome::Exempt),
            (verdicts::CAPPED, Outcome::Capped),
            (verdicts::FAILED, Outcome::Failed),
        ] {
            let taken = responder.respond(
                &engine.responses()[0],
                Target {
                    kernel_verdict: verdicts::verdict(0, outcome),
                    ..target(&child, &exec_id)
                },
            );
            assert_eq!((taken.point, taken.outcome), (Some(Point::Kernel), want));
        }
        // The kernel's word is taken: the agent sent no signal of its own.
        assert!(alive(&mut child));
        // No slot judged the open (a path the kernel cannot judge, say): the agent
        // kills, from user space, and says so.
        let taken = responder.respond(&engine.responses()[0], target(&child, &exec_id));
        assert_eq!(
            (taken.point, taken.outcome),
            (Some(Point::UserSpace), Outcome::Killed)
        );
        assert!(
            taken
                .reason
                .unwrap()
                .contains("no kernel slot judged this open")
        );
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_dry_run_names_the_kernel_point_it_would_use_and_takes_no_slot() {
        let engine = kernel_engine("dry-run");
        let mut responder = responder(true, 10);
        responder.set_kernel(KernelPlan::plan(&engine, &settings(true, 10)));
        assert!(responder.kernel_tables().slots.is_empty());
        let (mut child, exec_id) = sleeper();
        let taken = responder.respond(&engine.responses()[0], target(&child, &exec_id));
        assert_eq!(
            (taken.point, taken.outcome),
            (Some(Point::Kernel), Outcome::WouldKill)
        );
        // The kill switch empties the slots of enforcing responses too.
        let enforced = kernel_engine("enforce");
        assert!(
            KernelPlan::plan(&enforced, &settings(false, 10))
                .slots
                .is_empty()
        );
        assert!(alive(&mut child));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn only_the_first_response_covering_a_rule_may_kill_in_the_kernel() {
        let rules = "\
- rule: r
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: o
  priority: notice
";
        let responses = "\
- response: watch
  rules: [r]
  action: alert
- response: stop
  rules: [r]
  action: kill
  mode: enforce
";
        let engine = Engine::load_sources(&[
            ("r.yaml".into(), rules.into()),
            ("s.yaml".into(), responses.into()),
        ])
        .unwrap();
        let plan = KernelPlan::plan(&engine, &settings(true, 10));
        assert!(plan.slots.is_empty());
        let why = plan.point("stop", "r").unwrap_err();
        assert!(why.contains("'watch' comes first"), "{why}");
    }

    #[test]
    fn deny_of_an_exec_rule_is_unsupported_and_says_why() {
        let engine = engine("deny", "enforce");
        let (mut child, exec_id) = sleeper();
        let mut responder = responder(true, 10);
        responder.set_kernel(KernelPlan::plan(&engine, &settings(true, 10)));
        let taken = responder.respond(&engine.responses()[0], target(&child, &exec_id));
        assert_eq!((taken.point, taken.outcome), (None, Outcome::Unsupported));
        assert_eq!(
            taken.reason.as_deref(),
            Some(
                "deny has no point for this rule: the rule also matches execve events: deny \
                 acts at connects (cgroup programs); opens and execs need the bpf LSM, which \
                 this agent does not attach yet"
            )
        );
        assert!(alive(&mut child));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A deny on a connect rule the kernel decides: the alert says what the kernel's
    /// verdict says, and never `denied` without one.
    #[test]
    fn a_deny_reports_the_kernels_verdict_and_claims_nothing_without_one() {
        let rules = "\
- rule: c
  desc: d
  condition: evt.type = connect and fd.sport = 8080
  output: o
  priority: notice
- response: refuse
  rules: [c]
  action: deny
  mode: enforce
";
        let engine = Engine::load_sources(&[("c.yaml".into(), rules.into())]).unwrap();
        let plan = KernelPlan::plan(&engine, &settings(true, 10));
        assert_eq!(plan.denies.len(), 1);
        let mut responder = responder(true, 10);
        responder.set_kernel(plan);
        let target = |kernel_verdict| Target {
            rule: "c",
            kernel_verdict,
            pid: Some(4242),
            exec_id: None,
            name: b"curl",
        };
        let response = &engine.responses()[0];
        let taken = responder.respond(
            response,
            target(verdicts::verdict(0, monitor_common::deny::DENIED)),
        );
        assert_eq!(
            (taken.point, taken.outcome),
            (Some(Point::Cgroup), Outcome::Denied)
        );
        let taken = responder.respond(response, target(0));
        assert_eq!(
            (taken.point, taken.outcome),
            (Some(Point::Cgroup), Outcome::Failed)
        );
        assert!(
            taken.reason.as_deref().unwrap().starts_with("not denied"),
            "{taken:?}"
        );
        let taken = responder.respond(
            response,
            target(verdicts::verdict(0, monitor_common::deny::EXEMPT)),
        );
        assert_eq!(taken.outcome, Outcome::Exempt);
        responder.apply(settings(false, 10));
        let taken = responder.respond(response, target(0));
        assert_eq!(
            (taken.point, taken.outcome),
            (Some(Point::Cgroup), Outcome::WouldDeny)
        );
    }
}

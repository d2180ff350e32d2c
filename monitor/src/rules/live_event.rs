//! [`FieldSource`](super::FieldSource) for the daemon's own events: the sensor's
//! [`Event`], with or without its context ([`EnrichedEvent`]). Fields are read straight
//! from the structures, with the values the JSON of `monitor events` would give (rule
//! fixtures are written in that JSON); the JSON itself is built only for an alert.
use std::{borrow::Cow, net::IpAddr};

use super::{
    Alert, CompiledRule, Engine, Scratch,
    event_fields::{A, ArgList, C, EventView, P, Pod, Raw, Record, T, W, env_value},
    response::CompiledResponse,
    source::EventType,
};
use crate::{
    alerts::{AlertSubject, Ancestor, Container},
    capabilities,
    clock::BootClock,
    context::{EnrichedEvent, process::ProcessInfo, runtime::Mount},
    event::{
        ArgValue, Capabilities, Detail, Event, Slot, SockAddr, SocketFamily, SyscallDetail,
        syscall_args,
    },
    output::{
        escape::bytes_to_text,
        event_json::{
            EnrichedJson, EventJson, errno_name, family_name, resolved_key, sock_type_name,
        },
    },
    responses::Taken,
};

/// A live event's structures.
#[derive(Clone, Copy)]
pub struct LiveRecord<'a> {
    event: &'a Event,
    /// `None` for events without context (`--no-context`).
    enriched: Option<&'a EnrichedEvent>,
    clock: &'a BootClock,
    hostname: Option<&'a str>,
}

super::event_fields::field_source!(LiveRecord);

/// A live event ready for evaluation.
pub type LiveEvent<'a> = EventView<LiveRecord<'a>>;

impl<'a> EventView<LiveRecord<'a>> {
    /// An event without context.
    pub fn raw(event: &'a Event, clock: &'a BootClock) -> LiveEvent<'a> {
        Self::of(event, None, clock)
    }

    /// An event with its process, ancestry and container.
    pub fn enriched(enriched: &'a EnrichedEvent, clock: &'a BootClock) -> LiveEvent<'a> {
        Self::of(&enriched.event, Some(enriched), clock)
    }

    fn of(event: &'a Event, enriched: Option<&'a EnrichedEvent>, clock: &'a BootClock) -> Self {
        let etype = match &event.detail {
            Detail::Exec(x) => x.syscall,
            Detail::Fork(_) => EventType::Clone,
            Detail::Exit(_) => EventType::Procexit,
            Detail::Connect(_) => EventType::Connect,
            Detail::Open(x) => x.syscall,
            Detail::Syscall(x) => x.syscall,
            Detail::ContainerStats(_) => EventType::ContainerStats,
        };
        let record = LiveRecord {
            event,
            enriched,
            clock,
            hostname: None,
        };
        EventView::from_record(record, etype)
    }

    /// Gives the event `evt.hostname` (the JSON of `monitor events` has none; a fixture
    /// sets it with `hostname`).
    pub fn with_hostname(mut self, hostname: &'a str) -> Self {
        self.record.hostname = Some(hostname);
        self
    }

    /// What an in-kernel kill (at an open) or deny (at a connect) did at the event
    /// (`monitor_common::kill::verdict`; 0 for none, and for every other event).
    pub fn kernel_verdict(&self) -> u32 {
        match &self.record.event.detail {
            Detail::Open(o) => o.kernel_verdict,
            Detail::Connect(c) => c.kernel_verdict,
            _ => 0,
        }
    }

    pub fn is_connect(&self) -> bool {
        matches!(self.record.event.detail, Detail::Connect(_))
    }

    /// The host pid (thread group) the event is of.
    pub fn host_pid(&self) -> u32 {
        self.record.event.pid
    }

    /// The event as `monitor events` prints it.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let r = &self.record;
        match r.enriched {
            Some(enriched) => serde_json::to_value(EnrichedJson {
                enriched,
                clock: r.clock,
            }),
            None => serde_json::to_value(EventJson {
                event: r.event,
                clock: r.clock,
            }),
        }
    }
}

impl Engine {
    /// Runs the rules on a live event. Each match a response covers is handed to
    /// `respond` first (prevention acts on every match: the alert rate limit governs
    /// alerts only); each match `admit` lets through (a rate limit, say), told what
    /// the response did, has its alert and what was done handed to `emit`. Nothing
    /// here serialises the event: an alert reads what it needs through
    /// [`AlertSubject`].
    pub fn evaluate_live(
        &self,
        event: &LiveEvent<'_>,
        scratch: &mut Scratch,
        mut respond: impl FnMut(&CompiledRule, &CompiledResponse, Option<&ProcessInfo>) -> Taken,
        mut admit: impl FnMut(&CompiledRule, Option<&Taken>) -> bool,
        mut emit: impl FnMut(Alert, Option<Taken>),
    ) {
        let mut matched: Vec<&CompiledRule> = Vec::new();
        self.evaluate(event, scratch, &mut matched);
        for rule in matched {
            let taken = self
                .response_for(rule, event, scratch)
                .map(|response| respond(rule, response, event.record.process_info()));
            if admit(rule, taken.as_ref()) {
                emit(self.alert(rule, event), taken);
            }
        }
    }
}

/// The same values the event's JSON (`EnrichedJson`) gives the JSON implementation.
impl AlertSubject for LiveEvent<'_> {
    fn exec_id(&self) -> Option<String> {
        self.record.process_info().map(|p| p.exec_id.to_string())
    }

    fn ancestors(&self) -> Vec<Ancestor> {
        let Some(enriched) = self.record.enriched else {
            return Vec::new();
        };
        enriched
            .ancestors
            .iter()
            .map(|p| Ancestor {
                pid: Some(p.pid.into()),
                name: Some(bytes_to_text(&p.name).into_owned()),
                exe: Some(bytes_to_text(&p.exepath).into_owned()),
                exec_id: Some(p.exec_id.to_string()),
            })
            .collect()
    }

    fn container(&self) -> Option<Container> {
        let c = &self.record.enriched?.container;
        if c.is_host() {
            return Some(Container {
                id: Some(c.id.to_string()),
                name: Some("host".into()),
                ..Container::default()
            });
        }
        let meta = c.meta.as_deref();
        let pod = meta.and_then(|m| m.pod.as_ref());
        Some(Container {
            id: Some(c.id.to_string()),
            name: meta.map(|m| m.name.clone()),
            image: meta.map(|m| m.image.clone()),
            image_id: meta.and_then(|m| m.image_id.clone()),
            labels: meta
                .map(|m| {
                    m.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                        .collect()
                })
                .unwrap_or_default(),
            pod: pod.and_then(|p| p.name.clone()),
            namespace: pod.and_then(|p| p.namespace.clone()),
        })
    }

    fn exepath(&self) -> Option<String> {
        self.record
            .process_info()
            .map(|p| bytes_to_text(&p.exepath).into_owned())
    }
}

fn text(bytes: &[u8]) -> Raw<'_> {
    Raw::Str(bytes_to_text(bytes))
}

fn opt_text(bytes: Option<&[u8]>) -> Raw<'_> {
    Raw::opt(bytes, text)
}

fn opt_str(s: Option<&str>) -> Raw<'_> {
    Raw::opt(s, |s| Raw::Str(Cow::Borrowed(s)))
}

fn uint<'a>(n: impl Into<u64>) -> Raw<'a> {
    Raw::U64(n.into())
}

/// Byte strings joined by spaces as text, as the JSON's escaped items would be.
fn joined(items: &[Vec<u8>]) -> Cow<'_, str> {
    match items {
        [] => Cow::Borrowed(""),
        [one] => bytes_to_text(one),
        _ => Cow::Owned(
            items
                .iter()
                .map(|i| bytes_to_text(i))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

/// `proc.args` without allocating: the tail of the table's `cmdline` (name, space,
/// arguments), when that is the same text.
fn process_args(p: &ProcessInfo) -> Cow<'_, str> {
    let args_len: usize = p.args.iter().map(|a| a.len() + 1).sum();
    if p.args.len() > 1 && p.cmdline.len() == p.name.len() + args_len {
        // Valid UTF-8 cut at ASCII spaces: every argument is valid too, so the
        // per-argument escaping of the JSON changes nothing.
        if let Ok(tail) = std::str::from_utf8(&p.cmdline[p.name.len() + 1..]) {
            return Cow::Borrowed(tail);
        }
    }
    joined(&p.args)
}

fn caps<'a>(p: &ProcessInfo, set: fn(&Capabilities) -> u64) -> Raw<'a> {
    Raw::opt(p.capabilities.as_ref(), |c| {
        Raw::Str(Cow::Owned(capabilities::names(set(c))))
    })
}

/// A key of a syscall event, as its JSON has it (see `event_json::syscall_fields`).
fn syscall_key<'a>(x: &'a SyscallDetail, k: T) -> Raw<'a> {
    let name = k.name();
    for &(key, slot) in syscall_args(x.syscall) {
        if key == name {
            return match x.slot(slot) {
                ArgValue::Int(v) => Raw::int(v),
                ArgValue::Uint(v) => uint(v),
                ArgValue::Text(v) => text(v),
            };
        }
        if let Slot::Path(n) = slot
            && resolved_key(key) == Some(name)
        {
            return Raw::opt(x.resolved[n].as_deref(), text);
        }
    }
    match k {
        T::syscall => Raw::Str(Cow::Borrowed(x.syscall.as_str())),
        T::result => Raw::int(x.result),
        T::error => opt_str(errno_name(x.result)),
        T::uid => uint(x.uid),
        T::family => Raw::opt(x.socket.map(|s| s.family), family),
        T::sock_type => Raw::opt(x.socket, |s| opt_str(sock_type_name(s.sock_type))),
        T::address => Raw::opt(x.remote(), |(a, _)| Raw::Str(Cow::Owned(a.to_string()))),
        T::port => Raw::opt(x.remote(), |(_, p)| uint(p)),
        T::local_address => Raw::opt(x.socket.and_then(|s| s.local), |(a, _)| {
            Raw::Str(Cow::Owned(a.to_string()))
        }),
        T::local_port => Raw::opt(x.socket.and_then(|s| s.local), |(_, p)| uint(p)),
        T::unix_path => match &x.address {
            Some(SockAddr::Unix(path)) => text(path),
            _ => Raw::Absent,
        },
        T::data => Raw::opt(x.data.as_deref(), text),
        _ => Raw::Absent,
    }
}

fn family<'a>(f: SocketFamily) -> Raw<'a> {
    match family_name(f) {
        Some(name) => Raw::Str(Cow::Borrowed(name)),
        None => uint(f.raw()),
    }
}

impl<'a> LiveRecord<'a> {
    fn process_info(&self) -> Option<&'a ProcessInfo> {
        self.enriched?.process.as_deref()
    }
}

impl<'a> Record<'a> for LiveRecord<'a> {
    fn top(&self, k: T) -> Raw<'a> {
        let e = self.event;
        match k {
            T::kind => return Raw::Str(Cow::Borrowed(e.kind().name())),
            T::time => {
                let time = humantime::format_rfc3339_nanos(self.clock.wall_time(e.boot_ns));
                return Raw::Str(Cow::Owned(time.to_string()));
            }
            T::boot_ns => return uint(e.boot_ns),
            T::pid => return uint(e.pid),
            T::tid => return uint(e.tid),
            T::comm => return text(&e.comm),
            T::hostname => {
                return self
                    .hostname
                    .map_or(Raw::Absent, |h| Raw::Str(Cow::Borrowed(h)));
            }
            T::process => {
                return match self.enriched {
                    Some(en) if en.process.is_some() => Raw::Other,
                    Some(_) => Raw::Null,
                    None => Raw::Absent,
                };
            }
            T::ancestors | T::container if self.enriched.is_some() => return Raw::Other,
            T::workload if self.enriched.is_some_and(|e| e.workload.is_some()) => {
                return Raw::Other;
            }
            _ => {}
        }
        match &e.detail {
            Detail::Exec(x) => {
                let c = &x.credentials;
                match k {
                    T::ppid => uint(c.ppid),
                    T::uid => uint(c.uid),
                    T::gid => uint(c.gid),
                    T::loginuid => Raw::opt(c.loginuid, uint),
                    T::process_start_boot_ns => uint(c.process_start_boot_ns),
                    T::syscall => Raw::Str(Cow::Borrowed(x.syscall.as_str())),
                    T::result => Raw::int(x.result),
                    T::error => opt_str(errno_name(x.result)),
                    T::exe => opt_text(x.exe.as_deref()),
                    T::filename => opt_text(x.filename.as_deref()),
                    T::args => Raw::Other,
                    T::dirfd => Raw::int(x.dirfd.into()),
                    _ => Raw::Absent,
                }
            }
            Detail::Fork(x) => match k {
                T::child_pid => uint(x.child_pid),
                T::ppid => uint(x.parent_ppid),
                _ => Raw::Absent,
            },
            Detail::Exit(x) => match k {
                T::exit_code => Raw::opt(x.exit_code, uint),
                T::signal => Raw::opt(x.signal, uint),
                T::ppid => uint(x.ppid),
                T::process_start_boot_ns => uint(x.process_start_boot_ns),
                _ => Raw::Absent,
            },
            Detail::Connect(x) => match k {
                T::fd => Raw::int(x.fd.into()),
                T::family => family(x.family),
                T::sock_type => opt_str(sock_type_name(x.sock_type)),
                T::address => Raw::opt(x.address, |a| Raw::Str(Cow::Owned(a.to_string()))),
                T::port => uint(x.port),
                T::local_address => Raw::opt(x.local, |(a, _)| Raw::Str(Cow::Owned(a.to_string()))),
                T::local_port => Raw::opt(x.local, |(_, p)| uint(p)),
                T::unix_path => opt_text(x.unix_path.as_deref()),
                T::result => Raw::int(x.result),
                T::error => opt_str(errno_name(x.result)),
                T::uid => uint(x.uid),
                _ => Raw::Absent,
            },
            Detail::Open(x) => match k {
                T::syscall => Raw::Str(Cow::Borrowed(x.syscall.as_str())),
                T::path => text(&x.path),
                T::resolved_path => opt_text(x.resolved.as_deref()),
                T::dirfd => Raw::int(x.dirfd.into()),
                T::flags => uint(x.flags),
                T::mode => uint(x.mode),
                T::result => Raw::int(x.result),
                T::fd => Raw::opt((x.result >= 0).then_some(x.result), Raw::int),
                T::error => opt_str(errno_name(x.result)),
                T::uid => uint(x.uid),
                _ => Raw::Absent,
            },
            Detail::Syscall(x) => syscall_key(x, k),
            Detail::ContainerStats(_) => match k {
                T::stats => Raw::Other,
                _ => Raw::Absent,
            },
        }
    }

    fn process(&self, k: P) -> Raw<'a> {
        let Some(p) = self.process_info() else {
            return Raw::Absent;
        };
        match k {
            P::pid => uint(p.pid),
            P::ppid => uint(p.ppid),
            P::name => text(&p.name),
            P::exe => text(&p.exe),
            P::exepath => text(&p.exepath),
            P::args => Raw::Other,
            P::cmdline => text(&p.cmdline),
            P::cwd => opt_text(p.cwd.as_deref()),
            P::tty => uint(p.tty),
            P::sid => uint(p.sid),
            P::vpid => uint(p.vpid),
            P::vpgid => Raw::opt((p.vpgid != 0).then_some(p.vpgid), uint),
            P::uid => uint(p.uid),
            P::user => opt_str(p.user.as_deref()),
            P::gid => uint(p.gid),
            P::group => opt_str(p.group.as_deref()),
            P::loginuid => Raw::opt(p.loginuid, uint),
            P::start_boot_ns => uint(p.start_boot_ns),
            P::exe_sha256 => opt_str(self.enriched.and_then(|e| e.exe_sha256.as_deref())),
            P::cap_effective => caps(p, |c| c.effective),
            P::cap_permitted => caps(p, |c| c.permitted),
            P::cap_inheritable => caps(p, |c| c.inheritable),
            P::container_start => Raw::Bool(p.container_start),
            P::exe_from_memfd => Raw::opt(p.exe_facts, |f| Raw::Bool(f.from_memfd)),
            P::exe_writable => Raw::opt(p.exe_facts, |f| Raw::Bool(f.writable)),
            P::exe_upper_layer => Raw::opt(p.exe_facts.and_then(|f| f.upper_layer), Raw::Bool),
            P::loginname => Raw::Absent,
            P::env => Raw::opt(p.env.as_deref(), |env| Raw::Str(joined(env))),
        }
    }

    fn workload(&self, k: W) -> Raw<'a> {
        let Some(w) = self.enriched.and_then(|e| e.workload.as_ref()) else {
            return Raw::Absent;
        };
        match k {
            W::id => Raw::Str(Cow::Owned(w.id.to_string())),
            W::kind => Raw::Str(Cow::Borrowed(w.id.kind.as_str())),
            W::name => Raw::Str(Cow::Borrowed(&w.id.name)),
            W::namespace => opt_str(w.id.namespace.as_deref()),
            W::learning => Raw::Bool(w.learning),
            W::new => Raw::Bool(w.new),
        }
    }

    fn stats(&self, key: &str) -> Raw<'a> {
        match &self.event.detail {
            Detail::ContainerStats(x) => Raw::opt(x.get(key), Raw::U64),
            _ => Raw::Absent,
        }
    }

    fn container(&self, k: C) -> Raw<'a> {
        let Some(c) = self.enriched.map(|e| &e.container) else {
            return Raw::Absent;
        };
        match (k, c.meta.as_deref()) {
            (C::id, _) => Raw::Str(Cow::Borrowed(&c.id)),
            (C::name, _) if c.is_host() => Raw::Str(Cow::Borrowed("host")),
            _ if c.is_host() => Raw::Absent,
            (C::runtime, _) => opt_str(c.runtime.map(|r| r.name())),
            (C::name, None) => Raw::Null,
            (_, None) => Raw::Absent,
            (C::name, Some(m)) => Raw::Str(Cow::Borrowed(&m.name)),
            (C::image, Some(m)) => Raw::Str(Cow::Borrowed(&m.image)),
            (C::image_repository, Some(m)) => opt_str(m.image_repository.as_deref()),
            (C::image_tag, Some(m)) => opt_str(m.image_tag.as_deref()),
            (C::image_digest, Some(m)) => opt_str(m.image_digest.as_deref()),
            (C::image_id, Some(m)) => opt_str(m.image_id.as_deref()),
            (C::privileged, Some(m)) => Raw::Bool(m.privileged),
            (C::host_pid, Some(m)) => Raw::Bool(m.host_pid),
            (C::host_network, Some(m)) => Raw::Bool(m.host_network),
            (C::host_ipc, Some(m)) => Raw::Bool(m.host_ipc),
            (C::user, Some(m)) => opt_str(m.user.as_deref()),
            (C::labels | C::mounts, Some(_)) => Raw::Other,
            (C::pod, Some(m)) => Raw::opt(m.pod.as_ref(), |_| Raw::Other),
            (C::started_at, Some(m)) => opt_str(m.started_at.as_deref()),
            (C::start_ts, Some(_)) => Raw::Absent,
        }
    }

    fn pod(&self, k: Pod) -> Raw<'a> {
        let Some(pod) = self
            .enriched
            .and_then(|e| e.container.meta.as_deref())
            .and_then(|m| m.pod.as_ref())
        else {
            return Raw::Absent;
        };
        opt_str(match k {
            Pod::name => pod.name.as_deref(),
            Pod::namespace => pod.namespace.as_deref(),
            Pod::uid => pod.uid.as_deref(),
            Pod::ip => pod.ip.as_deref(),
        })
    }

    fn label(&self, key: &str) -> Raw<'a> {
        let label = self
            .enriched
            .and_then(|e| e.container.meta.as_deref())
            .and_then(|m| m.labels.get(key));
        label.map_or(Raw::Absent, |l| Raw::Str(Cow::Borrowed(l)))
    }

    fn all_labels(&self, pod: bool) -> Option<Vec<(&'a str, &'a str)>> {
        let meta = self.enriched?.container.meta.as_deref()?;
        let labels = if pod {
            &meta.pod.as_ref()?.labels
        } else {
            &meta.labels
        };
        Some(
            labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        )
    }

    fn pod_label(&self, key: &str) -> Raw<'a> {
        let label = self
            .enriched
            .and_then(|e| e.container.meta.as_deref())
            .and_then(|m| m.pod.as_ref())
            .and_then(|pod| pod.labels.get(key));
        label.map_or(Raw::Absent, |l| Raw::Str(Cow::Borrowed(l)))
    }

    fn ancestor(&self, depth: usize, k: A) -> Raw<'a> {
        let Some(a) = depth
            .checked_sub(1)
            .and_then(|i| self.enriched?.ancestors.get(i))
        else {
            return Raw::Absent;
        };
        match k {
            A::pid => uint(a.pid),
            A::name => text(&a.name),
            A::exe => text(&a.exe),
            A::exepath => text(&a.exepath),
            A::cmdline => text(&a.cmdline),
        }
    }

    fn ancestor_count(&self) -> Option<usize> {
        self.enriched.map(|e| e.ancestors.len())
    }

    fn args(&self, list: ArgList) -> Option<(usize, Cow<'a, str>)> {
        match list {
            ArgList::Process => {
                let p = self.process_info()?;
                Some((p.args.len(), process_args(p)))
            }
            ArgList::Exec => match &self.event.detail {
                Detail::Exec(x) => {
                    let rest = x.args.get(1..).unwrap_or_default();
                    Some((rest.len(), joined(rest)))
                }
                _ => None,
            },
        }
    }

    fn exec_argv0(&self) -> Raw<'a> {
        match &self.event.detail {
            Detail::Exec(x) => x.args.first().map_or(Raw::Absent, |a| text(a)),
            _ => Raw::Absent,
        }
    }

    fn env_var(&self, name: &str) -> Raw<'a> {
        let Some(env) = self.process_info().and_then(|p| p.env.as_deref()) else {
            return Raw::Absent;
        };
        env_value(env.iter().map(Vec::as_slice), name).map_or(Raw::Absent, text)
    }

    fn mounts(&self) -> Cow<'a, [Mount]> {
        match self.enriched.and_then(|e| e.container.meta.as_deref()) {
            Some(m) => Cow::Borrowed(&m.mounts),
            None => Cow::Borrowed(&[]),
        }
    }

    fn ip_name(&self, ip: IpAddr) -> Raw<'a> {
        Raw::opt(crate::context::dns::name_of(ip), |name| {
            Raw::Str(Cow::Owned(name.to_string()))
        })
    }

    fn data(&self) -> Option<Cow<'a, [u8]>> {
        match &self.event.detail {
            Detail::Syscall(x) => x.data.as_deref().map(Cow::Borrowed),
            _ => None,
        }
    }

    fn local_address(&self) -> Option<IpAddr> {
        match &self.event.detail {
            Detail::Connect(x) => x.local.map(|(a, _)| a),
            Detail::Syscall(x) => x.socket.and_then(|s| s.local).map(|(a, _)| a),
            _ => None,
        }
    }

    fn address(&self) -> Option<IpAddr> {
        match &self.event.detail {
            Detail::Connect(x) => x.address,
            Detail::Syscall(x) => x.remote().map(|(a, _)| a),
            _ => None,
        }
    }
}

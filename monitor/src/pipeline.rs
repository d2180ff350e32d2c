//! The agent's main loop, shared by `monitor events` and `monitor run`: read the ring
//! buffer, validate and decode each record, add context, hand the result to a sink;
//! report drops while running; let the sink look after itself once a second and
//! reload on SIGHUP; on SIGINT/SIGTERM detach, drain, flush and account for every
//! record.
use std::{collections::BTreeMap, io, time::Duration};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use crate::{
    alerts::DeliveryMark,
    container_stats::{Sampler, SamplerStats},
    context::{Context, ContextConfig, ContextStats, EnrichedEvent, host::HostRoot},
    event::{Event, EventKind},
    kinds::Interest,
    profiles::{
        ProfilesStats,
        fleet::FleetStats,
        learner::{Admission, Learner},
    },
    responses::KernelTables,
    rules::kernel_filter::KernelFilter,
    sensor::{
        EventReader, Faults, RecorderReport, Sensor, SensorConfig, decode::decode,
        last_seen::LastSeen,
    },
    signals::{StopSignals, StoppedDuringStart},
};

/// Records handled per wake-up at most, so a burst is processed in bounded slices.
const MAX_BATCH: usize = 4096;

/// How long readiness waits for the container runtimes' first listings.
const RUNTIMES_CAP: Duration = Duration::from_secs(5);

/// How long a stop goes on judging what is left in the ring buffer. Stopping within
/// 2 s is promised; the detach runs alongside and takes about a second here.
const STOP_JUDGING_BUDGET: Duration = Duration::from_millis(1200);

/// What the pipeline hands on: the bare event, or the event with its context.
pub enum Item {
    Raw(Event),
    Enriched(EnrichedEvent),
}

impl Item {
    pub fn event(&self) -> &Event {
        match self {
            Item::Raw(event) => event,
            Item::Enriched(enriched) => &enriched.event,
        }
    }
}

/// Where the pipeline's items go. An error stops the pipeline (a closed stdout ends it
/// quietly).
pub trait Sink {
    fn accept(&mut self, item: Item) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;

    /// Called about once a second with the pipeline's state. `Some(interest)`: the
    /// sink reloaded itself and now needs this from the kernel.
    fn housekeeping(&mut self, _status: &Status<'_>) -> impl Future<Output = Option<Interest>> {
        async { None }
    }

    /// SIGHUP. `Some(interest)` as for `housekeeping`.
    fn reload(&mut self) -> impl Future<Output = Option<Interest>> {
        async { None }
    }

    /// The kernel filter the sink's rules allow (asked at start and after every
    /// reload); `None`: the kernel sends every event.
    fn kernel_filter(&self) -> Option<KernelFilter> {
        None
    }

    /// The in-kernel kills the sink's responses plan (none: the tables are emptied).
    fn kernel_tables(&self) -> KernelTables {
        KernelTables::default()
    }

    /// Where the sink's deliveries stand now. A pinned recorder gives records back
    /// to the kernel only once [`Sink::delivered`] says what they led to is safe: a
    /// killed agent leaves the rest for the next one. A sink that writes as it
    /// accepts (or flushes) has nothing in between.
    fn delivery_mark(&self) -> Option<DeliveryMark> {
        None
    }

    fn delivered(&self, _mark: &DeliveryMark) -> bool {
        true
    }

    /// Resolves when deliveries progress.
    fn delivery_progress(&self) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

/// Positions of the ring buffer the pipeline has handled, each with where the sink's
/// deliveries stood then. A position goes back to the kernel once everything the
/// sink was handed until then is delivered (or in a spool), and nothing read before
/// it waited in memory then (held for metadata or for the fleet): what a killed
/// agent had not made safe is read again by the next.
struct Commits {
    enabled: bool,
    pending: std::collections::VecDeque<(usize, Option<DeliveryMark>, bool)>,
}

impl Commits {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            pending: std::collections::VecDeque::new(),
        }
    }

    fn record(&mut self, position: usize, mark: Option<DeliveryMark>, clean: bool) {
        if !self.enabled {
            return;
        }
        if let Some(last) = self.pending.back()
            && last.0 == position
            && last.1 == mark
            && last.2 == clean
        {
            return;
        }
        self.pending.push_back((position, mark, clean));
    }

    fn advance(&mut self, reader: &mut EventReader, sink: &impl Sink) {
        let mut to = None;
        while let Some((position, mark, clean)) = self.pending.front() {
            if mark.as_ref().is_some_and(|m| !sink.delivered(m)) {
                break;
            }
            if *clean {
                to = Some(*position);
            }
            self.pending.pop_front();
        }
        if let Some(to) = to {
            reader.commit_to(to);
        }
    }

    fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// The agent's note of until when it recorded; a failure to write it is said once.
struct Noting {
    last_seen: Option<LastSeen>,
    failed: bool,
}

impl Noting {
    fn new(last_seen: Option<LastSeen>) -> Self {
        Self {
            last_seen,
            failed: false,
        }
    }

    fn note(&mut self) {
        let Some(last_seen) = &self.last_seen else {
            return;
        };
        match last_seen.note_now() {
            Ok(()) => self.failed = false,
            Err(err) if !self.failed => {
                self.failed = true;
                tracing::warn!(
                    "cannot note until when this agent recorded ({err}): the next agent will \
                     not know the blind spot between them (see --last-seen-file)"
                );
            }
            Err(_) => {}
        }
    }
}

/// Nothing read waits in memory for its context.
fn holds_nothing(context: &Option<Context>, extras: &Extras) -> bool {
    context.as_ref().is_none_or(Context::holds_nothing)
        && extras.learner.as_ref().is_none_or(Learner::holds_nothing)
}

/// What the sink may want to know about the pipeline.
pub struct Status<'a> {
    pub sensor: &'a Sensor,
    /// Events received from the kernel so far, by kind.
    pub received: &'a BTreeMap<EventKind, u64>,
    pub malformed: u64,
    pub context: Option<&'a Context>,
    /// Kernel drops since the last status (all kinds).
    pub new_drops: u64,
    /// The `container_stats` sampler, when it runs.
    pub sampler: Option<SamplerStats>,
    pub profiles: Option<ProfilesStats>,
    /// Each workload's profile: id, learning, entries.
    pub profile_states: Vec<(String, bool, usize)>,
    /// The fleet store's link, when profiles are shared.
    pub fleet: Option<FleetStats>,
}

pub struct PipelineConfig {
    pub sensor: SensorConfig,
    /// `None`: no process and container context.
    pub context: Option<ContextConfig>,
    pub stats_interval: Duration,
    /// A stop by SIGINT or SIGTERM leaves a pinned recorder running.
    pub keep_recording: bool,
    /// Where the agent notes until when it recorded (see `sensor::last_seen`).
    pub last_seen: Option<std::path::PathBuf>,
}

impl PipelineConfig {
    /// With context, the kernel also captures exec, fork and exit: the process table
    /// lives on them, whatever the caller shows or the rules need.
    pub fn new(
        mut sensor: SensorConfig,
        context: Option<ContextConfig>,
        stats_interval: Duration,
    ) -> Self {
        if context.is_some() {
            sensor.interest = sensor.interest.union(context_interest());
        }
        Self {
            sensor,
            context,
            stats_interval,
            keep_recording: false,
            last_seen: None,
        }
    }
}

/// The line printed on stderr at exit: `monitor: totals {json}`.
#[derive(Serialize)]
pub struct Totals {
    pub kinds: BTreeMap<&'static str, KindTotals>,
    pub malformed: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextStats>,
    /// The pinned recorder: adopted or made, its backlog and gap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorder: Option<RecorderReport>,
}

#[derive(Serialize)]
pub struct KindTotals {
    pub sent: u64,
    pub received: u64,
    /// Lost because the ring buffer was full.
    pub dropped: u64,
    /// Dropped in the kernel by the filter: no active rule could match them.
    pub filtered: u64,
    /// Lost in the kernel before the ring buffer, by cause.
    pub faults: Faults,
    /// Received at a stop after its judging budget ran out: read, never judged.
    pub unjudged: u64,
}

enum Step {
    Read(io::Result<usize>),
    /// Time for the running containers' `container_stats` events.
    Sample,
    /// Events held for container metadata may go.
    Release,
    /// Facts from the fleet store came in, or events waiting for them may go.
    Fleet,
    Tick,
    Housekeeping,
    Reload,
    /// Deliveries progressed: records may go back to the kernel.
    Delivered,
    Stop,
    /// SIGUSR2: stop, leaving the pinned recorder running.
    StopKeeping,
}

struct Counts {
    received: BTreeMap<EventKind, u64>,
    /// Read at a stop after its judging budget ran out (also counted as received).
    unjudged: BTreeMap<EventKind, u64>,
    malformed: BTreeMap<String, u64>,
}

/// What the pipeline adds to enriched events on their way: each container's activity
/// counts (for `container_stats`) and its workload's profile verdict.
struct Extras {
    sampler: Option<Sampler>,
    /// `container_stats` events are wanted (by a rule or `--kinds`).
    sampling: bool,
    learner: Option<Learner>,
    /// Events the learner lets go, on their way to the sink.
    passed: Vec<EnrichedEvent>,
}

impl Extras {
    fn new(context: Option<&ContextConfig>, interest: Interest) -> Extras {
        Extras {
            sampler: context.map(|c| Sampler::new(HostRoot::new(&c.host_root))),
            sampling: wants_stats(interest),
            learner: context.and_then(|c| c.profiles.clone()).map(Learner::new),
            passed: Vec::new(),
        }
    }

    /// Counts the event for its container, shows it to its workload's profile and
    /// hands it to the sink (unless it waits for the fleet's profile).
    fn pass_on(&mut self, mut enriched: EnrichedEvent, sink: &mut impl Sink) -> io::Result<()> {
        if self.sampling
            && let Some(sampler) = &mut self.sampler
        {
            sampler.observe(&enriched);
        }
        if let Some(learner) = &mut self.learner
            && let Admission::Wait(workload) = learner.admit(&mut enriched)
        {
            learner.hold(workload, enriched);
            return Ok(());
        }
        sink.accept(Item::Enriched(enriched))
    }

    /// Events that waited for the fleet and may go now (all at `shutdown`).
    fn release(&mut self, shutdown: bool, sink: &mut impl Sink) -> io::Result<()> {
        if let Some(learner) = &mut self.learner {
            learner.release(shutdown, &mut self.passed);
        }
        self.send_passed(sink)
    }

    fn send_passed(&mut self, sink: &mut impl Sink) -> io::Result<()> {
        for event in self.passed.drain(..) {
            sink.accept(Item::Enriched(event))?;
        }
        Ok(())
    }
}

async fn fleet_wake(learner: &mut Option<Learner>) {
    match learner {
        Some(learner) => learner.wake().await,
        None => std::future::pending().await,
    }
}

fn wants_stats(interest: Interest) -> bool {
    interest.kinds().contains(EventKind::ContainerStats)
}

/// What the process table lives on: every exec, fork and exit.
fn context_interest() -> Interest {
    Interest::of_kinds(
        [EventKind::Exec, EventKind::Fork, EventKind::Exit]
            .into_iter()
            .collect(),
    )
}

/// Runs until SIGINT or SIGTERM (or the sink fails); prints the totals line. A stop
/// during start-up ends it there: what was attached is detached, and the totals
/// say what arrived until then.
pub async fn run(
    config: PipelineConfig,
    signals: &mut StopSignals,
    ready: impl FnOnce(&Sensor),
    sink: &mut impl Sink,
) -> Result<()> {
    // The runtimes list their containers while the programs load (once the quick
    // checks have passed: a start that cannot succeed says only why).
    Sensor::check_prerequisites(&config.sensor)?;
    let mut context = config.context.clone().map(Context::new);
    let last_seen = config.last_seen.as_deref().map(LastSeen::new);
    let previous = last_seen.as_ref().and_then(LastSeen::previous);
    let Some(mut sensor) = start_sensor(&config.sensor, signals).await? else {
        print_empty_totals()?;
        return Ok(());
    };
    if let Some(previous) = previous {
        sensor.note_unobserved_since(previous);
    }
    let mut noting = Noting::new(last_seen);
    noting.note();
    let mut reader = sensor.take_reader()?;
    let mut commits = Commits::new(sensor.pinned());
    let mut stopping = signals.stop_requested();
    if let Some(context) = &mut context
        && !stopping
    {
        tokio::select! {
            _ = context.wait_runtimes(RUNTIMES_CAP) => {}
            _ = signals.stopped() => stopping = true,
        }
        // Seeded after the programs are attached: a process started meanwhile is either
        // in /proc or has its events waiting in the ring buffer.
        if !stopping {
            context.seed_processes();
        }
    }
    let mut counts = Counts {
        received: BTreeMap::new(),
        unjudged: BTreeMap::new(),
        malformed: BTreeMap::new(),
    };
    // Announced after the first housekeeping (the first tick is immediate), so that
    // whoever waits for readiness finds the metrics already there.
    let mut ready = Some(ready);
    let mut ticker = tokio::time::interval(config.stats_interval);
    ticker.tick().await;
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reported = Reported::default();
    let mut drops_seen = 0u64;
    // What the context lives on stays on whatever a reload asks for.
    let base_interest = if context.is_some() {
        context_interest()
    } else {
        Interest::default()
    };
    let mut filtering = false;
    apply_filter(&mut sensor, sink, &mut context, &mut filtering);
    let mut extras = Extras::new(config.context.as_ref(), config.sensor.interest);
    let mut sampling = tokio::time::interval(
        config
            .context
            .as_ref()
            .map_or(Duration::from_secs(10), |c| c.container_stats_interval),
    );
    sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut passed_on = Vec::with_capacity(MAX_BATCH);
    let mut failure = None;
    while !stopping {
        let step = tokio::select! {
            read = reader.read_batch(MAX_BATCH, |bytes| batch.push(decode(bytes))) => Step::Read(read),
            _ = held_ready(&context) => Step::Release,
            _ = fleet_wake(&mut extras.learner) => Step::Fleet,
            _ = sampling.tick(), if extras.sampling && context.is_some() => Step::Sample,
            _ = ticker.tick() => Step::Tick,
            _ = housekeeping.tick() => Step::Housekeeping,
            _ = signals.hup.recv() => Step::Reload,
            _ = sink.delivery_progress(), if commits.waiting() => Step::Delivered,
            _ = signals.term.recv() => Step::Stop,
            _ = signals.int.recv() => Step::Stop,
            _ = signals.usr2.recv() => Step::StopKeeping,
        };
        let handed_on = matches!(
            step,
            Step::Read(_) | Step::Release | Step::Fleet | Step::Sample
        );
        match step {
            Step::Read(read) => {
                read.context("reading the ring buffer")?;
                let result = deliver(
                    &mut batch,
                    &mut counts,
                    &mut context,
                    &mut passed_on,
                    &mut extras,
                    sink,
                );
                // Flush per batch: readers see events promptly, and a burst still costs
                // one write per batch rather than per event.
                if let Err(err) = result.and_then(|()| sink.flush()) {
                    failure = Some(err);
                    break;
                }
                // Under a storm the ring buffer is never empty, so this loop would never
                // wait and the runtime would never look at its signal driver: a stop
                // would go unseen. One yield per batch lets it look.
                tokio::task::yield_now().await;
            }
            Step::Release => {
                let result = deliver_held(&mut context, &mut passed_on, &mut extras, false, sink);
                if let Err(err) = result.and_then(|()| sink.flush()) {
                    failure = Some(err);
                    break;
                }
            }
            Step::Fleet => {
                if let Err(err) = extras.release(false, sink).and_then(|()| sink.flush()) {
                    failure = Some(err);
                    break;
                }
            }
            Step::Sample => {
                let (Some(ctx), Some(sampler)) = (&context, &mut extras.sampler) else {
                    continue;
                };
                let running = ctx.running_containers();
                let mut result = Ok(());
                for mut sample in sampler.sample(running) {
                    if let Some(learner) = &mut extras.learner {
                        learner.annotate(&mut sample);
                    }
                    result = result.and_then(|()| sink.accept(Item::Enriched(sample)));
                }
                if let Err(err) = result.and_then(|()| sink.flush()) {
                    failure = Some(err);
                    break;
                }
            }
            Step::Tick => last_reported = report_drops(&sensor, last_reported),
            Step::Housekeeping => {
                noting.note();
                let total_drops = total_dropped(&sensor);
                let status = Status {
                    sensor: &sensor,
                    received: &counts.received,
                    malformed: counts.malformed.values().sum(),
                    context: context.as_ref(),
                    new_drops: total_drops.saturating_sub(drops_seen),
                    sampler: extras
                        .sampler
                        .as_ref()
                        .filter(|_| extras.sampling)
                        .map(|s| s.stats),
                    profiles: extras.learner.as_ref().map(Learner::stats),
                    profile_states: extras
                        .learner
                        .as_ref()
                        .map(Learner::states)
                        .unwrap_or_default(),
                    fleet: extras.learner.as_ref().and_then(Learner::fleet_stats),
                };
                if let (Some(ctx), Some(learner)) = (&context, &mut extras.learner) {
                    let running: Vec<_> = ctx
                        .running_containers()
                        .into_iter()
                        .map(|(c, _)| c)
                        .collect();
                    learner.housekeeping(&running, Duration::from_secs(1));
                }
                drops_seen = total_drops;
                if let Some(interest) = sink.housekeeping(&status).await {
                    extras.sampling = wants_stats(interest);
                    switch_interest(&mut sensor, interest, base_interest);
                    apply_filter(&mut sensor, sink, &mut context, &mut filtering);
                } else if filtering {
                    update_host_cgroups(&mut sensor, &mut context);
                }
                if let Some(ready) = ready.take() {
                    ready(&sensor);
                }
            }
            Step::Reload => {
                if let Some(interest) = sink.reload().await {
                    extras.sampling = wants_stats(interest);
                    switch_interest(&mut sensor, interest, base_interest);
                    apply_filter(&mut sensor, sink, &mut context, &mut filtering);
                }
            }
            Step::Delivered => {}
            Step::Stop => stopping = true,
            Step::StopKeeping => {
                signals.keep_recording();
                stopping = true;
            }
        }
        if handed_on {
            commits.record(
                reader.position(),
                sink.delivery_mark(),
                holds_nothing(&context, &extras),
            );
        }
        commits.advance(&mut reader, sink);
    }

    if sensor.pinned() && (signals.keeps_recording() || config.keep_recording) {
        // Enforcement goes with the agent (fail-open): the recorder records on, and
        // kills nothing.
        if let Err(err) = sensor.set_kills(&KernelTables::default()) {
            tracing::error!("could not empty the in-kernel kill slots: {err:#}");
        }
        if let Err(err) = sensor.set_denies(&[], None) {
            tracing::error!("could not empty the in-kernel deny slots: {err:#}");
        }
        noting.note();
        return keep_recording(sensor, reader, commits, counts, context, extras, sink).await;
    }

    // Stop producing at once (the kinds are switched off), then detach, which waits
    // for the kernel's grace periods program after program. Meanwhile the backlog is
    // drained and judged, until the detach is over and the buffer empty. A stop is
    // bounded: what a storm left in the buffer past the judging budget is read and
    // counted as unjudged, not judged.
    let stopping_at = std::time::Instant::now();
    if let Err(err) = sensor.quiesce() {
        tracing::warn!("could not switch the kernel's events off before detaching: {err:#}");
    }
    let mut drained = 0;
    std::thread::scope(|scope| {
        let detaching = scope.spawn(|| sensor.detach());
        loop {
            let detached = detaching.is_finished();
            let read = reader.drain(MAX_BATCH, |bytes| batch.push(decode(bytes)));
            drained += read;
            if failure.is_none() && stopping_at.elapsed() < STOP_JUDGING_BUDGET {
                if let Err(err) = deliver(
                    &mut batch,
                    &mut counts,
                    &mut context,
                    &mut passed_on,
                    &mut extras,
                    sink,
                ) {
                    failure = Some(err);
                }
            } else {
                count_unjudged(&mut batch, &mut counts);
            }
            // Read after the detach was over: that read took the last records.
            if detached && read < MAX_BATCH {
                break;
            }
            if read == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    noting.note();
    tracing::debug!(
        "stopping: programs detached and {drained} records drained in {:?}",
        stopping_at.elapsed()
    );
    let unjudged: u64 = counts.unjudged.values().sum();
    if unjudged > 0 {
        tracing::warn!(
            "stopping: {unjudged} records read but not judged: the stop's judging budget \
             ({STOP_JUDGING_BUDGET:?}) ran out (counted as unjudged in the totals)"
        );
    }
    if failure.is_none()
        && let Err(err) = deliver_held(&mut context, &mut passed_on, &mut extras, true, sink)
            .and_then(|()| extras.release(true, sink))
            .and_then(|()| sink.flush())
    {
        failure = Some(err);
    }
    if let Some(learner) = &mut extras.learner {
        learner.persist();
    }
    report_drops(&sensor, last_reported);
    print_totals(
        &sensor,
        &counts,
        context.as_ref().map(Context::stats),
        &BTreeMap::new(),
    )?;
    sensor.remove_recorder();
    match failure {
        Some(err) if err.kind() == io::ErrorKind::BrokenPipe => {
            tracing::info!("output closed; stopped");
            Ok(())
        }
        Some(err) => Err(anyhow!("writing output: {err}")),
        None => Ok(()),
    }
}

/// How long a stop that keeps the recorder waits for the sinks to deliver (or
/// spool) what they were handed, so that the records behind it need not be read
/// again by the next agent.
const KEEP_SETTLE_BUDGET: Duration = Duration::from_secs(1);

/// Stops, leaving the pinned recorder running: nothing is detached or drained. The
/// records whose alerts are safe go back to the kernel; the rest stay in the buffer
/// with what arrives meanwhile, for the next agent.
async fn keep_recording(
    sensor: Sensor,
    mut reader: EventReader,
    mut commits: Commits,
    counts: Counts,
    context: Option<Context>,
    mut extras: Extras,
    sink: &mut impl Sink,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + KEEP_SETTLE_BUDGET;
    loop {
        commits.advance(&mut reader, sink);
        if !commits.waiting() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = sink.delivery_progress() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    if let Err(err) = sink.flush() {
        tracing::warn!("flushing output: {err}");
    }
    if let Some(learner) = &mut extras.learner {
        learner.persist();
    }
    let mut unread = BTreeMap::new();
    reader.peek(|bytes| {
        if let Some(kind) = crate::sensor::decode::kind_of(bytes) {
            *unread.entry(kind).or_insert(0u64) += 1;
        }
    });
    let again = reader.uncommitted();
    tracing::info!(
        "stopping: the recorder keeps recording for the next agent ({} records wait \
         unread, {again} read records will be read again)",
        unread.values().sum::<u64>()
    );
    print_totals(
        &sensor,
        &counts,
        context.as_ref().map(Context::stats),
        &unread,
    )?;
    drop(reader);
    sensor.keep_recording()
}

/// Loads and attaches the kernel programs on a thread of their own (the verifier
/// takes seconds), while SIGINT and SIGTERM are listened to: a stop makes the loading
/// give up at its next step. `None`: stopped before the sensor was up.
async fn start_sensor(config: &SensorConfig, signals: &mut StopSignals) -> Result<Option<Sensor>> {
    if signals.stop_requested() {
        return Ok(None);
    }
    let stop = signals.flag();
    let config = config.clone();
    let mut starting = tokio::task::spawn_blocking(move || Sensor::start_unless(&config, &stop));
    let started = tokio::select! {
        started = &mut starting => started,
        _ = signals.stopped() => {
            tracing::info!("stopping during start-up: detaching what was attached");
            starting.await
        }
    };
    match started.context("the sensor's start-up thread")? {
        Ok(mut sensor) if signals.stop_requested() => {
            if signals.keeps_recording() {
                sensor.keep_recording()?;
            } else {
                sensor.detach();
                sensor.remove_recorder();
            }
            Ok(None)
        }
        Ok(sensor) => Ok(Some(sensor)),
        Err(err) if err.is::<StoppedDuringStart>() => Ok(None),
        Err(err) => Err(err),
    }
}

/// The totals of an agent stopped before its sensor was up: nothing sent, nothing
/// received.
fn print_empty_totals() -> Result<()> {
    let totals = Totals {
        kinds: BTreeMap::new(),
        malformed: BTreeMap::new(),
        context: None,
        recorder: None,
    };
    eprintln!("monitor: totals {}", serde_json::to_string(&totals)?);
    Ok(())
}

fn deliver(
    batch: &mut Vec<Result<Event, crate::sensor::decode::DecodeError>>,
    counts: &mut Counts,
    context: &mut Option<Context>,
    ready: &mut Vec<EnrichedEvent>,
    extras: &mut Extras,
    sink: &mut impl Sink,
) -> io::Result<()> {
    for record in batch.drain(..) {
        let event = match record {
            Ok(event) => event,
            Err(err) => {
                *counts.malformed.entry(err.to_string()).or_default() += 1;
                tracing::debug!("skipped a malformed record: {err}");
                continue;
            }
        };
        *counts.received.entry(event.kind()).or_default() += 1;
        match context {
            Some(context) => {
                context.admit(event, ready);
                for enriched in ready.drain(..) {
                    extras.pass_on(enriched, sink)?;
                }
            }
            None => sink.accept(Item::Raw(event))?,
        }
    }
    Ok(())
}

/// Counts what a stop read but had no time left to judge.
fn count_unjudged(
    batch: &mut Vec<Result<Event, crate::sensor::decode::DecodeError>>,
    counts: &mut Counts,
) {
    for record in batch.drain(..) {
        match record {
            Ok(event) => {
                *counts.received.entry(event.kind()).or_default() += 1;
                *counts.unjudged.entry(event.kind()).or_default() += 1;
            }
            Err(err) => *counts.malformed.entry(err.to_string()).or_default() += 1,
        }
    }
}

async fn held_ready(context: &Option<Context>) {
    match context {
        Some(context) => context.held_ready().await,
        None => std::future::pending().await,
    }
}

/// Passes on the events held for metadata that may go now (all of them at `shutdown`).
fn deliver_held(
    context: &mut Option<Context>,
    ready: &mut Vec<EnrichedEvent>,
    extras: &mut Extras,
    shutdown: bool,
    sink: &mut impl Sink,
) -> io::Result<()> {
    let Some(context) = context else {
        return Ok(());
    };
    if shutdown {
        context.release_all_held(ready);
    } else {
        context.release_held(ready);
    }
    for enriched in ready.drain(..) {
        extras.pass_on(enriched, sink)?;
    }
    Ok(())
}

/// What a reloaded sink needs, plus what the context lives on. Switching is a map
/// update (and attaching sources not needed before); the ring buffer and the events in
/// it are untouched.
fn switch_interest(sensor: &mut Sensor, wanted: Interest, base: Interest) {
    let interest = wanted.union(base);
    match sensor.set_interest(interest) {
        Ok(()) => {
            let names: Vec<&str> = interest.kinds().iter().map(EventKind::name).collect();
            tracing::info!("kernel events now: {}", names.join(","));
        }
        Err(err) => tracing::error!("could not switch the kernel's event kinds: {err:#}"),
    }
}

/// Installs the sink's kernel filter. The host scope needs the context's view of the
/// cgroups; without context nothing can be judged host, and every scope filters as a
/// container's.
fn apply_filter(
    sensor: &mut Sensor,
    sink: &impl Sink,
    context: &mut Option<Context>,
    filtering: &mut bool,
) {
    let filter = sink.kernel_filter();
    let kills = sink.kernel_tables();
    // All judge an event by its cgroup's scope, which these tables hold.
    *filtering = filter.is_some() || !kills.slots.is_empty() || !kills.denies.is_empty();
    if *filtering {
        update_host_cgroups(sensor, context);
    }
    match sensor.set_filter(filter.as_ref()) {
        Ok(()) if filter.is_some() => {
            tracing::info!("kernel filter installed from the active rules")
        }
        Ok(()) => {}
        Err(err) => tracing::error!("could not install the kernel filter: {err:#}"),
    }
    match sensor.set_kills(&kills) {
        Ok(()) if !kills.slots.is_empty() => tracing::info!(
            "{} in-kernel kill slots installed ({})",
            kills.slots.len(),
            slots_named(kills.slots.iter().map(|s| (&s.response, &s.rule)))
        ),
        Ok(()) => {}
        Err(err) => tracing::error!(
            "could not install the in-kernel kills: {err:#}; their responses kill from user \
             space"
        ),
    }
    let cgroup_root = context.as_ref().and_then(|c| c.cgroup_root());
    match sensor.set_denies(&kills.denies, cgroup_root) {
        Ok(()) if !kills.denies.is_empty() => tracing::info!(
            "{} in-kernel deny slots installed ({})",
            kills.denies.len(),
            slots_named(kills.denies.iter().map(|d| (&d.response, &d.rule)))
        ),
        Ok(()) => {}
        Err(err) => tracing::error!(
            "could not install the in-kernel denies: {err:#}; their responses deny nothing, \
             and their alerts say `failed`"
        ),
    }
}

/// The installed slots as the log names them: `'response' on 'rule', ...`.
fn slots_named<'a>(slots: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    slots
        .map(|(response, rule)| format!("'{response}' on '{rule}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn update_host_cgroups(sensor: &mut Sensor, context: &mut Option<Context>) {
    let Some(context) = context else {
        return;
    };
    let (host, containers) = context.cgroup_scopes();
    match sensor
        .set_host_cgroups(&host)
        .and_then(|full| Ok(full + sensor.set_container_cgroups(&containers)?))
    {
        Ok(0) => {}
        Ok(full) => tracing::debug!("{full} host cgroups left out: the table is full"),
        Err(err) => tracing::warn!("could not update the host cgroups: {err:#}"),
    }
}

fn total_dropped(sensor: &Sensor) -> u64 {
    sensor
        .counters()
        .map(|c| c.iter().map(|(_, c)| c.dropped).sum())
        .unwrap_or(0)
}

/// Kernel losses already reported: ring-buffer drops, and records lost to faults.
#[derive(Clone, Copy, Default)]
struct Reported {
    dropped: u64,
    faults: u64,
}

/// Logs kernel losses since the last report, each with its cause; returns the new
/// totals.
fn report_drops(sensor: &Sensor, last: Reported) -> Reported {
    let Ok(counters) = sensor.counters() else {
        return last;
    };
    let now = Reported {
        dropped: counters.iter().map(|(_, c)| c.dropped).sum(),
        faults: counters.iter().map(|(_, c)| c.faults.total()).sum(),
    };
    if now.dropped > last.dropped {
        let by_kind: Vec<String> = counters
            .iter()
            .filter(|(_, c)| c.dropped > 0)
            .map(|(k, c)| format!("{k}={}", c.dropped))
            .collect();
        tracing::warn!(
            "kernel dropped {} events since the last report (ring buffer full; totals: {}); \
             raise --ring-buffer-bytes or narrow --kinds",
            now.dropped - last.dropped,
            by_kind.join(" ")
        );
    }
    if now.faults > last.faults {
        let by_cause: Vec<String> = counters
            .iter()
            .flat_map(|(k, c)| {
                c.faults
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(move |(fault, n)| format!("{k}/{}={n}", fault.name()))
            })
            .collect();
        tracing::warn!(
            "kernel lost {} records since the last report before they reached the ring \
             buffer (totals by kind and cause: {}); see `monitor_kernel_faults_total` in \
             docs/operations.md",
            now.faults - last.faults,
            by_cause.join(" ")
        );
    }
    now
}

/// `left`: records of each kind left unread in a recorder kept for the next agent.
fn print_totals(
    sensor: &Sensor,
    counts: &Counts,
    context: Option<ContextStats>,
    left: &BTreeMap<EventKind, u64>,
) -> Result<()> {
    let mut kinds = BTreeMap::new();
    for (kind, c) in sensor.counters()? {
        let received = counts.received.get(&kind).copied().unwrap_or(0);
        let left = left.get(&kind).copied().unwrap_or(0);
        if received + left != c.sent {
            tracing::error!(
                "{kind}: the kernel sent {} records but {received} arrived ({left} left for \
                 the next agent)",
                c.sent
            );
        }
        kinds.insert(
            kind.name(),
            KindTotals {
                sent: c.sent,
                received,
                dropped: c.dropped,
                filtered: c.filtered,
                faults: c.faults,
                unjudged: counts.unjudged.get(&kind).copied().unwrap_or(0),
            },
        );
    }
    let recorder = sensor.recorder_report();
    let totals = Totals {
        kinds,
        malformed: counts.malformed.clone(),
        context,
        recorder: (recorder.pinned || recorder.unobserved.is_some()).then_some(recorder),
    };
    eprintln!("monitor: totals {}", serde_json::to_string(&totals)?);
    Ok(())
}

//! Values of the `container.cpu.*`, `container.memory.*`, `container.pids.*` and the rates: the measures of a `container_stats` event.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn stats_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        match f.id {
            StatCpuMillicores => u64v(self.record.stats(S::cpu_millicores).value()),
            StatCpuMillicores1m => u64v(self.record.stats(S::cpu_millicores_1m).value()),
            StatCpuMillicores5m => u64v(self.record.stats(S::cpu_millicores_5m).value()),
            StatCpuLimitPct => u64v(self.record.stats(S::cpu_limit_pct).value()),
            StatCpuLimitPct1m => u64v(self.record.stats(S::cpu_limit_pct_1m).value()),
            StatCpuLimitPct5m => u64v(self.record.stats(S::cpu_limit_pct_5m).value()),
            StatCpuLimitMillicores => u64v(self.record.stats(S::cpu_limit_millicores).value()),
            StatMemoryBytes => u64v(self.record.stats(S::memory_bytes).value()),
            StatMemoryBytes1m => u64v(self.record.stats(S::memory_bytes_1m).value()),
            StatMemoryBytes5m => u64v(self.record.stats(S::memory_bytes_5m).value()),
            StatMemoryLimitPct => u64v(self.record.stats(S::memory_limit_pct).value()),
            StatMemoryLimitPct1m => u64v(self.record.stats(S::memory_limit_pct_1m).value()),
            StatMemoryLimitPct5m => u64v(self.record.stats(S::memory_limit_pct_5m).value()),
            StatMemoryLimitBytes => u64v(self.record.stats(S::memory_limit_bytes).value()),
            StatOomKills => u64v(self.record.stats(S::oom_kills).value()),
            StatNewOomKills => u64v(self.record.stats(S::new_oom_kills).value()),
            StatPids => u64v(self.record.stats(S::pids).value()),
            StatPids1m => u64v(self.record.stats(S::pids_1m).value()),
            StatPids5m => u64v(self.record.stats(S::pids_5m).value()),
            StatPidsLimitPct => u64v(self.record.stats(S::pids_limit_pct).value()),
            StatPidsLimitPct1m => u64v(self.record.stats(S::pids_limit_pct_1m).value()),
            StatPidsLimitPct5m => u64v(self.record.stats(S::pids_limit_pct_5m).value()),
            StatPidsLimit => u64v(self.record.stats(S::pids_limit).value()),
            StatExecsPerMin => u64v(self.record.stats(S::execs_per_min).value()),
            StatConnectsPerMin => u64v(self.record.stats(S::connects_per_min).value()),
            StatFailedConnectsPerMin => u64v(self.record.stats(S::failed_connects_per_min).value()),
            StatDestinationsPerMin => u64v(self.record.stats(S::destinations_per_min).value()),
            _ => FieldValue::None,
        }
    }
}

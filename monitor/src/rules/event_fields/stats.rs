//! Values of the `container.cpu.*`, `container.memory.*`, `container.pids.*` and the rates: the measures of a `container_stats` event.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    /// Each field reads the measure the table in `event::container_stats` names it for.
    #[inline(always)]
    pub(super) fn stats_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        match f.id.stats_key() {
            Some(key) => u64v(self.record.stats(key).value()),
            None => FieldValue::None,
        }
    }
}

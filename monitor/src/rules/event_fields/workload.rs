//! Values of the `workload.*`: the workload a profile is learned for.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn workload_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        match f.id {
            WorkloadIdField => str_v(self.record.workload(W::id).value()),
            WorkloadKindField => str_v(self.record.workload(W::kind).value()),
            WorkloadName => str_v(self.record.workload(W::name).value()),
            WorkloadNamespace => str_v(self.record.workload(W::namespace).value()),
            WorkloadLearning => opt_bool(self.record.workload(W::learning).value()),
            _ => FieldValue::None,
        }
    }
}

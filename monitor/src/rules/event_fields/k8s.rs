//! Values of the `k8s.*`: the pod and namespace, from the container's labels.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn k8s_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        match f.id {
            K8sPodName => str_v(self.record.pod(Pod::name).value()),
            K8sPodUid | K8sPodId => str_v(self.record.pod(Pod::uid).value()),
            K8sNsName => str_v(self.record.pod(Pod::namespace).value()),
            K8sPodIp => str_v(self.record.pod(Pod::ip).value()),
            K8sPodLabels => labels_value(self.record.all_labels(true)),
            K8sPodLabel => match &f.arg {
                FieldArg::Key(k) => str_v(self.record.pod_label(k).value()),
                _ => FieldValue::None,
            },
            _ => FieldValue::None,
        }
    }
}

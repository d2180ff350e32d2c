//! Values of the `container.*`: the container, its image, mounts and labels.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn container_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        match f.id {
            ContainerId => match self.container(C::id).and_then(Raw::into_str) {
                // Falco's container.id is the short id; `host` stays `host`.
                Some(Cow::Borrowed(id)) => FieldValue::Str(Cow::Borrowed(short_id(id))),
                Some(Cow::Owned(id)) => FieldValue::Str(Cow::Owned(short_id(&id).to_string())),
                None => FieldValue::None,
            },
            ContainerFullId => str_v(self.container(C::id)),
            ContainerName => str_v(self.container(C::name)),
            ContainerImage => str_v(self.container(C::image)),
            ContainerImageRepository => str_v(self.container(C::image_repository)),
            ContainerImageTag => str_v(self.container(C::image_tag)),
            ContainerImageDigest => str_v(self.container(C::image_digest)),
            ContainerImageId => str_v(self.container(C::image_id)),
            ContainerType => str_v(self.container(C::runtime)),
            ContainerPrivileged => opt_bool(self.container(C::privileged)),
            ContainerHostPid => opt_bool(self.container(C::host_pid)),
            ContainerHostNetwork => opt_bool(self.container(C::host_network)),
            ContainerHostIpc => opt_bool(self.container(C::host_ipc)),
            ContainerUser => str_v(self.container(C::user)),
            ContainerMounts => {
                if self.container(C::id).is_none() {
                    return FieldValue::None;
                }
                let mounts = self.record.mounts();
                let all: Vec<String> = mounts.iter().map(Mount::falco_form).collect();
                FieldValue::Str(Cow::Owned(all.join(",")))
            }
            ContainerMount
            | ContainerMountSource
            | ContainerMountDest
            | ContainerMountMode
            | ContainerMountRdwr
            | ContainerMountPropagation => {
                let FieldArg::Key(key) = &f.arg else {
                    return FieldValue::None;
                };
                let mounts = self.record.mounts();
                // Falco's container plugin finds a mount by its position, or by its
                // source (by its destination for `.source`) searched with the key as an
                // unanchored regular expression.
                let by_dest = f.id == ContainerMountSource;
                let found = match key.parse::<usize>() {
                    Ok(i) => mounts.get(i),
                    Err(_) => mounts.iter().find(|m| {
                        mount_key_matches(key, if by_dest { &m.destination } else { &m.source })
                    }),
                };
                let Some(m) = found else {
                    return FieldValue::None;
                };
                FieldValue::Str(Cow::Owned(match f.id {
                    ContainerMount => m.falco_form(),
                    ContainerMountSource => m.source.clone(),
                    ContainerMountDest => m.destination.clone(),
                    ContainerMountMode => m.mode.clone(),
                    ContainerMountRdwr => m.rw.to_string(),
                    _ => m.propagation.clone(),
                }))
            }
            ContainerLabel => match &f.arg {
                FieldArg::Key(k) => str_v(self.record.label(k).value()),
                _ => FieldValue::None,
            },
            ContainerStartTs => match self.container(C::start_ts) {
                Some(v) => u64v(Some(v)),
                // The runtime's RFC 3339 start time.
                None => match self
                    .container(C::started_at)
                    .and_then(Raw::into_str)
                    .and_then(|t| humantime::parse_rfc3339(&t).ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                {
                    Some(d) => FieldValue::U64(d.as_nanos() as u64),
                    None => FieldValue::None,
                },
            },

            ContainerLabels => labels_value(self.record.all_labels(false)),
            _ => FieldValue::None,
        }
    }
}

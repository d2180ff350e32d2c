//! Values of the `evt.*`: the event itself (type, result, time, arguments).
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn evt_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        match f.id {
            EvtType => FieldValue::Str(Cow::Borrowed(self.etype.as_str())),
            EvtDir => FieldValue::Str(Cow::Borrowed("<")),
            EvtRes => match self.result() {
                Some(r) if r >= 0 => FieldValue::Str(Cow::Borrowed("SUCCESS")),
                Some(r) => match self.text(T::error) {
                    Some(e) => FieldValue::Str(e),
                    None => FieldValue::Str(Cow::Owned(r.to_string())),
                },
                None => FieldValue::None,
            },
            EvtRawRes => opt_i64(self.result()),
            EvtFailed => FieldValue::Bool(self.result().is_some_and(|r| r < 0)),
            EvtTime => str_v(self.get(T::time)),
            EvtRawTime => match self
                .text(T::time)
                .and_then(|t| humantime::parse_rfc3339(&t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            {
                Some(d) => FieldValue::U64(d.as_nanos() as u64),
                None => FieldValue::None,
            },
            EvtNum => u64v(self.get(T::num)),
            EvtHostname => str_v(self.get(T::hostname)),
            EvtIsOpenRead => {
                FieldValue::Bool(self.open_flags().is_some_and(|f| matches!(f & 3, 0 | 2)))
            }
            EvtIsOpenWrite => {
                FieldValue::Bool(self.open_flags().is_some_and(|f| matches!(f & 3, 1 | 2)))
            }
            EvtIsOpenCreate => {
                FieldValue::Bool(self.open_flags().is_some_and(|f| f & O_CREAT != 0))
            }
            EvtIsOpenExec => FieldValue::Bool(self.open_flags().is_some_and(|f| {
                let mode = self.unum(T::mode).unwrap_or(0);
                f & O_CREAT != 0 && mode & 0o111 != 0
            })),
            EvtArg => match &f.arg {
                FieldArg::Key(k) => self.arg(k),
                FieldArg::Index(i) => match self.arg_names().get(*i) {
                    Some(n) => self.arg(n),
                    None => FieldValue::None,
                },
                FieldArg::None => FieldValue::None,
            },
            EvtBuffer => match self.record.data() {
                Some(b) => FieldValue::Bytes(b),
                None => FieldValue::None,
            },
            EvtArgs => {
                let parts: Vec<String> = self
                    .arg_names()
                    .iter()
                    .filter_map(|n| match self.arg(n) {
                        FieldValue::None => None,
                        v => Some(format!("{n}={v}")),
                    })
                    .collect();
                FieldValue::Str(Cow::Owned(parts.join(" ")))
            }

            _ => FieldValue::None,
        }
    }
}

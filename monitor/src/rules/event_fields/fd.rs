//! Values of the `fd.*`, `fs.*`: the file or socket the event is about.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn fd_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        match f.id {
            FdName => str_c(self.fd_name()),
            FdRealpath if self.is_open() => str_v(self.get(T::resolved_path)),
            FdRealpath => FieldValue::None,
            FdNameRaw => {
                if self.is_open() {
                    str_v(self.get(T::path))
                } else {
                    FieldValue::None
                }
            }
            FdDirectory | FdFilename => {
                if !self.is_open() {
                    return FieldValue::None;
                }
                let Some(name) = self.fd_name() else {
                    return FieldValue::None;
                };
                let (dir_end, file_start) = match name.rfind('/') {
                    Some(0) => (1, 1),
                    Some(i) => (i, i + 1),
                    None => (0, 0),
                };
                let part = |s: &str| -> std::ops::Range<usize> {
                    if f.id == FdDirectory {
                        0..dir_end
                    } else {
                        file_start..s.len()
                    }
                };
                FieldValue::Str(match name {
                    Cow::Borrowed(s) => Cow::Borrowed(&s[part(s)]),
                    Cow::Owned(s) => Cow::Owned(s[part(&s)].to_string()),
                })
            }
            FdTypeChar | FdType => {
                let (c, t) = if self.is_open() {
                    if self.open_flags().unwrap_or(0) & O_DIRECTORY != 0 {
                        ("d", "directory")
                    } else {
                        ("f", "file")
                    }
                } else if self.is_socket() {
                    match self.family().as_ref().and_then(Raw::as_str) {
                        Some("inet") => ("4", "ipv4"),
                        Some("inet6") => ("6", "ipv6"),
                        Some("unix") => ("u", "unix"),
                        _ => return FieldValue::None,
                    }
                } else {
                    return FieldValue::None;
                };
                FieldValue::Str(Cow::Borrowed(if f.id == FdTypeChar { c } else { t }))
            }
            FdNum => {
                if self.is_open() {
                    match self.result() {
                        Some(r) if r >= 0 => FieldValue::I64(r),
                        Some(_) => FieldValue::I64(-1),
                        None => FieldValue::None,
                    }
                } else if self.is_socket()
                    && matches!(self.etype, EventType::Accept | EventType::Accept4)
                {
                    // Falco's accept reports the new connection's fd.
                    opt_i64(self.result())
                } else if self.is_socket() {
                    i64v(self.get(T::fd))
                } else {
                    FieldValue::None
                }
            }
            FdSip | FdIp | FdNet | FdSnet => self.ip_of(self.role_end(false)),
            FdSport | FdPort => self.port_of(self.role_end(false)),
            FdCip | FdCnet => self.ip_of(self.role_end(true)),
            FdCport => self.port_of(self.role_end(true)),
            FdRip | FdRnet => self.ip_of(self.end(false)),
            FdRport => self.port_of(self.end(false)),
            FdLip | FdLnet => self.ip_of(self.end(true)),
            FdLport => self.port_of(self.end(true)),
            FdNameChanged => FieldValue::None,
            FdL4proto => {
                if !self.is_socket() || !self.is_ip() {
                    return FieldValue::None;
                }
                match self.get(T::sock_type).as_ref().and_then(Raw::as_str) {
                    Some("stream") => FieldValue::Str(Cow::Borrowed("tcp")),
                    Some("dgram") => FieldValue::Str(Cow::Borrowed("udp")),
                    Some("raw") => FieldValue::Str(Cow::Borrowed("raw")),
                    _ => FieldValue::None,
                }
            }
            FdSockfamily => {
                if !self.is_socket() {
                    return FieldValue::None;
                }
                match self.family().as_ref().and_then(Raw::as_str) {
                    Some("inet" | "inet6") => FieldValue::Str(Cow::Borrowed("ip")),
                    Some("unix") => FieldValue::Str(Cow::Borrowed("unix")),
                    _ => FieldValue::None,
                }
            }
            FdConnected => match self.etype {
                EventType::Connect => FieldValue::Bool(self.result() == Some(0)),
                // Falco marks a socket connected at its first successful transfer.
                EventType::Accept | EventType::Accept4 => FieldValue::Bool(true),
                t if t.moves_data() && self.is_socket() => {
                    FieldValue::Bool(self.result().is_some_and(|r| r >= 0))
                }
                EventType::Listen if self.is_socket() => FieldValue::Bool(false),
                _ => FieldValue::None,
            },
            FdSipName | FdRipName | FdCipName | FdLipName => {
                if !self.is_socket() || !self.is_ip() {
                    return FieldValue::None;
                }
                let (addr, _) = match f.id {
                    FdSipName => self.role_end(false),
                    FdCipName => self.role_end(true),
                    FdRipName => self.end(false),
                    _ => self.end(true),
                };
                match addr {
                    Some(ip) => str_v(self.record.ip_name(ip).value()),
                    None => FieldValue::None,
                }
            }

            FdIsNewForWorkload => match self.etype.kind() {
                EventKind::Connect | EventKind::Open | EventKind::Syscall => {
                    opt_bool(self.record.workload(W::new).value())
                }
                _ => FieldValue::None,
            },
            _ => FieldValue::None,
        }
    }
}

//! Capability sets as Falco's `thread.cap_*` fields show them: the names of the set
//! bits, in bit order, separated by spaces (`CAP_CHOWN CAP_DAC_OVERRIDE ...`).

/// `CAP_*` names by capability number (capabilities(7)).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of the bits set in `set`.
pub fn names(set: u64) -> String {
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| set & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The set a list of names stands for (case-insensitive, `CAP_` optional); unknown
/// names are left out.
pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> u64 {
    names.into_iter().fold(0, |set, name| {
        let name = name.trim();
        let bit = NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name) || n[4..].eq_ignore_ascii_case(name));
        bit.map_or(set, |b| set | 1 << b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_render_as_falco_names_in_bit_order() {
        assert_eq!(names(0), "");
        assert_eq!(names(1 << 21 | 1 << 1), "CAP_DAC_OVERRIDE CAP_SYS_ADMIN");
        // Docker's default set.
        assert_eq!(
            names(0xa80425fb),
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID \
             CAP_SETUID CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_CHROOT \
             CAP_MKNOD CAP_AUDIT_WRITE CAP_SETFCAP"
        );
        assert_eq!(
            from_names(["cap_sys_admin", "DAC_OVERRIDE", "nope"]),
            1 << 21 | 1 << 1
        );
    }
}

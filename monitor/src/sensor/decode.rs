//! Turning ring buffer records into [`Event`]s. Every record is checked against its
//! declared size and kind, and every variable-length part against the bytes that are
//! really there, before anything is read: a malformed record is an error to count,
//! never a panic or a read past the end.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use monitor_common::{
    ConnectRecord, DIR_FOR_STR0, DIR_FOR_STR1, EventHeader, ExecRecord, ExitRecord, ForkRecord,
    OpenRecord, SocketFacts, SyscallRecord, exe, flags,
};

use crate::event::{
    Connect, Credentials, Detail, Enhanced, Event, EventKind, EventType, ExeFacts, Exec, Exit,
    Fork, Open, SockAddr, SocketEnds, SocketFamily, SyscallDetail, normalize_path,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header or than its kind's fixed part.
    Short {
        len: usize,
        need: usize,
    },
    /// The header's size disagrees with the record's length.
    SizeMismatch {
        declared: u32,
        actual: usize,
    },
    UnknownKind(u16),
    /// The variable-length parts the fixed part announces do not add up to the record.
    BadLengths {
        declared: usize,
        actual: usize,
    },
    UnknownSyscall(u16),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short { len, need } => write!(f, "record of {len} bytes, need {need}"),
            DecodeError::SizeMismatch { declared, actual } => {
                write!(f, "header says {declared} bytes, record has {actual}")
            }
            DecodeError::UnknownKind(k) => write!(f, "unknown event kind {k}"),
            DecodeError::BadLengths { declared, actual } => {
                write!(
                    f,
                    "variable parts declare {declared} bytes, record has {actual}"
                )
            }
            DecodeError::UnknownSyscall(s) => write!(f, "unknown syscall id {s}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads a plain-integer `#[repr(C)]` struct from the front of `bytes`.
fn read_fixed<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: the length is checked above, `read_unaligned` has no alignment
    // requirement, and every `T` used here is made of integers only, for which any
    // bit pattern is valid.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

/// Splits the bytes after a fixed part into the announced variable parts, which must
/// cover them exactly.
fn split_tail<const N: usize>(tail: &[u8], lens: [usize; N]) -> Result<[&[u8]; N], DecodeError> {
    let declared: usize = lens.iter().sum();
    if declared != tail.len() {
        return Err(DecodeError::BadLengths {
            declared,
            actual: tail.len(),
        });
    }
    let mut parts = [&tail[..0]; N];
    let mut at = 0;
    for (part, len) in parts.iter_mut().zip(lens) {
        *part = &tail[at..at + len];
        at += len;
    }
    Ok(parts)
}

/// A record's kind, from its header alone.
pub fn kind_of(bytes: &[u8]) -> Option<EventKind> {
    let header: EventHeader = read_fixed(bytes).ok()?;
    EventKind::from_id(header.kind)
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read_fixed(bytes)?;
    if header.size as usize != bytes.len() {
        return Err(DecodeError::SizeMismatch {
            declared: header.size,
            actual: bytes.len(),
        });
    }
    let kind = EventKind::from_id(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    let detail = match kind {
        EventKind::Exec => decode_exec(bytes, &header)?,
        EventKind::Fork => {
            let r: ForkRecord = read_fixed(bytes)?;
            split_tail::<0>(&bytes[size_of::<ForkRecord>()..], [])?;
            Detail::Fork(Fork {
                child_pid: r.child_pid,
                child_tid: r.child_tid,
                child_start_boot_ns: r.child_start_boot_ns,
                parent_ppid: r.parent_ppid,
                child_vpid: (r.child_vpid != 0).then_some(r.child_vpid),
            })
        }
        EventKind::Exit => {
            let r: ExitRecord = read_fixed(bytes)?;
            split_tail::<0>(&bytes[size_of::<ExitRecord>()..], [])?;
            Detail::Exit(Exit::from_raw(r.exit_code, r.ppid, r.start_boot_ns))
        }
        EventKind::Connect => decode_connect(bytes, &header)?,
        EventKind::Open => decode_open(bytes, &header)?,
        EventKind::Syscall => decode_syscall(bytes, &header)?,
        // The agent makes these; a record claiming to be one is not the kernel's.
        EventKind::ContainerStats => return Err(DecodeError::UnknownKind(header.kind)),
    };
    Ok(Event {
        boot_ns: header.boot_ns,
        pid: header.pid,
        tid: header.tid,
        cgroup_id: header.cgroup_id,
        comm: until_nul(&header.comm).to_vec(),
        detail,
    })
}

fn decode_exec(bytes: &[u8], header: &EventHeader) -> Result<Detail, DecodeError> {
    let r: ExecRecord = read_fixed(bytes)?;
    let [exe, filename, args, cgroup_name, file, env] = split_tail(
        &bytes[size_of::<ExecRecord>()..],
        [
            r.exe_len as usize,
            r.filename_len as usize,
            r.args_len as usize,
            r.cgroup_name_len as usize,
            r.file_len as usize,
            r.env_len as usize,
        ],
    )?;
    let syscall = syscall_of(EventKind::Exec, r.syscall)?;
    let t = r.task;
    Ok(Detail::Exec(Exec {
        credentials: Credentials {
            ppid: t.ppid,
            uid: t.uid,
            gid: t.gid,
            euid: t.euid,
            egid: t.egid,
            loginuid: (t.loginuid != u32::MAX).then_some(t.loginuid),
            process_start_boot_ns: t.start_boot_ns,
            vpid: (t.vpid != 0).then_some(t.vpid),
            vpgid: (r.vpgid != 0).then_some(r.vpgid),
            session: (r.sid != 0).then_some((r.sid, r.tty)),
        },
        syscall,
        result: r.result,
        exe: (r.result == 0).then(|| unreverse_path(exe)),
        exe_truncated: header.flags & flags::RESOLVED_TRUNCATED != 0,
        filename: (r.result != 0).then(|| filename.to_vec()),
        filename_truncated: header.flags & flags::PATH_TRUNCATED != 0,
        resolved_filename: enhanced(header).map(|_| resolved_path(header, file)),
        resolved_filename_truncated: header.flags & flags::FILE_TRUNCATED != 0,
        enhanced: enhanced(header),
        args: split_args(args),
        args_truncated: header.flags & flags::ARGS_TRUNCATED != 0,
        dirfd: r.dirfd,
        at_flags: r.at_flags,
        cgroup_name: cgroup_name.to_vec(),
        env: (r.result == 0).then(|| split_args(env)),
        env_truncated: header.flags & flags::ENV_TRUNCATED != 0,
        capabilities: (r.result == 0).then_some(r.caps),
        exe_facts: (r.result == 0 && r.exe_flags & exe::UNKNOWN == 0).then_some(ExeFacts {
            upper_layer: match (
                r.exe_flags & exe::UPPER_LAYER != 0,
                r.exe_flags & exe::LOWER_LAYER != 0,
            ) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            },
            from_memfd: r.exe_flags & exe::FROM_MEMFD != 0,
            writable: r.exe_flags & exe::WRITABLE != 0,
        }),
    }))
}

fn decode_syscall(bytes: &[u8], header: &EventHeader) -> Result<Detail, DecodeError> {
    let r: SyscallRecord = read_fixed(bytes)?;
    let [str0, str1, dir, data, addr] = split_tail(
        &bytes[size_of::<SyscallRecord>()..],
        [
            r.str0_len as usize,
            r.str1_len as usize,
            r.dir_len as usize,
            r.data_len as usize,
            r.addr_len as usize,
        ],
    )?;
    let base = unreverse_path(dir);
    let resolve = |path: &[u8], bit: u16| {
        (r.dir_for & bit != 0 && !dir.is_empty() && path.first() != Some(&b'/')).then(|| {
            let mut joined = base.clone();
            joined.push(b'/');
            joined.extend_from_slice(path);
            normalize_path(&joined)
        })
    };
    let syscall = syscall_of(EventKind::Syscall, r.syscall)?;
    Ok(Detail::Syscall(SyscallDetail {
        syscall,
        result: r.result,
        args: r.args,
        strings: [str0.to_vec(), str1.to_vec()],
        resolved: [resolve(str0, DIR_FOR_STR0), resolve(str1, DIR_FOR_STR1)],
        socket: socket_ends(&r.sock),
        data: syscall.moves_data().then(|| data.to_vec()),
        address: SockAddr::parse(addr),
        uid: r.uid,
        raw: header.flags & flags::RAW_SYSCALL != 0,
    }))
}

fn socket_ends(s: &SocketFacts) -> Option<SocketEnds> {
    if s.family == 0 {
        return None;
    }
    let family = SocketFamily::from_raw(s.family);
    Some(SocketEnds {
        family,
        sock_type: s.sock_type,
        local: ip_of(family, &s.local_addr).map(|a| (a, s.local_port)),
        remote: ip_of(family, &s.remote_addr).map(|a| (a, s.remote_port)),
    })
}

/// An address of `family` as the records carry it (IPv4 in the first four bytes).
fn ip_of(family: SocketFamily, addr: &[u8; 16]) -> Option<IpAddr> {
    match family {
        SocketFamily::Inet => Some(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        SocketFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::from(*addr))),
        _ => None,
    }
}

fn decode_connect(bytes: &[u8], header: &EventHeader) -> Result<Detail, DecodeError> {
    let r: ConnectRecord = read_fixed(bytes)?;
    let [unix_path] = split_tail(
        &bytes[size_of::<ConnectRecord>()..],
        [r.unix_path_len as usize],
    )?;
    let family = SocketFamily::from_raw(r.family);
    let address = ip_of(family, &r.addr);
    let local = ip_of(family, &r.local_addr)
        .filter(|a| r.local_port != 0 || !a.is_unspecified())
        .map(|a| (a, r.local_port));
    let unix_path = (family == SocketFamily::Unix).then(|| {
        // A path name ends at its first NUL; an abstract name (leading NUL) is
        // exactly as long as the caller's addrlen says.
        if unix_path.first() == Some(&0) {
            unix_path.to_vec()
        } else {
            until_nul(unix_path).to_vec()
        }
    });
    Ok(Detail::Connect(Connect {
        fd: r.fd,
        family,
        sock_type: r.sock_type,
        result: r.result,
        address,
        port: r.port,
        local,
        unix_path,
        uid: r.uid,
        enhanced: enhanced(header),
        kernel_verdict: r.deny,
    }))
}

fn decode_open(bytes: &[u8], header: &EventHeader) -> Result<Detail, DecodeError> {
    let r: OpenRecord = read_fixed(bytes)?;
    let [path, resolved] = split_tail(
        &bytes[size_of::<OpenRecord>()..],
        [r.path_len as usize, r.resolved_len as usize],
    )?;
    let syscall = syscall_of(EventKind::Open, r.syscall)?;
    Ok(Detail::Open(Open {
        syscall,
        enhanced: enhanced(header),
        path: path.to_vec(),
        path_truncated: header.flags & flags::PATH_TRUNCATED != 0,
        resolved: (r.result >= 0).then(|| resolved_path(header, resolved)),
        resolved_truncated: header.flags & flags::RESOLVED_TRUNCATED != 0,
        dirfd: r.dirfd,
        flags: r.flags,
        mode: r.mode,
        result: r.result,
        uid: r.uid,
        kernel_verdict: r.kill,
    }))
}

/// The event type a record's syscall id names, which must be one of the record's kind.
fn syscall_of(kind: EventKind, id: u16) -> Result<EventType, DecodeError> {
    EventType::from_syscall_id(id)
        .filter(|t| t.kind() == kind)
        .ok_or(DecodeError::UnknownSyscall(id))
}

/// A kernel-resolved path: `bpf_d_path`'s as it is, the dentry walk's unreversed.
fn resolved_path(header: &EventHeader, bytes: &[u8]) -> Vec<u8> {
    if header.flags & flags::D_PATH != 0 {
        bytes.to_vec()
    } else {
        unreverse_path(bytes)
    }
}

fn enhanced(header: &EventHeader) -> Option<Enhanced> {
    match (
        header.flags & flags::ENHANCED != 0,
        header.flags & flags::FENTRY != 0,
    ) {
        (false, _) => None,
        (true, false) => Some(Enhanced::Lsm),
        (true, true) => Some(Enhanced::Fentry),
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// `b"passwd\0etc\0"` → `b"/etc/passwd"`; empty → `b"/"`.
pub fn unreverse_path(reversed: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(reversed.len() + 1);
    for component in reversed.rsplit(|&b| b == 0).filter(|c| !c.is_empty()) {
        path.push(b'/');
        path.extend_from_slice(component);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    path
}

/// NUL-separated argv bytes → arguments. A trailing NUL ends the last argument; a
/// truncated block's last argument has none.
fn split_args(bytes: &[u8]) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::{TaskIdentity, kind, syscall};

    fn as_bytes<T>(value: &T) -> Vec<u8> {
        // SAFETY: test records are padding-free integer structs.
        unsafe {
            std::slice::from_raw_parts(value as *const T as *const u8, size_of::<T>()).to_vec()
        }
    }

    fn header(kind: u16, size: usize) -> EventHeader {
        EventHeader {
            kind,
            flags: 0,
            size: size as u32,
            boot_ns: 42,
            pid: 100,
            tid: 101,
            cgroup_id: 7,
            comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    fn open_record(path: &[u8], resolved: &[u8], result: i64) -> Vec<u8> {
        let size = size_of::<OpenRecord>() + path.len() + resolved.len();
        let fixed = OpenRecord {
            header: header(kind::OPEN, size),
            syscall: syscall::OPENAT,
            path_len: path.len() as u16,
            resolved_len: resolved.len() as u16,
            dirfd: -100,
            flags: 0o2000000,
            result,
            uid: 1000,
            ..Default::default()
        };
        let mut bytes = as_bytes(&fixed);
        bytes.extend_from_slice(path);
        bytes.extend_from_slice(resolved);
        bytes
    }

    #[test]
    fn decodes_an_open_with_its_resolved_path() {
        let event = decode(&open_record(b"shadow", b"shadow\0etc\0", 3)).unwrap();
        assert_eq!((event.pid, event.tid, event.cgroup_id), (100, 101, 7));
        assert_eq!(event.comm, b"cat");
        let Detail::Open(open) = event.detail else {
            panic!("not an open")
        };
        assert_eq!(open.path, b"shadow");
        assert_eq!(open.resolved.as_deref(), Some(&b"/etc/shadow"[..]));
        assert_eq!((open.result, open.dirfd, open.uid), (3, -100, 1000));
        assert_eq!(open.syscall, EventType::Openat);
    }

    #[test]
    fn a_d_path_resolved_path_is_taken_as_it_is() {
        let mut bytes = open_record(b"", b"/etc/shadow (deleted)", 0);
        bytes[2..4].copy_from_slice(&(flags::ENHANCED | flags::D_PATH).to_ne_bytes());
        let event = decode(&bytes).unwrap();
        assert_eq!(event.hook(), "lsm/file_open");
        let Detail::Open(open) = event.detail else {
            panic!("not an open")
        };
        assert_eq!(
            open.resolved.as_deref(),
            Some(&b"/etc/shadow (deleted)"[..])
        );
    }

    #[test]
    fn failed_open_has_no_resolved_path() {
        let event = decode(&open_record(b"/nope", b"", -2)).unwrap();
        let Detail::Open(open) = event.detail else {
            panic!("not an open")
        };
        assert_eq!(open.resolved, None);
        assert_eq!(open.result, -2);
    }

    #[test]
    fn short_records_are_rejected() {
        assert_eq!(decode(&[]), Err(DecodeError::Short { len: 0, need: 48 }));
        let full = open_record(b"a", b"", 0);
        // A header that claims the truncated length, so the size check passes and the
        // fixed-part check is what catches it.
        let mut short = full[..60].to_vec();
        short[4..8].copy_from_slice(&60u32.to_ne_bytes());
        assert_eq!(
            decode(&short),
            Err(DecodeError::Short { len: 60, need: 88 })
        );
    }

    #[test]
    fn size_mismatch_is_rejected() {
        let mut bytes = open_record(b"abc", b"", 0);
        bytes.push(0); // one byte more than the header declares
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::SizeMismatch {
                declared: 91,
                actual: 92
            })
        );
    }

    #[test]
    fn oversized_variable_parts_are_rejected() {
        let mut bytes = open_record(b"abc", b"", 0);
        // Announce a 4000-byte path in a record that carries 3.
        bytes[50..52].copy_from_slice(&4000u16.to_ne_bytes());
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::BadLengths {
                declared: 4000,
                actual: 3
            })
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let bytes = as_bytes(&header(99, size_of::<EventHeader>()));
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(99)));
        let bytes = as_bytes(&header(0, size_of::<EventHeader>()));
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(0)));
    }

    #[test]
    fn exec_args_and_exe_are_rebuilt() {
        let exe = b"echo\0bin\0usr\0";
        let args = b"echo\0hello world\0\xff\0";
        let size = size_of::<ExecRecord>() + exe.len() + args.len();
        let fixed = ExecRecord {
            header: header(kind::EXEC, size),
            task: TaskIdentity {
                ppid: 1,
                loginuid: u32::MAX,
                ..Default::default()
            },
            syscall: syscall::EXECVE,
            exe_len: exe.len() as u16,
            args_len: args.len() as u32,
            dirfd: -100,
            ..Default::default()
        };
        let mut bytes = as_bytes(&fixed);
        bytes.extend_from_slice(exe);
        bytes.extend_from_slice(args);
        let event = decode(&bytes).unwrap();
        let Detail::Exec(exec) = event.detail else {
            panic!("not an exec")
        };
        assert_eq!(exec.exe.as_deref(), Some(&b"/usr/bin/echo"[..]));
        assert_eq!(
            exec.args,
            vec![b"echo".to_vec(), b"hello world".to_vec(), vec![0xff]]
        );
        assert_eq!(exec.credentials.loginuid, None);
        assert_eq!(exec.filename, None);
        assert_eq!(exec.resolved_filename, None);
    }

    #[test]
    fn exec_file_from_the_lsm_hook_follows_the_cgroup_name() {
        let exe = b"dash\0usr\0";
        let cgroup = b"abc";
        let file = b"run.sh\0tmp\0";
        let size = size_of::<ExecRecord>() + exe.len() + cgroup.len() + file.len();
        let fixed = ExecRecord {
            header: EventHeader {
                flags: flags::ENHANCED | flags::FENTRY | flags::FILE_TRUNCATED,
                ..header(kind::EXEC, size)
            },
            syscall: syscall::EXECVE,
            exe_len: exe.len() as u16,
            cgroup_name_len: cgroup.len() as u16,
            file_len: file.len() as u16,
            ..Default::default()
        };
        let mut bytes = as_bytes(&fixed);
        bytes.extend_from_slice(exe);
        bytes.extend_from_slice(cgroup);
        bytes.extend_from_slice(file);
        let event = decode(&bytes).unwrap();
        assert_eq!(
            event.hook(),
            "raw_tp/sched_process_exec+fentry/security_bprm_check"
        );
        let Detail::Exec(exec) = event.detail else {
            panic!("not an exec")
        };
        assert_eq!(exec.exe.as_deref(), Some(&b"/usr/dash"[..]));
        assert_eq!(exec.cgroup_name, b"abc");
        assert_eq!(exec.resolved_filename.as_deref(), Some(&b"/tmp/run.sh"[..]));
        assert!(exec.resolved_filename_truncated);
    }

    #[test]
    fn syscall_record_with_strings_and_socket_ends() {
        let (target, linkpath) = (b"/etc/shadow", b"/tmp/s");
        let size = size_of::<SyscallRecord>() + target.len() + linkpath.len();
        let mut sock = SocketFacts {
            family: 2,
            sock_type: 1,
            local_port: 40000,
            remote_port: 4444,
            ..Default::default()
        };
        sock.local_addr[..4].copy_from_slice(&[172, 17, 0, 2]);
        sock.remote_addr[..4].copy_from_slice(&[10, 0, 0, 9]);
        let fixed = SyscallRecord {
            header: header(kind::SYSCALL, size),
            syscall: syscall::SYMLINKAT,
            str0_len: target.len() as u16,
            str1_len: linkpath.len() as u16,
            result: 0,
            args: [1, -100i64 as u64, 2, 0, 0],
            sock,
            ..Default::default()
        };
        let mut bytes = as_bytes(&fixed);
        bytes.extend_from_slice(target);
        bytes.extend_from_slice(linkpath);
        let event = decode(&bytes).unwrap();
        assert_eq!(event.hook(), "tracepoint/syscalls/sys_exit_symlinkat");
        let Detail::Syscall(x) = event.detail else {
            panic!("not a syscall event")
        };
        assert_eq!(x.syscall, EventType::Symlinkat);
        assert_eq!(x.strings, [target.to_vec(), linkpath.to_vec()]);
        assert_eq!(x.int_arg(1), -100);
        let ends = x.socket.unwrap();
        assert_eq!(ends.local, Some(("172.17.0.2".parse().unwrap(), 40000)));
        assert_eq!(ends.remote, Some(("10.0.0.9".parse().unwrap(), 4444)));
        // An id of another kind's syscall is refused.
        let mut wrong = bytes.clone();
        wrong[48..50].copy_from_slice(&syscall::OPENAT.to_ne_bytes());
        assert_eq!(
            decode(&wrong).unwrap_err(),
            DecodeError::UnknownSyscall(syscall::OPENAT)
        );
        // Lengths that do not add up are an error, not a read past the end.
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn paths_unreverse() {
        assert_eq!(unreverse_path(b""), b"/");
        assert_eq!(unreverse_path(b"tmp\0"), b"/tmp");
        assert_eq!(unreverse_path(b"c\0b\0a\0"), b"/a/b/c");
    }

    #[test]
    fn args_split() {
        assert_eq!(split_args(b""), Vec::<Vec<u8>>::new());
        assert_eq!(
            split_args(b"a\0\0b\0"),
            vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            split_args(b"a\0trunc"),
            vec![b"a".to_vec(), b"trunc".to_vec()]
        );
    }
}

use std::{path::PathBuf, time::Duration};

use super::*;
use crate::profiles::workload::WorkloadKind;

/// A fresh state directory per test (tests run in parallel).
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-profiles-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: Option<PathBuf>) -> ProfilesConfig {
    ProfilesConfig {
        state_dir: dir,
        learning_window: Duration::from_secs(60),
        max_entries: 3,
        max_profiles: 2,
        ..ProfilesConfig::default()
    }
}

fn web() -> WorkloadId {
    WorkloadId::new(WorkloadKind::Deployment, Some("default"), "web")
}

fn nginx() -> WorkloadId {
    WorkloadId::new(WorkloadKind::Image, None, "docker.io/library/nginx")
}

#[test]
fn learning_then_frozen_verdicts() {
    let mut p = Profiles::open(config(None));
    let w = web();
    assert!(p.is_learning(&w));
    assert_eq!(p.observe_exec(&w, b"/usr/sbin/nginx"), Verdict::Learned);
    assert_eq!(
        p.observe_destination(&w, "api.example.com", 443, Proto::Tcp),
        Verdict::Learned
    );
    assert_eq!(p.observe_listen(&w, 80, Proto::Tcp), Verdict::Learned);
    assert_eq!(
        p.observe_write_dir(&w, b"/var/log/nginx/"),
        Verdict::Learned
    );
    p.advance([&w].into_iter(), Duration::from_secs(60));
    assert!(!p.is_learning(&w));
    assert_eq!(p.observe_exec(&w, b"/usr/sbin/nginx"), Verdict::Known);
    assert_eq!(p.observe_exec(&w, b"/bin/sh"), Verdict::New);
    assert_eq!(
        p.observe_destination(&w, "api.example.com", 443, Proto::Tcp),
        Verdict::Known
    );
    assert_eq!(
        p.observe_destination(&w, "api.example.com", 443, Proto::Udp),
        Verdict::New
    );
    assert_eq!(
        p.observe_destination(&w, "10.0.0.0/24", 443, Proto::Tcp),
        Verdict::New
    );
    assert_eq!(p.observe_listen(&w, 80, Proto::Tcp), Verdict::Known);
    assert_eq!(p.observe_listen(&w, 4444, Proto::Tcp), Verdict::New);
    assert_eq!(p.observe_write_dir(&w, b"/var/log/nginx"), Verdict::Known);
    assert_eq!(p.observe_write_dir(&w, b"/etc/cron.d"), Verdict::New);
    // Frozen profiles learn nothing.
    assert_eq!(p.observe_exec(&w, b"/bin/sh"), Verdict::New);
    assert_eq!(p.stats().entries, 4);
}

#[test]
fn only_running_workloads_accrue_runtime_once_each() {
    let mut p = Profiles::open(config(None));
    let (w, idle) = (web(), nginx());
    p.observe_exec(&idle, b"/bin/true");
    // Three containers of `web` run; `idle` runs none.
    for _ in 0..59 {
        p.advance([&w, &w, &w].into_iter(), Duration::from_secs(1));
    }
    assert!(p.is_learning(&w));
    assert_eq!(p.profile(&w).unwrap().observed, Duration::from_secs(59));
    assert_eq!(p.profile(&idle).unwrap().observed, Duration::ZERO);
    p.advance([&w].into_iter(), Duration::from_secs(1));
    assert!(!p.is_learning(&w));
    assert!(p.is_learning(&idle));
    let s = p.stats();
    assert_eq!((s.profiles, s.learning, s.frozen), (2, 1, 1));
}

#[test]
fn full_sets_and_too_many_profiles_are_counted() {
    let mut p = Profiles::open(config(None));
    let w = web();
    for exe in ["/bin/a", "/bin/b", "/bin/c", "/bin/d", "/bin/e"] {
        assert_eq!(p.observe_exec(&w, exe.as_bytes()), Verdict::Learned);
    }
    assert_eq!(p.stats().evictions_entries, 2);
    assert_eq!(p.profile(&w).unwrap().refused, 2);
    p.freeze(&w);
    // The first three were kept.
    assert_eq!(p.observe_exec(&w, b"/bin/a"), Verdict::Known);
    assert_eq!(p.observe_exec(&w, b"/bin/e"), Verdict::New);

    // max_profiles is 2: the least recently seen goes.
    let third = WorkloadId::new(WorkloadKind::Job, Some("ops"), "backup");
    p.observe_exec(&nginx(), b"/bin/x");
    p.observe_exec(&w, b"/bin/a");
    p.observe_exec(&third, b"/bin/y");
    assert!(p.profile(&nginx()).is_none());
    assert!(p.profile(&w).is_some());
    assert!(p.profile(&third).is_some());
    assert_eq!(p.stats().evictions_profiles, 1);
}

#[test]
fn temporary_dirs_are_never_learned_or_new() {
    let mut p = Profiles::open(config(None));
    let w = web();
    assert_eq!(p.observe_write_dir(&w, b"/tmp/build-1"), Verdict::Known);
    assert_eq!(p.observe_write_dir(&w, b"/proc/self"), Verdict::Known);
    p.freeze(&w);
    assert_eq!(p.observe_write_dir(&w, b"/dev/shm"), Verdict::Known);
    assert_eq!(p.observe_write_dir(&w, b"/var/tmp/x"), Verdict::Known);
    assert_eq!(p.stats().entries, 0);
}

#[test]
fn profiles_survive_a_restart() {
    let dir = temp_dir("restart");
    let w = web();
    {
        let mut p = Profiles::open(config(Some(dir.clone())));
        p.observe_exec(&w, b"/usr/sbin/nginx\xff");
        p.observe_destination(&w, "10.1.2.0/24", 5432, Proto::Tcp);
        p.observe_listen(&w, 8080, Proto::Tcp);
        p.observe_write_dir(&w, b"/var/cache/nginx");
        p.advance([&w].into_iter(), Duration::from_secs(20));
        p.persist().unwrap();
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let mut p = Profiles::open(config(Some(dir.clone())));
    assert!(p.is_learning(&w));
    assert_eq!(p.profile(&w).unwrap().observed, Duration::from_secs(20));
    // The window continues where it was: 40 more seconds freeze it.
    p.advance([&w].into_iter(), Duration::from_secs(40));
    assert!(!p.is_learning(&w));
    assert_eq!(p.observe_exec(&w, b"/usr/sbin/nginx\xff"), Verdict::Known);
    assert_eq!(
        p.observe_destination(&w, "10.1.2.0/24", 5432, Proto::Tcp),
        Verdict::Known
    );
    assert_eq!(p.observe_listen(&w, 8080, Proto::Tcp), Verdict::Known);
    assert_eq!(p.observe_write_dir(&w, b"/var/cache/nginx"), Verdict::Known);
    p.persist().unwrap();
    let p = Profiles::open(config(Some(dir.clone())));
    assert!(!p.is_learning(&w));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn evicted_profiles_lose_their_files() {
    let dir = temp_dir("evict");
    let mut p = Profiles::open(config(Some(dir.clone())));
    let third = WorkloadId::new(WorkloadKind::Job, Some("ops"), "backup");
    for w in [web(), nginx()] {
        p.observe_exec(&w, b"/bin/a");
    }
    p.persist().unwrap();
    p.observe_exec(&third, b"/bin/a");
    p.persist().unwrap();
    let files = disk::read_dir(&dir).unwrap();
    assert_eq!(files.len(), 2);
    assert!(
        !dir.join(disk::file_name(&web())).exists(),
        "the least recently seen went"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_files_are_set_aside_and_start_over() {
    let dir = temp_dir("corrupt");
    let w = web();
    {
        let mut p = Profiles::open(config(Some(dir.clone())));
        p.observe_exec(&w, b"/bin/a");
        p.persist().unwrap();
    }
    let path = dir.join(disk::file_name(&w));
    std::fs::write(&path, b"{\"version\": 1, \"workload\": ").unwrap();
    std::fs::write(dir.join("garbage.json"), b"\xff\xfe").unwrap();
    let mut p = Profiles::open(config(Some(dir.clone())));
    assert!(p.profile(&w).is_none());
    assert!(
        dir.join(format!("{}.corrupt", disk::file_name(&w)))
            .exists()
    );
    assert!(dir.join("garbage.json.corrupt").exists());
    assert_eq!(p.observe_exec(&w, b"/bin/b"), Verdict::Learned);
    p.persist().unwrap();
    // Corrupted while running: the same.
    std::fs::write(&path, b"[]").unwrap();
    p.reload_external();
    assert_eq!(p.profile(&w).unwrap().entries(), 0);
    assert!(p.is_learning(&w));
    let _ = std::fs::remove_dir_all(&dir);
}

mod fleet {
    use super::*;
    use crate::profiles::fleet::{Fact, FleetEntry, FleetState};

    fn exe(path: &str, generation: u64) -> Fact {
        Fact::Entry {
            generation,
            entry: FleetEntry::Executable(path.as_bytes().into()),
        }
    }

    fn mark(start: u64, generation: u64) -> Fact {
        Fact::Runtime {
            generation,
            start,
            secs: 20,
        }
    }

    fn state(generation: u64, frozen: bool) -> Fact {
        Fact::State(FleetState {
            workload: web().to_string(),
            generation,
            frozen,
        })
    }

    /// The profile as its file would hold it (less the time of writing).
    fn stored(p: &Profiles) -> StoredProfile {
        let mut s = StoredProfile::from_profile(&web(), p.profile(&web()).unwrap());
        s.last_seen = 0;
        s
    }

    #[test]
    fn merging_is_the_same_in_any_order_and_repeated() {
        let facts = [
            exe("/bin/a", 0),
            exe("/bin/b", 0),
            mark(0, 0),
            mark(20, 0),
            mark(20, 0),
            Fact::Entry {
                generation: 0,
                entry: FleetEntry::Listen(80, Proto::Tcp),
            },
        ];
        let mut forward = Profiles::open(config(None));
        for f in &facts {
            forward.merge_fleet(&web(), f);
        }
        let mut backward = Profiles::open(config(None));
        for f in facts.iter().rev().chain(facts.iter()) {
            backward.merge_fleet(&web(), f);
        }
        assert_eq!(stored(&forward), stored(&backward));
        let p = forward.profile(&web()).unwrap();
        assert_eq!(p.executables.len(), 2);
        // Two distinct slots of 20 s: a mark seen twice counts once.
        assert_eq!(p.observed, Duration::from_secs(40));
        assert!(!p.frozen);
    }

    #[test]
    fn the_fleets_runtime_closes_the_window_and_a_freeze_stays() {
        let mut p = Profiles::open(config(None));
        assert_eq!(p.merge_fleet(&web(), &mark(0, 0)), Merged::Changed);
        assert_eq!(p.merge_fleet(&web(), &mark(20, 0)), Merged::Changed);
        // The window is 60 s: the third distinct slot closes it.
        assert_eq!(p.merge_fleet(&web(), &mark(40, 0)), Merged::Froze);
        assert!(!p.is_learning(&web()));
        // A state still saying "learning" (written before the freeze) does not undo it.
        assert_eq!(p.merge_fleet(&web(), &state(0, false)), Merged::Nothing);
        assert!(!p.is_learning(&web()));
        // An entry that raced the freeze is still merged: the fleet's union.
        assert_eq!(p.merge_fleet(&web(), &exe("/bin/late", 0)), Merged::Changed);
        assert_eq!(p.observe_exec(&web(), b"/bin/late"), Verdict::Known);
        assert_eq!(p.observe_exec(&web(), b"/bin/new"), Verdict::New);
    }

    #[test]
    fn a_newer_generation_starts_over_and_older_facts_no_longer_count() {
        let mut p = Profiles::open(config(None));
        p.keep_learned();
        p.observe_exec(&web(), b"/bin/a");
        let learned = p.take_learned();
        assert_eq!(learned.len(), 1);
        assert_eq!(learned[0].generation, 0);
        assert_eq!(p.merge_fleet(&web(), &state(0, true)), Merged::Froze);
        assert_eq!(p.merge_fleet(&web(), &state(1, false)), Merged::Reset);
        assert!(p.is_learning(&web()));
        assert_eq!(p.generation(&web()), 1);
        assert_eq!(p.profile(&web()).unwrap().entries(), 0);
        assert_eq!(p.merge_fleet(&web(), &exe("/bin/old", 0)), Merged::Nothing);
        assert_eq!(p.profile(&web()).unwrap().entries(), 0);
        // What is learned now belongs to the new generation.
        p.observe_exec(&web(), b"/bin/b");
        let learned = p.take_learned();
        assert_eq!(
            learned,
            vec![Learned {
                workload: web(),
                generation: 1,
                entry: FleetEntry::Executable(b"/bin/b".as_slice().into()),
            }]
        );
        // A local reset keeps the generation.
        p.reset(&web());
        assert_eq!(p.generation(&web()), 1);
        // An entry of a generation not announced yet implies the reset.
        assert_eq!(p.merge_fleet(&web(), &exe("/bin/c", 2)), Merged::Reset);
        assert_eq!(p.generation(&web()), 2);
        assert_eq!(p.profile(&web()).unwrap().executables.len(), 1);
    }

    #[test]
    fn fleet_entries_past_the_cap_are_refused_and_counted_and_not_republished() {
        let mut p = Profiles::open(config(None));
        p.keep_learned();
        for name in ["/bin/a", "/bin/b", "/bin/c", "/bin/d"] {
            p.merge_fleet(&web(), &exe(name, 0));
        }
        assert_eq!(p.profile(&web()).unwrap().executables.len(), 3);
        assert_eq!(p.profile(&web()).unwrap().refused, 1);
        assert_eq!(p.stats().evictions_entries, 1);
        // Merged facts came from the fleet: nothing to publish back.
        assert!(p.take_learned().is_empty());
    }

    #[test]
    fn the_generation_survives_a_restart() {
        let dir = temp_dir("fleet-generation");
        let mut p = Profiles::open(config(Some(dir.clone())));
        p.merge_fleet(&web(), &state(4, false));
        p.merge_fleet(&web(), &exe("/bin/a", 4));
        p.persist().unwrap();
        let again = Profiles::open(config(Some(dir.clone())));
        assert_eq!(again.generation(&web()), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

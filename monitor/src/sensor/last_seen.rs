//! The blind spot between agents that did not hand a recorder over: each agent notes,
//! once a second and when it stops, until when it recorded (a small file outside
//! bpffs, `/run/monitor/last-seen` by default); the next agent that does not adopt a
//! recorder reports the interval from there to its own start as unobserved. The
//! kernel cannot count events nobody recorded, so the blind spot is reported as
//! time, and it errs long: a killed agent noted its last second at most a second
//! before it died.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock::BootClock;

/// Where an agent notes until when it recorded.
pub struct LastSeen {
    path: PathBuf,
    boot_id: String,
}

#[derive(Serialize, Deserialize)]
struct Note {
    /// The kernel's boot: a note of an earlier boot says nothing of this one.
    boot_id: String,
    /// CLOCK_BOOTTIME, nanoseconds.
    recorded_until_ns: u64,
}

/// An interval nothing was recorded in (CLOCK_BOOTTIME, the events' clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Unobserved {
    pub from_ns: u64,
    pub to_ns: u64,
    pub ms: u64,
}

impl LastSeen {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|id| id.trim().to_string())
                .unwrap_or_default(),
        }
    }

    /// Until when the last agent recorded, in this boot.
    pub fn previous(&self) -> Option<u64> {
        let note: Note = serde_json::from_slice(&std::fs::read(&self.path).ok()?).ok()?;
        (note.boot_id == self.boot_id).then_some(note.recorded_until_ns)
    }

    /// Notes that everything until now was recorded. Failures are logged once by the
    /// caller's first call only: the note is a report, not a duty.
    pub fn note_now(&self) -> std::io::Result<()> {
        let note = Note {
            boot_id: self.boot_id.clone(),
            recorded_until_ns: BootClock::boot_ns_now(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Written beside and renamed, so a reader never sees half a note.
        let staging = self.path.with_extension("tmp");
        std::fs::write(&staging, serde_json::to_vec(&note)?)?;
        std::fs::rename(&staging, &self.path)
    }
}

impl Unobserved {
    /// From the last agent's note to `recording_since` (when this agent's programs were
    /// attached).
    pub fn between(previous: u64, recording_since: u64) -> Option<Self> {
        (recording_since > previous).then(|| Unobserved {
            from_ns: previous,
            to_ns: recording_since,
            ms: (recording_since - previous) / 1_000_000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_of_this_boot_is_read_back_and_another_boots_is_not() {
        let dir = std::env::temp_dir().join(format!("monitor-last-seen-{}", std::process::id()));
        let file = dir.join("last-seen");
        let seen = LastSeen::new(&file);
        assert_eq!(seen.previous(), None);
        let before = BootClock::boot_ns_now();
        seen.note_now().unwrap();
        let noted = seen.previous().unwrap();
        assert!(noted >= before && noted <= BootClock::boot_ns_now());
        let other_boot = LastSeen {
            path: file.clone(),
            boot_id: "another boot".into(),
        };
        assert_eq!(other_boot.previous(), None);
        assert_eq!(
            Unobserved::between(1_000_000_000, 3_500_000_000),
            Some(Unobserved {
                from_ns: 1_000_000_000,
                to_ns: 3_500_000_000,
                ms: 2500
            })
        );
        assert_eq!(Unobserved::between(5, 5), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}

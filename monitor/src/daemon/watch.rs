//! `rules.watch`: notices edits of the config file and the rule files by their size
//! and modification time, checked once a second. Polling costs a few `stat` calls and
//! works the same on every filesystem, including the symlink swaps with which
//! Kubernetes updates a mounted ConfigMap.
use std::{path::PathBuf, time::SystemTime};

use crate::{
    commands::rules::rule_paths,
    config::{Settings, SettingsSource},
};

type Stamp = Option<(SystemTime, u64)>;

#[derive(PartialEq, Eq, Debug)]
pub struct Fingerprint(Vec<(PathBuf, Stamp)>);

impl Fingerprint {
    pub fn of(source: &SettingsSource, settings: &Settings) -> Fingerprint {
        let mut files = vec![source.path()];
        for path in rule_paths(&settings.rules.paths).unwrap_or_default() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                let mut inside: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                inside.sort();
                files.extend(inside);
            }
            files.push(path);
        }
        Fingerprint(
            files
                .into_iter()
                .map(|path| {
                    // `metadata` follows symlinks: a swapped link target counts.
                    let stamp = std::fs::metadata(&path)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())));
                    (path, stamp)
                })
                .collect(),
        )
    }

    /// True once per change.
    pub fn changed(&mut self, source: &SettingsSource, settings: &Settings) -> bool {
        let now = Fingerprint::of(source, settings);
        if now == *self {
            return false;
        }
        *self = now;
        true
    }

    /// Takes the files as they are now as seen (after a reload from them).
    pub fn remember(&mut self, source: &SettingsSource, settings: &Settings) {
        *self = Fingerprint::of(source, settings);
    }
}

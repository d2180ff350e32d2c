//! `monitor profiles list|show|reset|freeze`: the learned profiles in the state
//! directory. Works on the files alone, so it needs no running daemon; a running one
//! takes a reset or freeze in at its next check of the directory.
use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};

use crate::{
    cli::{ProfilesCmdArgs, ProfilesCommand},
    config::{self, SettingsSource},
    output::escape::escape_line,
    profiles::{
        ProfilesConfig, WorkloadId,
        disk::{self, StoredProfile},
        fleet::{
            FleetConfig,
            admin::{self, FleetAdmin},
        },
    },
};

pub fn run(args: ProfilesCmdArgs) -> Result<()> {
    let source = SettingsSource {
        explicit: args.config.clone(),
    };
    let loaded = config::load(&source, std::env::vars(), &args.overrides()).map_err(|err| {
        for problem in &err.problems {
            eprintln!("{problem}");
        }
        anyhow!(
            "{} problem(s) in the settings (`monitor config check`)",
            err.problems.len()
        )
    })?;
    let c = loaded.settings.profiles_config();
    if args.fleet {
        let fleet = admin::required(c.fleet.as_ref())?.clone();
        return admin::block_on(fleet_command(args.command, &fleet, &c));
    }
    let dir = c.state_dir.clone().ok_or_else(|| {
        anyhow!(
            "profiles.state_dir is null: profiles are kept in memory only; pass \
             --profiles-dir DIR to read a state directory"
        )
    })?;
    let mut out = std::io::stdout().lock();
    match args.command {
        ProfilesCommand::List => list(&dir, c.learning_window, &mut out),
        ProfilesCommand::Show { workload } => {
            show(&dir, &parse(&workload)?, c.learning_window, &mut out)
        }
        ProfilesCommand::Reset { workload, all } => {
            let w = (!all)
                .then(|| parse(workload.as_deref().unwrap_or("")))
                .transpose()?;
            for id in reset_in(&dir, w.as_ref())? {
                writeln!(
                    out,
                    "reset {}: learning again from nothing",
                    escape_line(&id.to_string())
                )?;
            }
            Ok(())
        }
        ProfilesCommand::Freeze { workload, all } => {
            let w = (!all)
                .then(|| parse(workload.as_deref().unwrap_or("")))
                .transpose()?;
            for id in freeze_in(&dir, w.as_ref())? {
                writeln!(out, "frozen {}", escape_line(&id.to_string()))?;
            }
            Ok(())
        }
    }
}

/// `monitor profiles --fleet ...`.
async fn fleet_command(
    command: ProfilesCommand,
    fleet: &FleetConfig,
    c: &ProfilesConfig,
) -> Result<()> {
    let store = FleetAdmin::connect(fleet).await?;
    let place = format!("the fleet store ({}, bucket {})", fleet.url, fleet.bucket);
    let mut out = std::io::stdout().lock();
    let chosen = |workload: Option<String>, all: bool| -> Result<Option<WorkloadId>> {
        (!all)
            .then(|| parse(workload.as_deref().unwrap_or("")))
            .transpose()
    };
    match command {
        ProfilesCommand::List => {
            let all = store.profiles(None, c).await?;
            print_list(&all, &place, c.learning_window, &mut out)
        }
        ProfilesCommand::Show { workload } => {
            let w = parse(&workload)?;
            let found = store.profiles(Some(&w), c).await?;
            let Some((_, p)) = found.into_iter().find(|(id, _)| *id == w) else {
                bail!(
                    "no profile of {} in {place} (`monitor profiles list --fleet`)",
                    escape_line(&w.to_string())
                );
            };
            print_show(
                &w,
                &p,
                &format!("from: {place}"),
                c.learning_window,
                &mut out,
            )
        }
        ProfilesCommand::Reset { workload, all } => {
            let ids = match chosen(workload, all)? {
                Some(w) => vec![w],
                None => store.workloads(c).await?,
            };
            for id in ids {
                let (generation, purged) = store.reset(&id).await?;
                writeln!(
                    out,
                    "reset {} fleet-wide: learning again from nothing (generation \
                     {generation}; {purged} facts of the old one purged)",
                    escape_line(&id.to_string())
                )?;
            }
            Ok(())
        }
        ProfilesCommand::Freeze { workload, all } => {
            let ids = match chosen(workload, all)? {
                Some(w) => {
                    // Freezing a workload nobody learned would make everything it does new.
                    if store.profiles(Some(&w), c).await?.is_empty() {
                        bail!(
                            "no profile of {} in {place}: nothing learned to freeze \
                             (`monitor profiles list --fleet`)",
                            escape_line(&w.to_string())
                        );
                    }
                    vec![w]
                }
                None => store.workloads(c).await?,
            };
            for id in ids {
                if store.freeze(&id).await? {
                    writeln!(out, "frozen {} fleet-wide", escape_line(&id.to_string()))?;
                } else {
                    writeln!(out, "{} was frozen already", escape_line(&id.to_string()))?;
                }
            }
            Ok(())
        }
    }
}

fn parse(text: &str) -> Result<WorkloadId> {
    text.parse::<WorkloadId>()
        .map_err(|e| anyhow!("{} (`monitor profiles list` prints them)", escape_line(&e)))
}

/// The readable profiles of `dir`; unreadable ones are named on stderr and skipped.
fn profiles_in(dir: &Path) -> Result<Vec<(PathBuf, WorkloadId, StoredProfile)>> {
    let files = disk::read_dir(dir).with_context(|| {
        format!(
            "cannot read the profiles in {} (run as the daemon's user, or pass \
             --profiles-dir)",
            dir.display()
        )
    })?;
    let mut out = Vec::new();
    for read in files {
        match read.profile.and_then(|p| p.id().map(|id| (id, p))) {
            Ok((id, p)) => out.push((read.path, id, p)),
            Err(err) => eprintln!(
                "monitor: warning: {} cannot be read ({}); skipped (the daemon sets it \
                 aside and its workload learns again)",
                read.path.display(),
                escape_line(&err)
            ),
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The profile of `w`, or an error listing the workloads there are.
fn find(dir: &Path, w: &WorkloadId) -> Result<(PathBuf, StoredProfile)> {
    let all = profiles_in(dir)?;
    let known: Vec<String> = all
        .iter()
        .map(|(_, id, _)| escape_line(&id.to_string()).into_owned())
        .collect();
    match all.into_iter().find(|(_, id, _)| id == w) {
        Some((path, _, p)) => Ok((path, p)),
        None if known.is_empty() => bail!(
            "no profile of {} : {} holds no profiles yet (the daemon writes them there; \
             is this the state directory it uses? --profiles-dir, profiles.state_dir)",
            escape_line(&w.to_string()),
            dir.display()
        ),
        None => bail!(
            "no profile of {} in {}; known workloads: {} (`monitor profiles list`)",
            escape_line(&w.to_string()),
            dir.display(),
            known.join(", ")
        ),
    }
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn state(p: &StoredProfile, window: Duration) -> String {
    let observed = Duration::try_from_secs_f64(p.observed_secs).unwrap_or_default();
    format!(
        "{} {}/{}",
        if p.frozen { "frozen" } else { "learning" },
        secs(observed),
        secs(window)
    )
}

/// `monitor profiles list`.
pub fn list(dir: &Path, window: Duration, out: &mut impl Write) -> Result<()> {
    let all: Vec<(WorkloadId, StoredProfile)> = profiles_in(dir)?
        .into_iter()
        .map(|(_, id, p)| (id, p))
        .collect();
    print_list(&all, &dir.display().to_string(), window, out)
}

/// One line per profile of `place` (a state directory or the fleet store).
fn print_list(
    all: &[(WorkloadId, StoredProfile)],
    place: &str,
    window: Duration,
    out: &mut impl Write,
) -> Result<()> {
    if all.is_empty() {
        writeln!(out, "no profiles in {place}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<48} {:<24} {:>5} {:>5} {:>6} {:>6} {:>7}",
        "WORKLOAD", "STATE OBSERVED/WINDOW", "EXEC", "DEST", "LISTEN", "WRITE", "REFUSED"
    )?;
    for (id, p) in all {
        writeln!(
            out,
            "{:<48} {:<24} {:>5} {:>5} {:>6} {:>6} {:>7}",
            escape_line(&id.to_string()),
            state(p, window),
            p.executables.len(),
            p.destinations.len(),
            p.listening.len(),
            p.write_dirs.len(),
            p.refused
        )?;
    }
    Ok(())
}

/// `monitor profiles show WORKLOAD`.
pub fn show(dir: &Path, w: &WorkloadId, window: Duration, out: &mut impl Write) -> Result<()> {
    let (path, p) = find(dir, w)?;
    print_show(w, &p, &format!("file: {}", path.display()), window, out)
}

/// Every entry of one profile; `origin` says where it was read.
fn print_show(
    w: &WorkloadId,
    p: &StoredProfile,
    origin: &str,
    window: Duration,
    out: &mut impl Write,
) -> Result<()> {
    writeln!(out, "workload: {}", escape_line(&w.to_string()))?;
    writeln!(out, "{origin}")?;
    writeln!(out, "state: {}", state(p, window))?;
    writeln!(out, "refused (a set was full): {}", p.refused)?;
    let group = |out: &mut dyn Write, title: &str, items: Vec<String>| -> std::io::Result<()> {
        writeln!(out, "{title} ({}):", items.len())?;
        for item in items {
            writeln!(out, "  {}", escape_line(&item))?;
        }
        Ok(())
    };
    group(out, "executables", p.executables.clone())?;
    group(
        out,
        "destinations",
        p.destinations
            .iter()
            .map(|d| format!("{} {}/{}", d.host, d.port, d.proto))
            .collect(),
    )?;
    group(
        out,
        "listening",
        p.listening
            .iter()
            .map(|l| format!("{}/{}", l.port, l.proto))
            .collect(),
    )?;
    group(out, "written directories", p.write_dirs.clone())?;
    Ok(())
}

/// Rewrites the chosen profiles (`None`: all) with `change`; returns their ids.
fn rewrite(
    dir: &Path,
    w: Option<&WorkloadId>,
    change: impl Fn(&WorkloadId, StoredProfile) -> StoredProfile,
) -> Result<Vec<WorkloadId>> {
    let chosen = match w {
        Some(w) => {
            let (_, p) = find(dir, w)?;
            vec![(w.clone(), p)]
        }
        None => profiles_in(dir)?
            .into_iter()
            .map(|(_, id, p)| (id, p))
            .collect(),
    };
    let mut done = Vec::new();
    for (id, p) in chosen {
        disk::write(dir, &id, &change(&id, p)).with_context(|| {
            format!(
                "cannot write the profile of {} in {} (run as the daemon's user)",
                escape_line(&id.to_string()),
                dir.display()
            )
        })?;
        done.push(id);
    }
    Ok(done)
}

/// `monitor profiles reset`: the file is rewritten empty and learning, so that a
/// running daemon sees the change and an idle one starts from it.
pub fn reset_in(dir: &Path, w: Option<&WorkloadId>) -> Result<Vec<WorkloadId>> {
    rewrite(dir, w, |id, _| StoredProfile::empty(id))
}

/// `monitor profiles freeze`.
pub fn freeze_in(dir: &Path, w: Option<&WorkloadId>) -> Result<Vec<WorkloadId>> {
    rewrite(dir, w, |_, mut p| {
        p.frozen = true;
        p
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{Profiles, ProfilesConfig, Proto, WorkloadKind, store::tests::temp_dir};

    fn prepared(name: &str) -> (PathBuf, WorkloadId, WorkloadId) {
        let dir = temp_dir(name);
        let web = WorkloadId::new(WorkloadKind::Deployment, Some("default"), "web");
        let evil = WorkloadId::new(WorkloadKind::Image, None, "evil/\x1b[31mred");
        let mut p = Profiles::open(ProfilesConfig {
            state_dir: Some(dir.clone()),
            ..ProfilesConfig::default()
        });
        p.observe_exec(&web, b"/usr/sbin/nginx");
        p.observe_exec(&web, b"/tmp/x\n2024-01-01 CRITICAL forged\x1b]0;t\x07");
        p.observe_destination(&web, "api.example.com", 443, Proto::Tcp);
        p.observe_listen(&web, 80, Proto::Tcp);
        p.observe_write_dir(&web, b"/var/log/nginx");
        p.observe_exec(&evil, b"/bin/sh");
        p.advance([&web].into_iter(), Duration::from_secs(600));
        p.persist().unwrap();
        (dir, web, evil)
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn list_and_show_escape_what_workloads_chose() {
        let (dir, web, evil) = prepared("cli-show");
        let window = Duration::from_secs(3600);
        let listed = text(|o| list(&dir, window, o));
        assert!(!listed.contains('\x1b'), "{listed}");
        let line = listed
            .lines()
            .find(|l| l.starts_with("deployment/default/web"))
            .unwrap();
        assert!(line.contains("learning 10m/1h"), "{line}");
        assert_eq!(
            line.split_whitespace().skip(3).collect::<Vec<_>>(),
            ["2", "1", "1", "1", "0"]
        );
        assert!(listed.contains("image/evil/\\x1b[31mred"), "{listed}");
        let shown = text(|o| show(&dir, &web, window, o));
        assert!(shown.contains("  /usr/sbin/nginx\n"), "{shown}");
        assert!(
            shown.contains("  /tmp/x\\n2024-01-01 CRITICAL forged\\x1b]0;t\\x07\n"),
            "{shown}"
        );
        assert!(shown.contains("  api.example.com 443/tcp\n"), "{shown}");
        assert!(shown.contains("listening (1):\n  80/tcp\n"), "{shown}");
        assert!(shown.contains("written directories (1):\n  /var/log/nginx\n"));
        assert!(!shown.contains('\x1b') && !shown.contains('\x07'));
        let _ = evil;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reset_and_freeze_rewrite_the_files() {
        let (dir, web, evil) = prepared("cli-reset");
        assert_eq!(freeze_in(&dir, None).unwrap().len(), 2);
        let window = Duration::from_secs(3600);
        assert!(text(|o| show(&dir, &evil, window, o)).contains("state: frozen"));
        assert_eq!(
            reset_in(&dir, Some(&web)).unwrap(),
            std::slice::from_ref(&web)
        );
        let shown = text(|o| show(&dir, &web, window, o));
        assert!(shown.contains("state: learning 0s/1h"), "{shown}");
        assert!(shown.contains("executables (0):"), "{shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_workloads_name_the_known_ones() {
        let (dir, _, _) = prepared("cli-unknown");
        let nope = WorkloadId::new(WorkloadKind::Deployment, Some("default"), "api");
        let err = reset_in(&dir, Some(&nope)).unwrap_err().to_string();
        assert!(
            err.contains("no profile of deployment/default/api"),
            "{err}"
        );
        assert!(err.contains("deployment/default/web"), "{err}");
        assert!(err.contains("`monitor profiles list`"), "{err}");
        let empty = temp_dir("cli-empty");
        let err = freeze_in(&empty, Some(&nope)).unwrap_err().to_string();
        assert!(err.contains("holds no profiles yet"), "{err}");
        assert!(
            parse("web")
                .unwrap_err()
                .to_string()
                .contains("monitor profiles list")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn small(dir: &Path) -> ProfilesConfig {
        ProfilesConfig {
            state_dir: Some(dir.to_path_buf()),
            max_profiles: 2,
            ..ProfilesConfig::default()
        }
    }

    #[test]
    fn cli_reset_and_freeze_reach_the_running_profiles() {
        let dir = temp_dir("external");
        let w = WorkloadId::new(WorkloadKind::Deployment, Some("default"), "web");
        let n = WorkloadId::new(WorkloadKind::Image, None, "docker.io/library/nginx");
        let mut p = Profiles::open(small(&dir));
        p.observe_exec(&w, b"/bin/a");
        p.observe_exec(&n, b"/bin/b");
        p.persist().unwrap();
        p.reload_external();
        // What `monitor profiles freeze` and `reset` do to the files.
        freeze_in(&dir, Some(&n)).unwrap();
        reset_in(&dir, Some(&w)).unwrap();
        p.reload_external();
        assert!(!p.is_learning(&n));
        assert_eq!(
            p.observe_exec(&n, b"/bin/b"),
            crate::profiles::Verdict::Known
        );
        assert!(p.profile(&w).unwrap().executables.is_empty());
        // A deleted file resets as well.
        p.observe_exec(&n, b"/bin/c");
        std::fs::remove_file(dir.join(crate::profiles::disk::file_name(&n))).unwrap();
        p.reload_external();
        assert!(p.is_learning(&n));
        assert_eq!(p.profile(&n).unwrap().entries(), 0);
        // And a persist after the CLI's change keeps it.
        p.observe_exec(&w, b"/bin/d");
        p.persist().unwrap();
        freeze_in(&dir, None).unwrap();
        p.persist().unwrap();
        let again = Profiles::open(small(&dir));
        assert!(!again.is_learning(&w));
        assert!(!again.is_learning(&n));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

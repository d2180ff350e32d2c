//! The benign-corpus image: Debian bookworm with the ordinary programs real containers
//! run (sshd, cron, logrotate, supervisord under tini, redis, python, busybox httpd)
//! and a user whose home looks like a real one, SSH keys included. No registry is
//! reachable, so it is made here with debootstrap and `docker import`, once per
//! machine: the tag carries a version, and a change to what is set up here must bump
//! it so every machine builds the new image.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

pub const IMAGE: &str = "monitor-test/debian-corpus:v1";
const VERSION_LABEL: &str = "monitor.corpus=v1";

/// The home's owner: the app, the cron job, the SSH logins and the find/grep run as
/// this user.
pub const USER: &str = "alice";
pub const HOME: &str = "/home/alice";

/// What the scenarios need and nothing more; busybox gives httpd and wget without
/// the weight of curl, tini and supervisor are the init and the supervisor.
const PACKAGES: &str = "openssh-server,openssh-client,cron,logrotate,python3,busybox,\
                        redis-server,redis-tools,procps,tini,supervisor";

const SUITE: &str = "bookworm";

fn mirror() -> String {
    std::env::var("MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".to_string())
}

fn image_exists() -> bool {
    Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|err| {
        panic!("cannot run {command:?}: {err}");
    });
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes the debootstrap folder whatever happens; a debootstrap killed half-way can
/// leave proc or sys mounted inside it, which must be unmounted first so nothing of
/// the host's is ever removed.
struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.0.display());
        let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut below: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        // Deepest first.
        below.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in below {
            let _ = Command::new("umount").args(["-l", mount]).status();
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Builds [`IMAGE`] unless this machine has it.
pub fn ensure_image() {
    assert!(
        super::docker::is_up(),
        "dockerd is not running: `cargo xtask setup` starts it"
    );
    if image_exists() {
        return;
    }
    let started = Instant::now();
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("installing debootstrap (apt-get)");
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "debootstrap"]));
    }
    eprintln!("building the benign-corpus image with debootstrap: about 2 minutes");
    let work = Workdir(PathBuf::from(format!(
        "/var/tmp/monitor-corpus.{}",
        std::process::id()
    )));
    let _ = fs::remove_dir_all(&work.0);
    fs::create_dir_all(&work.0).unwrap();
    let rootfs = work.0.join("rootfs");
    let log = work.0.join("debootstrap.log");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
        .arg(&rootfs)
        .arg(mirror())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::piped())
        .status()
        .expect("run debootstrap");
    if !status.success() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        panic!(
            "debootstrap failed ({status}); the end of its log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    configure(&rootfs);
    import(&rootfs);
    eprintln!("built {IMAGE} in {:.0} s", started.elapsed().as_secs_f64());
}

fn write(rootfs: &Path, path: &str, mode: u32, text: &str) {
    let target = rootfs.join(path.trim_start_matches('/'));
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, text).unwrap_or_else(|err| panic!("write {}: {err}", target.display()));
    fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
}

fn chroot(rootfs: &Path, args: &[&str]) {
    run(Command::new("chroot").arg(rootfs).args(args));
}

/// Everything the scenarios find in place, as an image's author would have set it up.
fn configure(rootfs: &Path) {
    // The user and their home: ordinary files, notes with TODOs, and SSH keys as real
    // users have them (the key pair they log in with, authorized_keys), which a find
    // or grep over the home walks through.
    chroot(
        rootfs,
        &[
            "useradd",
            "--create-home",
            "--uid",
            "1000",
            "--shell",
            "/bin/bash",
            USER,
        ],
    );
    // Key logins only; sshd without PAM refuses accounts locked with `!`.
    chroot(rootfs, &["usermod", "--password", "*", USER]);
    for (path, text) in [
        (
            "notes.txt",
            "Meeting notes\n- TODO: renew the TLS certificate\n- ask about the backup window\n",
        ),
        (
            "projects/site/README.txt",
            "The corpus web site. Build with make; TODO: add a sitemap.\n",
        ),
        (
            "projects/site/index.md",
            "# Welcome\n\nNothing to see here yet.\n",
        ),
        (
            "projects/scripts/backup.sh",
            "#!/bin/sh\n# TODO: rotate old archives\ntar -czf \"$HOME/backup.tgz\" \"$HOME/projects\"\n",
        ),
        (
            "documents/recipes.txt",
            "Bread: flour, water, salt, yeast.\n",
        ),
    ] {
        write(rootfs, &format!("{HOME}/{path}"), 0o644, text);
    }
    write(
        rootfs,
        &format!("{HOME}/.ssh/config"),
        0o600,
        "Host *\n    ServerAliveInterval 30\n",
    );
    chroot(
        rootfs,
        &[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "alice@corpus",
            "-f",
            &format!("{HOME}/.ssh/id_ed25519"),
        ],
    );
    let public = fs::read_to_string(rootfs.join(format!("{}/.ssh/id_ed25519.pub", &HOME[1..])))
        .expect("ssh-keygen wrote the public key");
    write(
        rootfs,
        &format!("{HOME}/.ssh/authorized_keys"),
        0o600,
        &public,
    );
    fs::set_permissions(
        rootfs.join(format!("{}/.ssh", &HOME[1..])),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    // Written as root from outside; sshd's StrictModes wants the user's own.
    chroot(rootfs, &["chown", "-R", &format!("{USER}:{USER}"), HOME]);

    // sshd: key logins only. Without PAM, because pam_loginuid cannot set the login
    // uid in a container whose processes already have one (the usual container sshd
    // setup); /run/sshd is the privilege-separation directory sshd insists on.
    write(
        rootfs,
        "/etc/ssh/sshd_config.d/corpus.conf",
        0o644,
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nPermitRootLogin no\n",
    );
    fs::create_dir_all(rootfs.join("run/sshd")).unwrap();

    // The app: a shell entrypoint that checks its config and execs a Python web app,
    // which reads /etc/app/app.conf, serves pages and a health check, writes an app
    // log (reopened on SIGHUP) and an access log (kept open: rotated by copytruncate).
    write(
        rootfs,
        "/etc/app/app.conf",
        0o644,
        "[server]\nport = 8080\ngreeting = hello from the corpus app\n\n\
         [log]\nfile = /var/log/app/app.log\naccess_log = /var/log/app/access.log\n\
         pid_file = /run/app/app.pid\n",
    );
    write(rootfs, "/opt/app/app.py", 0o644, APP_PY);
    write(
        rootfs,
        "/usr/local/bin/app-entrypoint",
        0o755,
        "#!/bin/sh\n# Checks the config is there, then hands the process over to the app.\n\
         set -e\nconf=${APP_CONFIG:-/etc/app/app.conf}\n\
         [ -r \"$conf\" ] || { echo \"no config at $conf\" >&2; exit 1; }\n\
         exec python3 /opt/app/app.py \"$conf\"\n",
    );
    write(
        rootfs,
        "/usr/local/bin/app-report",
        0o755,
        "#!/bin/sh\n# Summary line for the operators: requests served so far.\n\
         requests=$(wc -l < /var/log/app/access.log)\n\
         echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) requests=$requests\"\n",
    );
    for dir in ["var/log/app", "run/app"] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
        chroot(
            rootfs,
            &["chown", &format!("{USER}:{USER}"), &format!("/{dir}")],
        );
    }

    // supervisord (under tini) starts the app and cron, as a multi-process container
    // does.
    write(
        rootfs,
        "/etc/supervisor/conf.d/corpus.conf",
        0o644,
        "[program:app]\ncommand=/usr/local/bin/app-entrypoint\nuser=alice\n\
         environment=HOME=\"/home/alice\",USER=\"alice\"\nautorestart=true\n\
         redirect_stderr=true\nstdout_logfile=/var/log/supervisor/app.out\n\n\
         [program:cron]\ncommand=/usr/sbin/cron -f\nautorestart=true\n",
    );

    // cron: the report and the log rotation every minute (hourly or daily on a real
    // system; every minute so a test sees them run). pam_loginuid is made optional as
    // container images do: it fails where the container's processes already have a
    // login uid and then cron runs no job at all.
    write(
        rootfs,
        "/etc/cron.d/corpus",
        0o644,
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         * * * * * alice /usr/local/bin/app-report >> /home/alice/app-report.log 2>&1\n\
         * * * * * root /usr/sbin/logrotate /etc/logrotate.conf\n",
    );
    let pam_cron = rootfs.join("etc/pam.d/cron");
    let pam = fs::read_to_string(&pam_cron).expect("cron's PAM config");
    let pam: String = pam
        .lines()
        .map(|line| {
            if line.contains("pam_loginuid.so") {
                line.replacen("required", "optional", 1)
            } else {
                line.to_string()
            }
        })
        .map(|line| line + "\n")
        .collect();
    assert!(
        pam.lines()
            .any(|l| l.contains("optional") && l.contains("pam_loginuid.so")),
        "cron's PAM config has no pam_loginuid line:\n{pam}"
    );
    fs::write(&pam_cron, pam).unwrap();

    // logrotate: the access log by copytruncate (the app keeps it open), the app log
    // by create + a HUP to the app in postrotate. `size 1` rotates anything written
    // since the last run; `su` because the app's user owns the log directory.
    write(
        rootfs,
        "/etc/logrotate.d/app",
        0o644,
        "/var/log/app/access.log {\n    su alice alice\n    size 1\n    rotate 3\n    \
         copytruncate\n    missingok\n    notifempty\n}\n\n\
         /var/log/app/app.log {\n    su alice alice\n    size 1\n    rotate 3\n    \
         create 0640 alice alice\n    missingok\n    notifempty\n    sharedscripts\n    \
         postrotate\n        [ -s /run/app/app.pid ] && kill -HUP \"$(cat /run/app/app.pid)\" || true\n    \
         endscript\n}\n",
    );

    // redis: listening on the container's network too (the client sits in another
    // container), no persistence needed.
    write(
        rootfs,
        "/etc/redis/corpus.conf",
        0o644,
        "bind 0.0.0.0\nprotected-mode no\nport 6379\ndir /var/lib/redis\nsave \"\"\n\
         appendonly no\nlogfile \"\"\n",
    );

    // The web root busybox httpd serves, with its health-check page.
    write(
        rootfs,
        "/srv/www/index.html",
        0o644,
        "<!doctype html><title>corpus</title><h1>corpus web</h1>\n",
    );
    write(rootfs, "/srv/www/healthz", 0o644, "ok\n");

    // A smaller image: no documentation, manuals, locales or apt caches.
    for dir in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/cache/apt",
        "var/lib/apt/lists",
    ] {
        let path = rootfs.join(dir);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
    }
}

fn import(rootfs: &Path) {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let status = Command::new("docker")
        .args([
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            &format!("LABEL {VERSION_LABEL}"),
            "--change",
            "CMD [\"/bin/bash\"]",
            "-",
            IMAGE,
        ])
        .stdin(tar.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .expect("docker import");
    assert!(tar.wait().unwrap().success(), "tar of the rootfs failed");
    assert!(status.success(), "docker import {IMAGE} failed");
}

/// The app: configuration from an INI file, pages and `/healthz` over HTTP, an access
/// log kept open and an app log reopened on SIGHUP (logrotate's `create` +
/// postrotate).
const APP_PY: &str = r#"import configparser
import http.server
import os
import signal
import sys
import threading

config = configparser.ConfigParser()
config.read(sys.argv[1] if len(sys.argv) > 1 else "/etc/app/app.conf")
port = config.getint("server", "port")
greeting = config.get("server", "greeting")
log_path = config.get("log", "file")
access_path = config.get("log", "access_log")

lock = threading.Lock()
log = open(log_path, "a", buffering=1)
access = open(access_path, "a", buffering=1)


def reopen(signum, frame):
    global log
    with lock:
        log.close()
        log = open(log_path, "a", buffering=1)
        log.write("reopened log after SIGHUP\n")


signal.signal(signal.SIGHUP, reopen)
with open(config.get("log", "pid_file"), "w") as pid_file:
    pid_file.write(f"{os.getpid()}\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n" if self.path == "/healthz" else f"{greeting}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        with lock:
            access.write("%s %s\n" % (self.address_string(), fmt % args))


with lock:
    log.write(f"listening on port {port}\n")
http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
"#;

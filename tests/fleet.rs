//! Learned profiles shared by the fleet, against real parts: three `nats-server`
//! processes (Debian's package) forming a JetStream cluster on loopback, the real
//! daemon on the real kernel, real containers. Two agents on one machine stand for two
//! nodes: each has its own state directory and learns only through what it sees and
//! what the fleet store tells it.
mod support;

use std::{
    process::{Command, Output, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use monitor::profiles::{
    Profiles, ProfilesConfig, WorkloadId, WorkloadKind,
    fleet::{Change, Fleet, FleetConfig},
};
use serde_json::Value;
use support::{
    Monitor, attack,
    docker::{self, Cleanup, IMAGE, docker},
    nats::Cluster,
    serial,
};

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
const UNEXPECTED_PROCESS: &str = "Unexpected process in workload";

fn unique(name: &str) -> String {
    format!("monitor-fleet-{name}-{}", std::process::id())
}

/// `monitor profiles --fleet --fleet-url URL ARGS`.
fn fleet_cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["profiles", "--fleet", "--fleet-url", url])
        .args(args)
        .output()
        .expect("run monitor profiles")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `within`.
fn wait_until<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until JetStream has a meta leader and the bucket can be made (R3).
fn wait_ready(cluster: &Cluster) {
    let url = cluster.url();
    wait_until("the JetStream cluster", Duration::from_secs(60), || {
        fleet_cli(&url, &["list"]).status.success().then_some(())
    });
}

/// The fleet's view of one workload (`monitor profiles show --fleet`), once it
/// satisfies `pred`.
fn wait_fleet_show(url: &str, workload: &str, within: Duration, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let out = fleet_cli(url, &["show", workload]);
        let last = text(&out);
        if out.status.success() && pred(&last) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet's profile of {workload} never matched; last:\n{last}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An image of its own (so a workload of its own: `image/<repository>`) holding the
/// attack tool under each of `names` in /opt/app: one executable path per name.
struct WorkloadImage {
    image: String,
    workload: String,
}

impl WorkloadImage {
    fn build(name: &str, names: &[&str]) -> WorkloadImage {
        docker::ensure_image();
        let repository = format!("monitor-test/{}", unique(name));
        let image = format!("{repository}:v1");
        let base = unique(&format!("{name}-base"));
        docker(&["create", "--name", &base, IMAGE, "sleep", "300"]);
        let tool = attack::tool().to_str().unwrap().to_string();
        let staged = std::env::temp_dir().join(unique(&format!("{name}-opt")));
        let _ = std::fs::remove_dir_all(&staged);
        std::fs::create_dir_all(staged.join("app")).unwrap();
        for n in names {
            std::fs::copy(&tool, staged.join("app").join(n)).unwrap();
        }
        // The image has no /opt: the staged folder becomes it.
        docker(&["cp", staged.to_str().unwrap(), &format!("{base}:/opt")]);
        docker(&["commit", &base, &image]);
        docker(&["rm", "-f", &base]);
        let _ = std::fs::remove_dir_all(&staged);
        WorkloadImage {
            workload: format!("image/{repository}"),
            image,
        }
    }
}

impl Drop for WorkloadImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// An agent with the default rules, its own state directory and the fleet store.
fn agent(url: &str, name: &str, window_secs: u64) -> (Monitor, std::path::PathBuf) {
    let site = support::site_rules(&unique(name), "");
    let dir = std::env::temp_dir().join(unique(&format!("{name}-profiles")));
    let _ = std::fs::remove_dir_all(&dir);
    let window = window_secs.to_string();
    let monitor = Monitor::run(&[
        "--rules",
        DEFAULT_RULES,
        "--rules",
        site.to_str().unwrap(),
        "--learning-window",
        &window,
        "--profiles-dir",
        dir.to_str().unwrap(),
        "--fleet-url",
        url,
    ]);
    (monitor, dir)
}

fn in_container(container: &str, argv: &[&str]) {
    let ok = Command::new("docker")
        .arg("exec")
        .arg(container)
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "docker exec {container} {argv:?}");
}

fn profile_alerts(monitor: &Monitor, container: &str) -> Vec<Value> {
    monitor
        .events()
        .into_iter()
        .filter(|a| {
            a["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("Unexpected"))
                && a["output_fields"]["container.name"] == container
        })
        .collect()
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_fresh_node_judges_a_workload_the_fleet_learned_from_its_first_event() {
    let _serial = serial();
    let cluster = Cluster::start("fresh");
    wait_ready(&cluster);
    let url = cluster.url();
    let w = WorkloadImage::build("fresh", &["worker", "extra"]);
    let first = unique("fresh-first");
    let second = unique("fresh-second");
    let _cleanup = Cleanup(vec![first.clone(), second.clone()]);

    // Node A learns the workload: its container's usual commands, then frozen by the
    // window of observed runtime.
    let (node_a, dir_a) = agent(&url, "node-a", 6);
    docker(&["run", "-d", "--name", &first, &w.image, "sleep", "300"]);
    in_container(&first, &["/opt/app/worker", "true"]);
    in_container(&first, &["ls", "/"]);
    wait_fleet_show(&url, &w.workload, Duration::from_secs(40), |shown| {
        shown.contains("state: frozen") && shown.contains("/opt/app/worker")
    });
    assert!(
        profile_alerts(&node_a, &first).is_empty(),
        "nothing is new while learning"
    );
    node_a.stop();
    docker(&["rm", "-f", &first]);

    // Node B starts with nothing of its own and only ever sees the workload after it
    // was frozen: its first events wait for the fleet's profile and are judged by it.
    let (node_b, dir_b) = agent(&url, "node-b", 3600);
    docker(&["run", "-d", "--name", &second, &w.image, "sleep", "300"]);
    in_container(&second, &["/opt/app/worker", "true"]);
    in_container(&second, &["ls", "/"]);
    in_container(&second, &["/opt/app/extra", "true"]);
    let alert = node_b.wait_for_within(
        "the new executable on node B",
        Duration::from_secs(20),
        |a| a["rule"] == UNEXPECTED_PROCESS && a["output_fields"]["container.name"] == second,
    );
    assert_eq!(alert["output_fields"]["proc.exepath"], "/opt/app/extra");
    assert_eq!(alert["output_fields"]["workload.id"], w.workload.as_str());
    assert_eq!(alert["output_fields"]["container.image"], w.image.as_str());
    // The usual commands (and the container's start) raised nothing: one alert.
    std::thread::sleep(Duration::from_secs(1));
    let all = profile_alerts(&node_b, &second);
    assert_eq!(all.len(), 1, "only the new executable: {all:#?}");
    let body = node_b.metrics();
    assert!(
        metric(&body, "monitor_profiles_fleet_received_total").is_some_and(|n| n > 0.0),
        "{body}"
    );
    assert_eq!(metric(&body, "monitor_profiles_fleet_connected"), Some(1.0));
    node_b.stop();
    // B's local copy holds the fleet's profile, frozen, for when the store is away.
    let local = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["profiles", "--profiles-dir", dir_b.to_str().unwrap()])
        .args(["show", &w.workload])
        .output()
        .unwrap();
    let local = text(&local);
    assert!(local.contains("state: frozen"), "{local}");
    assert!(local.contains("/opt/app/worker"), "{local}");
    for dir in [dir_a, dir_b] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn outages_lose_nothing_and_a_fleet_freeze_reaches_the_agent_within_seconds() {
    let _serial = serial();
    let mut cluster = Cluster::start("outage");
    wait_ready(&cluster);
    let url = cluster.url();
    let w = WorkloadImage::build("outage", &["worker", "one", "two", "extra"]);
    let app = unique("outage-app");
    let _cleanup = Cleanup(vec![app.clone()]);
    let (node, dir) = agent(&url, "outage-node", 3600);
    docker(&["run", "-d", "--name", &app, &w.image, "sleep", "300"]);
    in_container(&app, &["/opt/app/worker", "true"]);
    wait_fleet_show(&url, &w.workload, Duration::from_secs(20), |s| {
        s.contains("/opt/app/worker")
    });

    // One server of three dies: what is learned still reaches the fleet.
    cluster.kill_server(1);
    in_container(&app, &["/opt/app/one", "true"]);
    wait_fleet_show(&url, &w.workload, Duration::from_secs(30), |s| {
        s.contains("/opt/app/one")
    });

    // All three stop: the agent goes on judging with its own copy, says so once in
    // its log and in its metrics, and keeps what it learns meanwhile.
    cluster.stop_all();
    in_container(&app, &["/opt/app/two", "true"]);
    node.wait_for_log("is unreachable");
    // The metrics follow at the agent's next second.
    let body = wait_until("the outage in the metrics", Duration::from_secs(5), || {
        let body = node.metrics();
        (metric(&body, "monitor_profiles_fleet_connected") == Some(0.0)).then_some(body)
    });
    assert_eq!(
        metric(&body, "monitor_profiles_fleet_outages_total"),
        Some(1.0),
        "{body}"
    );
    assert!(
        metric(&body, "monitor_profiles_fleet_pending").is_some_and(|n| n >= 1.0),
        "the fact learned during the outage waits: {body}"
    );

    // The servers return: the agent says so and publishes what it learned.
    cluster.start_all();
    node.wait_for_log("reachable again");
    wait_fleet_show(&url, &w.workload, Duration::from_secs(60), |s| {
        s.contains("/opt/app/two") && s.contains("/opt/app/one")
    });
    let outages = node
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("is unreachable"))
        .count();
    assert_eq!(outages, 1, "the outage is reported once");

    // A fleet-wide freeze from the command line reaches the agent within seconds.
    let frozen_at = Instant::now();
    let out = fleet_cli(&url, &["freeze", &w.workload]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("frozen"), "{}", text(&out));
    let learning = format!("monitor_profile_learning{{workload=\"{}\"}}", w.workload);
    wait_until(
        "the agent to follow the freeze",
        Duration::from_secs(5),
        || (metric(&node.metrics(), &learning) == Some(0.0)).then_some(()),
    );
    eprintln!(
        "fleet freeze followed by the agent in {:.2} s",
        frozen_at.elapsed().as_secs_f64()
    );
    in_container(&app, &["/opt/app/worker", "true"]);
    in_container(&app, &["/opt/app/extra", "true"]);
    let alert = node.wait_for_within("the new executable", Duration::from_secs(15), |a| {
        a["rule"] == UNEXPECTED_PROCESS && a["output_fields"]["container.name"] == app
    });
    assert_eq!(alert["output_fields"]["proc.exepath"], "/opt/app/extra");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(profile_alerts(&node, &app).len(), 1);

    // A fleet-wide reset: a new generation, the old facts purged, the agent learning
    // again from nothing within seconds (so the new executable raises nothing more).
    let out = fleet_cli(&url, &["reset", &w.workload]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("generation 1"), "{said}");
    wait_until(
        "the agent to follow the reset",
        Duration::from_secs(5),
        || (metric(&node.metrics(), &learning) == Some(1.0)).then_some(()),
    );
    wait_fleet_show(&url, &w.workload, Duration::from_secs(10), |s| {
        s.contains("state: learning") && !s.contains("/opt/app/one")
    });
    in_container(&app, &["/opt/app/one", "true"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        profile_alerts(&node, &app).len(),
        1,
        "nothing is new while learning"
    );
    node.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// The store over TLS with a private CA: `profiles.fleet.ca_file` in the settings file
/// is what lets the agent in; without it the connection is refused, and said so.
#[test]
fn the_fleet_store_over_tls_needs_its_ca() {
    let dir = std::env::temp_dir().join(unique("tls"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = support::private_ca("127.0.0.1");
    let file = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_file = file("ca.pem", ca.ca_pem.clone());
    let cert_file = file("server.pem", ca.cert.pem());
    let key_file = file("server.key", ca.key.serialize_pem());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = file(
        "nats.conf",
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n\
             tls {{ cert_file: \"{}\"\n key_file: \"{}\" }}\n",
            dir.join("store").display(),
            cert_file.display(),
            key_file.display()
        ),
    );
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        Command::new("nats-server")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server"),
    );
    wait_until("nats-server over TLS", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(())
    });
    let url = format!("nats://127.0.0.1:{port}");
    let settings = file(
        "monitor.yaml",
        format!(
            "profiles:\n  fleet:\n    url: {url}\n    replicas: 1\n    ca_file: {}\n",
            ca_file.display()
        ),
    );
    let with_ca = wait_until("a listing over TLS", Duration::from_secs(20), || {
        let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .args([
                "profiles",
                "--fleet",
                "--config",
                settings.to_str().unwrap(),
                "list",
            ])
            .output()
            .unwrap();
        out.status.success().then(|| text(&out))
    });
    assert!(
        with_ca.contains("no profiles in the fleet store"),
        "{with_ca}"
    );
    let without = fleet_cli(&url, &["list"]);
    assert!(!without.status.success(), "{}", text(&without));
    assert!(
        text(&without).contains("cannot reach the fleet store"),
        "{}",
        text(&without)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two nodes learning one workload at the same moment, through the agent's own
/// fleet link (`Fleet`) and merge (`Profiles::merge_fleet`): the kernel is left out
/// because two agents on one machine see the same events, and here each must learn
/// something the other does not.
#[test]
fn two_nodes_learning_one_workload_at_once_end_with_the_union() {
    let cluster = Cluster::start("union");
    wait_ready(&cluster);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fleet = FleetConfig {
            url: cluster.url(),
            ..FleetConfig::default()
        };
        let w = Arc::new(WorkloadId::new(
            WorkloadKind::Deployment,
            Some("shop"),
            "web",
        ));
        let mut nodes: Vec<(Profiles, Fleet)> = (0..2)
            .map(|_| {
                let mut profiles = Profiles::open(ProfilesConfig {
                    state_dir: None,
                    ..ProfilesConfig::default()
                });
                profiles.keep_learned();
                let link = Fleet::start(fleet.clone());
                link.watch(w.clone());
                (profiles, link)
            })
            .collect();
        // Interleaved: 50 executables of each node's own and 10 both see.
        for i in 0..50 {
            for (n, (profiles, link)) in nodes.iter_mut().enumerate() {
                profiles.observe_exec(&w, format!("/bin/node{n}-{i}").as_bytes());
                profiles.observe_exec(&w, format!("/bin/shared-{}", i % 10).as_bytes());
                for learned in profiles.take_learned() {
                    link.publish(&learned.workload, learned.generation, &learned.entry);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (profiles, link) in nodes.iter_mut() {
                while let Some(update) = link.try_update() {
                    if let Change::Fact(fact) = update.change {
                        profiles.merge_fleet(&update.workload, &fact);
                    }
                }
            }
            let sizes: Vec<usize> = nodes
                .iter()
                .map(|(p, _)| p.profile(&w).map_or(0, |p| p.executables.len()))
                .collect();
            if sizes == [110, 110] {
                break;
            }
            assert!(Instant::now() < deadline, "executables per node: {sizes:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (n, (profiles, link)) in nodes.iter().enumerate() {
            let p = profiles.profile(&w).unwrap();
            for i in 0..50 {
                for m in 0..2 {
                    assert!(
                        p.executables
                            .contains(format!("/bin/node{m}-{i}").as_bytes()),
                        "node {n} lacks node {m}'s entry {i}"
                    );
                }
            }
            let stats = link.stats();
            // Each node created its own 50 and, of the shared 10, those it offered first.
            assert!(stats.published >= 50, "{stats:?}");
            assert_eq!(stats.publish_errors, 0, "{stats:?}");
        }
        let published: u64 = nodes.iter().map(|(_, l)| l.stats().published).sum();
        let known: u64 = nodes.iter().map(|(_, l)| l.stats().known).sum();
        // 110 distinct facts in the store; the 10 shared ones were offered twice.
        assert_eq!(published, 110);
        assert_eq!(known, 10);
    });
    // The store itself holds exactly the union.
    let shown = text(&fleet_cli(&cluster.url(), &["show", "deployment/shop/web"]));
    assert!(shown.contains("executables (110):"), "{shown}");
}

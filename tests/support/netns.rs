//! A network namespace of the test's own behind a veth pair, reachable from the host
//! and (through Docker's NAT) from containers: the only place besides loopback a test
//! may connect to. Its addresses are documentation addresses (198.51.100.0/24), which
//! rules treat as the public internet.
use std::process::{Child, Command, Stdio};

pub const HOST_IP: &str = "198.51.100.1";
pub const PEER_IP: &str = "198.51.100.2";

pub struct Netns {
    name: String,
    veth: String,
    listeners: Vec<Child>,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl Netns {
    pub fn create(name: &str) -> Netns {
        let veth = format!("mt{}", std::process::id() % 100_000);
        let peer = format!("{veth}p");
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        ip(&["netns", "add", name]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", name]);
        ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{PEER_IP}/24"),
            "dev",
            &peer,
        ]);
        ip(&["-n", name, "link", "set", &peer, "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Netns {
            name: name.to_string(),
            veth,
            listeners: Vec::new(),
        }
    }

    /// Accepts TCP connections on `port` inside the namespace, one after another, for
    /// as long as the namespace lives (busybox nc, each closed at once).
    pub fn serve(&mut self, port: u16) {
        self.nc(&["-ll", "-p", &port.to_string(), "-e", "/bin/true"]);
    }

    /// Accepts one TCP connection on `port` inside the namespace (busybox nc).
    pub fn listen(&mut self, port: u16) {
        self.nc(&["-l", "-p", &port.to_string()]);
    }

    /// IPv4 packets the namespace received so far (`Ip: InReceives`): what reached it
    /// at all, SYNs included.
    pub fn ipv4_received(&self) -> u64 {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat", "/proc/net/snmp"])
            .output()
            .expect("ip netns exec");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut ip = text.lines().filter(|l| l.starts_with("Ip: "));
        let (names, values) = (ip.next().expect("Ip header"), ip.next().expect("Ip values"));
        let column = names
            .split_whitespace()
            .position(|n| n == "InReceives")
            .expect("InReceives");
        values
            .split_whitespace()
            .nth(column)
            .and_then(|v| v.parse().ok())
            .expect("a count")
    }

    /// A busybox nc in the namespace for the namespace's life.
    fn nc(&mut self, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox", "nc"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox nc");
        self.listeners.push(child);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.listeners {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

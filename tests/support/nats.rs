//! A real NATS JetStream cluster on loopback: three `nats-server` processes (Debian's
//! package) with their own stores, routes between them, and ports chosen free.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Cluster {
    pub name: String,
    dir: PathBuf,
    client_ports: Vec<u16>,
    route_ports: Vec<u16>,
    servers: Vec<Option<Child>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// Three servers, started; `ready` waits for JetStream.
    pub fn start(name: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("monitor-nats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Cluster {
            name: name.to_string(),
            dir,
            client_ports: (0..3).map(|_| free_port()).collect(),
            route_ports: (0..3).map(|_| free_port()).collect(),
            servers: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.start_server(i);
        }
        cluster
    }

    /// Every server's client URL, comma-separated (what `--fleet-url` takes).
    pub fn url(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_server(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "server {i} runs already");
        let routes: Vec<String> = self
            .route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let store = self.dir.join(format!("n{i}"));
        let config = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
             cluster {{\n  name: {}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
            self.client_ports[i],
            store.display(),
            self.name,
            self.route_ports[i],
            routes.join(", ")
        );
        let path = self.dir.join(format!("n{i}.conf"));
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("n{i}.log"))).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server (cargo xtask setup installs it)");
        self.servers[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_ports[i])).is_err() {
            assert!(Instant::now() < deadline, "nats-server n{i} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the server dies as in a crash.
    pub fn kill_server(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn stop_all(&mut self) {
        for i in 0..3 {
            self.kill_server(i);
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..3 {
            if self.servers[i].is_none() {
                self.start_server(i);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

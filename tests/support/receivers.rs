//! Real receivers on loopback for the alert tests: rsyslogd (UDP, TCP and a unix
//! socket, RFC 5424) and a small HTTP server that records POST bodies and can be
//! stopped and started again to simulate an outage.
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use super::wait_until;

use serde_json::Value;

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-alerts-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub struct Rsyslog {
    pub dir: PathBuf,
    pub child: Child,
    pub udp: u16,
    pub tcp: u16,
    pub socket: PathBuf,
    pub out: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslog {
    pub fn start(name: &str) -> Rsyslog {
        let dir = temp_dir(name);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tcp = free_port();
        let socket = dir.join("log.sock");
        let out = dir.join("received.log");
        let conf = format!(
            r#"global(workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{socket}" UseSpecialParser="off" RateLimit.Interval="0")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="string" string="%syslogseverity%|%syslogfacility%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
            dir = dir.display(),
            socket = socket.display(),
            out = out.display(),
        );
        let conf_path = dir.join("rsyslog.conf");
        fs::write(&conf_path, conf).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("rsyslogd.stderr")).unwrap())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog)");
        let r = Rsyslog {
            dir,
            child,
            udp,
            tcp,
            socket,
            out,
        };
        wait_until("rsyslogd to listen", Duration::from_secs(15), || {
            r.socket.exists() && TcpStream::connect(("127.0.0.1", r.tcp)).is_ok()
        });
        r
    }

    pub fn received(&self) -> Vec<String> {
        lines(&self.out)
    }

    pub fn wait_lines(&self, n: usize) -> Vec<String> {
        wait_until(
            &format!("{n} lines from rsyslogd in {}", self.out.display()),
            Duration::from_secs(15),
            || self.received().len() >= n,
        );
        // Anything more that would arrive (there must be nothing).
        thread::sleep(Duration::from_millis(300));
        self.received()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[derive(Default)]
pub struct Received {
    pub bodies: Vec<Value>,
    pub headers: Vec<BTreeMap<String, String>>,
}

/// A small HTTP/1.1 server on 127.0.0.1 that records POST bodies and answers 200.
/// Stopped, it closes its listener and every connection without answering what
/// it did not record.
pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
    pub running: Option<(Arc<AtomicBool>, thread::JoinHandle<()>)>,
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver {
            port: free_port(),
            received: Arc::default(),
            running: None,
        }
    }

    pub fn start(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = self.received.clone();
        let stop2 = stop.clone();
        let handle = thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let received = received.clone();
                        let stop = stop2.clone();
                        conns.push(thread::spawn(move || serve(stream, &received, &stop)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener);
            for c in conns {
                let _ = c.join();
            }
        });
        self.running = Some((stop, handle));
    }

    pub fn stop(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            handle.join().unwrap();
        }
    }

    pub fn count(&self) -> usize {
        self.alerts().len()
    }

    /// Every alert received, in order (arrays flattened).
    pub fn alerts(&self) -> Vec<Value> {
        let r = self.received.lock().unwrap();
        r.bodies
            .iter()
            .flat_map(|b| match b {
                Value::Array(list) => list.clone(),
                other => vec![other.clone()],
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn serve(stream: TcpStream, received: &Mutex<Received>, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        // Request line and headers.
        let mut head = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_string());
                }
                Err(_) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if !line.is_empty() {
                        continue;
                    }
                }
            }
        }
        let mut headers = BTreeMap::new();
        for h in head.iter().skip(1) {
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match reader.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(_) if stop.load(Ordering::SeqCst) => return,
                Err(_) => {}
            }
        }
        if stop.load(Ordering::SeqCst) {
            // Going away: not recorded, not answered.
            return;
        }
        {
            let mut r = received.lock().unwrap();
            r.bodies
                .push(serde_json::from_slice(&body).expect("a JSON body"));
            r.headers.push(headers);
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

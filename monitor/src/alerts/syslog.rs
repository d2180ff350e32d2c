//! RFC 5424 syslog messages and their transports: UDP, TCP with octet-counted
//! framing (RFC 6587 `LEN SP MSG`), and unix datagram sockets (`/dev/log`).
use std::{fmt::Write as _, net::SocketAddr, path::PathBuf, time::Duration};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UdpSocket, UnixDatagram},
};

use super::model::Alert;
use crate::output::escape::escape_line;

/// Private enterprise number used for the structured data id (RFC 5612's example
/// number, as software without its own registration does).
const SD_ID: &str = "monitor@32473";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddress {
    Udp(String),
    Tcp(String),
    Unix(PathBuf),
}

impl SyslogAddress {
    pub fn parse(s: &str) -> Result<SyslogAddress, String> {
        if let Some(rest) = s.strip_prefix("udp://") {
            Ok(SyslogAddress::Udp(with_port(rest)))
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            Ok(SyslogAddress::Tcp(with_port(rest)))
        } else if let Some(rest) = s.strip_prefix("unix://") {
            Ok(SyslogAddress::Unix(PathBuf::from(rest)))
        } else {
            Err(format!(
                "syslog address `{s}`: expected udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH"
            ))
        }
    }
}

/// `host` → `host:514`, `::1` → `[::1]:514`.
fn with_port(hostport: &str) -> String {
    if hostport.starts_with('[') {
        if hostport.contains("]:") {
            hostport.to_string()
        } else {
            format!("{hostport}:514")
        }
    } else {
        match hostport.matches(':').count() {
            0 => format!("{hostport}:514"),
            1 => hostport.to_string(),
            _ => format!("[{hostport}]:514"),
        }
    }
}

/// Printable US-ASCII (33..=126) only, at most `max` characters, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() { "-".into() } else { out }
}

/// RFC 5424 allows at most 6 digits of fractional seconds.
fn timestamp(time: &str) -> String {
    let valid = time.len() >= 20 && time.is_ascii() && time.as_bytes()[10] == b'T';
    if !valid {
        return "-".into();
    }
    match time.find('.') {
        Some(dot) => {
            let frac_end = time[dot + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .map(|i| dot + 1 + i)
                .unwrap_or(time.len());
            let keep = (frac_end - dot - 1).min(6);
            format!("{}{}", &time[..dot + 1 + keep], &time[frac_end..])
        }
        None => time.to_string(),
    }
}

fn sd_value(s: &str) -> String {
    let mut out = String::new();
    for c in escape_line(s).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The message: `<PRI>1 TIMESTAMP HOSTNAME monitor PROCID MSGID SD MSG`, with MSG the
/// alert's text line (escaped: one line, no terminal escapes), cut to `max` bytes.
pub fn format_rfc5424(alert: &Alert, facility: u8, structured: bool, max: usize) -> String {
    let pri = u16::from(facility.min(23)) * 8 + u16::from(alert.severity());
    let mut m = String::with_capacity(256 + alert.output.len());
    let _ = write!(
        m,
        "<{pri}>1 {} {} monitor {} {} ",
        timestamp(&alert.time),
        header_field(&alert.hostname, 255),
        std::process::id(),
        header_field(&alert.rule, 32),
    );
    if structured {
        let _ = write!(
            m,
            "[{SD_ID} rule=\"{}\" priority=\"{}\" source=\"{}\"",
            sd_value(&alert.rule),
            alert.priority.as_str(),
            sd_value(&alert.source)
        );
        if let Some(id) = alert.container.as_ref().and_then(|c| c.id.as_deref()) {
            let _ = write!(m, " container_id=\"{}\"", sd_value(id));
        }
        if let Some(id) = &alert.exec_id {
            let _ = write!(m, " exec_id=\"{}\"", sd_value(id));
        }
        m.push_str("] ");
    } else {
        m.push_str("- ");
    }
    m.push_str(&alert.to_text(false));
    if m.len() > max {
        let mut cut = max;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
    m
}

pub struct SyslogTransport {
    address: SyslogAddress,
    facility: u8,
    structured: bool,
    max: usize,
    udp: Option<(UdpSocket, SocketAddr)>,
    tcp: Option<TcpStream>,
    unix: Option<UnixDatagram>,
    timeout: Duration,
}

impl SyslogTransport {
    pub fn new(address: SyslogAddress, facility: u8, structured: bool, max: usize) -> Self {
        SyslogTransport {
            address,
            facility,
            structured,
            max,
            udp: None,
            tcp: None,
            unix: None,
            timeout: Duration::from_secs(5),
        }
    }

    pub async fn send(&mut self, alerts: &[std::sync::Arc<Alert>]) -> Result<(), (usize, String)> {
        for (done, alert) in alerts.iter().enumerate() {
            let msg = format_rfc5424(alert, self.facility, self.structured, self.max);
            let result = self.send_one(&msg).await;
            if result.is_err() {
                // Reconnect next time.
                self.tcp = None;
                self.udp = None;
            }
            result.map_err(|e| (done, e))?;
        }
        Ok(())
    }

    async fn send_one(&mut self, msg: &str) -> Result<(), String> {
        match &self.address {
            SyslogAddress::Udp(target) => {
                if self.udp.is_none() {
                    let addr = resolve(target).await?;
                    let local = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
                    self.udp = Some((sock, addr));
                }
                let (sock, addr) = self.udp.as_ref().unwrap();
                sock.send_to(msg.as_bytes(), addr)
                    .await
                    .map_err(|e| format!("udp {addr}: {e}"))?;
            }
            SyslogAddress::Tcp(target) => {
                if self.tcp.is_none() {
                    let addr = resolve(target).await?;
                    let stream = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
                        .await
                        .map_err(|_| format!("tcp {addr}: connect timed out"))?
                        .map_err(|e| format!("tcp {addr}: {e}"))?;
                    let _ = stream.set_nodelay(true);
                    self.tcp = Some(stream);
                }
                let frame = format!("{} {msg}", msg.len());
                let stream = self.tcp.as_mut().unwrap();
                tokio::time::timeout(self.timeout, stream.write_all(frame.as_bytes()))
                    .await
                    .map_err(|_| "tcp: write timed out".to_string())?
                    .map_err(|e| format!("tcp {target}: {e}"))?;
            }
            SyslogAddress::Unix(path) => {
                if self.unix.is_none() {
                    self.unix = Some(UnixDatagram::unbound().map_err(|e| e.to_string())?);
                }
                self.unix
                    .as_ref()
                    .unwrap()
                    .send_to(msg.as_bytes(), path)
                    .await
                    .map_err(|e| format!("unix {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

async fn resolve(target: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| format!("{target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target}: no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Priority;

    #[test]
    fn alerts_syslog_rfc5424_shape() {
        let alert = Alert {
            time: "2024-01-02T03:04:05.123456789Z".into(),
            rule: "Shell in container".into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "node 1".into(),
            output: "a\nb]\"".into(),
            tags: vec![],
            output_fields: Default::default(),
            exec_id: Some("e1".into()),
            event_type: None,
            ancestors: vec![],
            container: None,
            aggregated: None,
            response: None,
        };
        assert_eq!(
            format_rfc5424(&alert, 16, false, 8192),
            format!(
                "<132>1 2024-01-02T03:04:05.123456Z node_1 monitor {} Shell_in_container - \
                 2024-01-02T03:04:05.123456789Z Warning Shell in container: a\\nb]\"",
                std::process::id()
            )
        );
        let sd = format_rfc5424(&alert, 1, true, 8192);
        assert!(sd.starts_with("<12>1 "), "{sd}");
        assert!(
            sd.contains(
                "[monitor@32473 rule=\"Shell in container\" priority=\"Warning\" source=\"syscall\" exec_id=\"e1\"] "
            ),
            "{sd}"
        );
        assert_eq!(format_rfc5424(&alert, 16, false, 10).len(), 10);
        assert_eq!(
            SyslogAddress::parse("udp://127.0.0.1").unwrap(),
            SyslogAddress::Udp("127.0.0.1:514".into())
        );
        assert_eq!(
            SyslogAddress::parse("tcp://[::1]:601").unwrap(),
            SyslogAddress::Tcp("[::1]:601".into())
        );
        assert_eq!(
            SyslogAddress::parse("unix:///dev/log").unwrap(),
            SyslogAddress::Unix("/dev/log".into())
        );
        assert!(SyslogAddress::parse("/dev/log").is_err());
    }
}

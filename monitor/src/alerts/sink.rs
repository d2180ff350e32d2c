//! The destinations: stdout, a rotated file, syslog, HTTP. Each is driven by its own
//! worker; `Transport::send` either delivers a whole batch or fails.
use std::{
    fs::{self, File, OpenOptions},
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::{
    config::{SinkConfig, SinkKind},
    http::HttpTransport,
    model::{Alert, Format},
    syslog::{SyslogAddress, SyslogTransport},
};

/// The NO_COLOR convention (no-color.org): set and not empty, no colors unless asked.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

pub enum Transport {
    Stdout { format: Format, color: bool },
    File(FileSink),
    Syslog(SyslogTransport),
    Http(HttpTransport),
}

impl Transport {
    /// Checks the settings; nothing is opened or connected yet.
    pub fn new(config: &SinkConfig) -> Result<Transport, String> {
        Ok(match &config.kind {
            SinkKind::Stdout { color } => {
                let tty = std::io::stdout().is_terminal();
                let format = config
                    .format
                    .unwrap_or(if tty { Format::Text } else { Format::Json });
                Transport::Stdout {
                    format,
                    color: format == Format::Text && color.unwrap_or(tty && !no_color()),
                }
            }
            SinkKind::File {
                path,
                max_bytes,
                keep,
            } => Transport::File(FileSink::new(
                path.clone(),
                *max_bytes,
                *keep,
                config.format.unwrap_or(Format::Json),
            )),
            SinkKind::Syslog {
                address,
                facility,
                structured_data,
                max_message_bytes,
            } => {
                if config
                    .format
                    .is_some_and(|f| f != Format::Json && f != Format::Text)
                {
                    return Err(
                        "syslog sends RFC 5424 messages: the ocsf, ocsf-activity and ecs \
                         formats are for stdout, file and http sinks"
                            .into(),
                    );
                }
                if *facility > 23 {
                    return Err(format!("syslog facility {facility}: must be 0..=23"));
                }
                Transport::Syslog(SyslogTransport::new(
                    SyslogAddress::parse(address)?,
                    *facility,
                    *structured_data,
                    *max_message_bytes,
                ))
            }
            SinkKind::Http {
                url,
                headers,
                batch,
                ca_file,
                timeout_ms,
            } => Transport::Http(HttpTransport::new(
                url,
                headers,
                *batch,
                config.format.unwrap_or(Format::Json),
                ca_file.as_deref(),
                Duration::from_millis(*timeout_ms),
            )?),
        })
    }

    /// Alerts handed to one `send`.
    pub fn batch(&self) -> usize {
        match self {
            Transport::Http(h) => h.batch().max(1),
            _ => 256,
        }
    }

    /// Delivers the alerts in order. On failure, says how many of the first ones were
    /// delivered all the same (they are not sent again).
    pub async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), (usize, String)> {
        match self {
            Transport::Stdout { format, color } => {
                let mut out = String::new();
                for a in alerts {
                    out.push_str(&a.render(*format, *color));
                    out.push('\n');
                }
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(out.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|e| (0, format!("stdout: {e}")))
            }
            Transport::File(f) => f.write(alerts),
            Transport::Syslog(s) => s.send(alerts).await,
            Transport::Http(h) => h.send(alerts).await,
        }
    }
}

/// Appends one line per alert; past `max_bytes` the file becomes `NAME.1` (the older
/// ones shift to `.2` …, the one past `keep` is removed) and a new file is started.
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    format: Format,
    file: Option<(File, u64)>,
}

impl FileSink {
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32, format: Format) -> FileSink {
        FileSink {
            path,
            max_bytes,
            keep,
            format,
            file: None,
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            return fs::remove_file(&self.path);
        }
        let _ = fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        fs::rename(&self.path, self.rotated(1))
    }

    fn open(path: &Path) -> std::io::Result<(File, u64)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    pub fn write(&mut self, alerts: &[Arc<Alert>]) -> Result<(), (usize, String)> {
        for (done, alert) in alerts.iter().enumerate() {
            let shown = self.path.display().to_string();
            let err = |e: std::io::Error| (done, format!("{shown}: {e}"));
            let mut line = alert.render(self.format, false);
            line.push('\n');
            if self.file.is_none() {
                self.file = Some(Self::open(&self.path).map_err(err)?);
            }
            let size = self.file.as_ref().unwrap().1;
            if self.max_bytes > 0 && size > 0 && size + line.len() as u64 > self.max_bytes {
                self.rotate().map_err(err)?;
                self.file = Some(Self::open(&self.path).map_err(err)?);
            }
            let (file, size) = self.file.as_mut().unwrap();
            if let Err(e) = file.write_all(line.as_bytes()) {
                self.file = None;
                return Err(err(e));
            }
            *size += line.len() as u64;
        }
        Ok(())
    }
}

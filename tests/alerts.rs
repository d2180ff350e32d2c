//! Alert delivery against real receivers on loopback: a real rsyslogd (UDP, TCP and a
//! unix socket, RFC 5424), an HTTP server that goes away and comes back, files.
//! Drives `monitor::alerts::Dispatcher` in-process; needs no kernel sensor.
mod support;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use monitor::{
    alerts::{
        AggregationConfig, Alert, AlertsConfig, Dispatcher, DispatcherStats, Format,
        RateLimitConfig, RetryConfig, SUPPRESSED_RULE, SinkConfig, SinkKind, SpoolConfig,
    },
    output::escape::bytes_to_text,
    rules::Priority,
};
use serde_json::{Map, Value, json};
use support::{
    receivers::{Receiver, Rsyslog, lines, temp_dir},
    schemas::{Ecs, Ocsf},
    wait_until,
};

const TIME: &str = "2024-05-06T07:08:09.123456789Z";

fn alert(rule: &str, priority: Priority, output: &str, n: u64) -> Alert {
    let mut fields = Map::new();
    fields.insert("n".into(), json!(n));
    fields.insert("proc.name".into(), json!("sh"));
    Alert {
        time: TIME.into(),
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node1".into(),
        output: output.into(),
        tags: vec!["container".into(), "shell".into()],
        output_fields: fields,
        exec_id: Some(format!("exec-{n}")),
        event_type: None,
        ancestors: vec![],
        container: None,
        aggregated: None,
        response: None,
    }
}

fn numbered(n: u64) -> Alert {
    alert(
        "Numbered",
        Priority::Warning,
        &format!("alert {n:04} from a test"),
        n,
    )
}

fn shutdown(d: Dispatcher) -> DispatcherStats {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(d.shutdown())
}

fn quick_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        initial_backoff_ms: 10,
        max_backoff_ms: 100,
    }
}

// ---------------------------------------------------------------- rsyslog

fn syslog_sink(address: String, structured: bool) -> SinkConfig {
    let mut s = SinkConfig::new(SinkKind::Syslog {
        address,
        facility: 16,
        structured_data: structured,
        max_message_bytes: 8192,
    });
    s.retry = quick_retry();
    s
}

#[test]
fn syslog_rfc5424_over_udp_tcp_and_unix_socket() {
    let rsyslog = Rsyslog::start("syslog");
    let pid = std::process::id();
    let cases = [
        (
            format!("udp://127.0.0.1:{}", rsyslog.udp),
            Priority::Critical,
            "2",
        ),
        (
            format!("tcp://127.0.0.1:{}", rsyslog.tcp),
            Priority::Warning,
            "4",
        ),
        (
            format!("unix://{}", rsyslog.socket.display()),
            Priority::Debug,
            "7",
        ),
    ];
    let mut expected = Vec::new();
    for (i, (address, priority, severity)) in cases.iter().enumerate() {
        let d = Dispatcher::new(&AlertsConfig {
            sinks: vec![syslog_sink(address.clone(), i == 1)],
            rate_limit: None,
            aggregation: None,
        })
        .unwrap();
        let output = format!("via {address} user=root");
        d.submit(alert("Shell in container", *priority, &output, i as u64));
        let stats = shutdown(d);
        assert_eq!(stats.sinks[0].delivered, 1, "{address}: {stats:?}");
        assert_eq!(stats.sinks[0].dropped, 0);
        let sd = if i == 1 {
            r#"[monitor@32473 rule="Shell in container" priority="Warning" source="syscall" exec_id="exec-1"]"#
                .to_string()
        } else {
            "-".into()
        };
        expected.push(format!(
            "{severity}|16|monitor|{pid}|Shell_in_container|{sd}|{TIME} {} Shell in container: {output}",
            priority.as_str()
        ));
        // One at a time, so the order of arrival is known.
        let got = rsyslog.wait_lines(i + 1);
        assert_eq!(got, expected, "{address}");
    }
}

// ---------------------------------------------------------------- hostile text

#[test]
fn hostile_alert_is_one_line_in_every_format() {
    let rsyslog = Rsyslog::start("hostile");
    let dir = temp_dir("hostile-files");
    let json_path = dir.join("alerts.json.log");
    let text_path = dir.join("alerts.text.log");
    let file = |path: &Path, format| {
        let mut s = SinkConfig::new(SinkKind::File {
            path: path.to_path_buf(),
            max_bytes: 0,
            keep: 0,
        });
        s.format = Some(format);
        s
    };
    let bad_bytes = bytes_to_text(b"\xff\xfe/tmp");
    let output = format!(
        "evil\n{TIME} Critical Forged rule: fake alert\r\x1b[31mred\x1b[0m {bad_bytes}\u{2028}end"
    );
    let mut hostile = alert("Evil\nrule\x1b[2J", Priority::Error, &output, 7);
    hostile.hostname = "host\nname".into();
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![
            file(&json_path, Format::Json),
            file(&text_path, Format::Text),
            syslog_sink(format!("unix://{}", rsyslog.socket.display()), true),
            syslog_sink(format!("tcp://127.0.0.1:{}", rsyslog.tcp), false),
        ],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    d.submit(hostile.clone());
    let stats = shutdown(d);
    for s in &stats.sinks {
        assert_eq!(s.delivered, 1, "{stats:?}");
    }

    let escaped_output = "evil\\n2024-05-06T07:08:09.123456789Z Critical Forged rule: fake alert\\r\\x1b[31mred\\x1b[0m \\xff\\xfe/tmp\\u{2028}end";
    let text_line = format!("{TIME} Error Evil\\nrule\\x1b[2J: {escaped_output}");

    let json_lines = lines(&json_path);
    assert_eq!(json_lines.len(), 1, "{json_lines:?}");
    let v: Value = serde_json::from_str(&json_lines[0]).unwrap();
    assert_eq!(v["output"], output.as_str());
    assert_eq!(v["rule"], "Evil\nrule\x1b[2J");
    assert_eq!(v["hostname"], "host\nname");
    assert_eq!(v["priority"], "Error");
    assert_eq!(v["output_fields"]["n"], 7);
    let back: Alert = serde_json::from_str(&json_lines[0]).unwrap();
    assert_eq!(back, hostile);

    assert_eq!(lines(&text_path), vec![text_line.clone()]);
    let raw = fs::read(&text_path).unwrap();
    assert!(!raw.contains(&0x1b) && !raw.contains(&b'\r'));

    let got = rsyslog.wait_lines(2);
    assert_eq!(got.len(), 2, "{got:?}");
    let pid = std::process::id();
    let sd = r#"[monitor@32473 rule="Evil\\nrule\\x1b[2J" priority="Error" source="syscall" exec_id="exec-7"]"#;
    let mut want = vec![
        format!("3|16|monitor|{pid}|Evil_rule_[2J|{sd}|{text_line}"),
        format!("3|16|monitor|{pid}|Evil_rule_[2J|-|{text_line}"),
    ];
    let mut got = got;
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- HTTP receiver

fn http_sink(port: u16, spool: &Path, batch: usize) -> SinkConfig {
    let mut headers = BTreeMap::new();
    headers.insert("X-Token".to_string(), "secret-123".to_string());
    let mut s = SinkConfig::new(SinkKind::Http {
        url: format!("http://127.0.0.1:{port}/alerts"),
        headers,
        batch,
        ca_file: None,
        timeout_ms: 2000,
    });
    s.retry = quick_retry();
    s.queue_size = 100;
    s.spool = Some(SpoolConfig {
        dir: spool.to_path_buf(),
        max_bytes: 64 << 20,
    });
    s
}

fn assert_numbered(alerts: &[Value], count: u64) {
    let ns: Vec<u64> = alerts
        .iter()
        .map(|a| a["output_fields"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..count).collect::<Vec<_>>(), "all, in order, once");
    let first = &alerts[0];
    assert_eq!(
        first,
        &json!({
            "time": TIME, "rule": "Numbered", "priority": "Warning", "source": "syscall",
            "hostname": "node1", "output": "alert 0000 from a test",
            "tags": ["container", "shell"],
            "output_fields": {"n": 0, "proc.name": "sh"},
            "exec_id": "exec-0", "ancestors": [], "container": null
        })
    );
}

/// An HTTP sink of a document format posts that format's documents, one per request
/// or batched as arrays, each valid against the published schema's field list.
#[test]
fn http_sinks_post_ocsf_and_ecs_documents() {
    let (ocsf, ecs) = (Ocsf::load(), Ecs::load());
    for (format, batch) in [
        (Format::Ocsf, 1),
        (Format::OcsfActivity, 3),
        (Format::Ecs, 3),
    ] {
        let mut receiver = Receiver::new();
        receiver.start();
        let spool = temp_dir(&format!("http-{format:?}"));
        let mut sink = http_sink(receiver.port, &spool, batch);
        sink.format = Some(format);
        let d = Dispatcher::new(&AlertsConfig {
            sinks: vec![sink],
            rate_limit: None,
            aggregation: None,
        })
        .unwrap();
        for n in 0..5 {
            let mut alert = numbered(n);
            alert.event_type = Some("execve".into());
            d.submit(alert);
        }
        wait_until("5 documents", Duration::from_secs(20), || {
            receiver.count() >= 5
        });
        let stats = shutdown(d);
        assert_eq!(stats.sinks[0].delivered, 5, "{format:?}");
        let docs = receiver.alerts();
        assert_eq!(docs.len(), 5, "{format:?}: {docs:?}");
        for (n, doc) in docs.iter().enumerate() {
            assert_eq!(doc["message"], format!("alert {n:04} from a test"));
            if format == Format::Ecs {
                assert_eq!(ecs.errors(doc), Vec::<String>::new(), "{doc}");
                assert_eq!(doc["monitor"]["output_fields"]["n"], n);
                assert_eq!(doc["process"]["entity_id"], format!("exec-{n}"));
                assert_eq!(
                    doc["event"]["category"],
                    json!(["intrusion_detection", "process"])
                );
            } else {
                assert_eq!(ocsf.errors(doc), Vec::<String>::new(), "{doc}");
                assert_eq!(doc["unmapped"]["output_fields"]["n"], n);
                let class = if format == Format::Ocsf { 2004 } else { 1007 };
                assert_eq!(doc["class_uid"], class, "{doc}");
            }
        }
        fs::remove_dir_all(spool).unwrap();
    }
}

#[test]
fn http_receiver_down_and_back_loses_nothing() {
    let spool = temp_dir("http-spool");
    let mut receiver = Receiver::new();
    receiver.start();
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![http_sink(receiver.port, &spool, 1)],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    for n in 0..100 {
        d.submit(numbered(n));
    }
    wait_until("the first 100", Duration::from_secs(20), || {
        receiver.count() == 100
    });
    receiver.stop();
    for n in 100..1000 {
        d.submit(numbered(n));
        if n % 100 == 0 {
            thread::sleep(Duration::from_millis(20));
        }
    }
    wait_until("alerts in the spool", Duration::from_secs(20), || {
        let s = &d.stats().sinks[0];
        s.spool_pending + s.queued + s.delivered == 1000 && s.spool_pending > 0
    });
    let down = d.stats().sinks[0].clone();
    assert_eq!(down.delivered, 100, "{down:?}");
    assert!(down.spooled >= 800, "{down:?}");
    assert!(down.retried >= 1, "{down:?}");
    receiver.start();
    wait_until("all 1000", Duration::from_secs(60), || {
        receiver.count() >= 1000
    });
    let stats = shutdown(d);
    let s = &stats.sinks[0];
    assert_eq!(
        (s.delivered, s.dropped, s.spool_pending, s.queued),
        (1000, 0, 0, 0),
        "{s:?}"
    );
    assert!(s.spooled >= down.spooled, "{s:?}");
    assert_eq!(stats.submitted, 1000);
    let alerts = receiver.alerts();
    assert_numbered(&alerts, 1000);
    let r = receiver.received.lock().unwrap();
    assert_eq!(r.bodies.len(), 1000, "one alert per request");
    assert!(
        r.headers
            .iter()
            .all(|h| h["x-token"] == "secret-123" && h["content-type"] == "application/json")
    );
    drop(r);
    let _ = fs::remove_dir_all(&spool);
}

#[test]
fn http_spool_survives_a_restart() {
    let spool = temp_dir("http-restart");
    let mut receiver = Receiver::new();
    // Receiver down from the start: everything goes to the spool.
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![http_sink(receiver.port, &spool, 1)],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    for n in 0..600 {
        d.submit(numbered(n));
    }
    let first = shutdown(d);
    let s = &first.sinks[0];
    assert_eq!((s.delivered, s.dropped), (0, 0), "{s:?}");
    assert_eq!(s.spooled, 600, "{s:?}");
    assert_eq!(s.spool_pending, 600, "{s:?}");

    // The next run: more alerts while still down, then the receiver comes back.
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![http_sink(receiver.port, &spool, 1)],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    assert_eq!(d.stats().sinks[0].spool_pending, 600);
    for n in 600..1000 {
        d.submit(numbered(n));
    }
    thread::sleep(Duration::from_millis(200));
    receiver.start();
    wait_until("all 1000", Duration::from_secs(60), || {
        receiver.count() >= 1000
    });
    let second = shutdown(d);
    let s = &second.sinks[0];
    assert_eq!(
        (s.delivered, s.dropped, s.spool_pending, s.queued),
        (1000, 0, 0, 0),
        "{s:?}"
    );
    assert_numbered(&receiver.alerts(), 1000);
    let _ = fs::remove_dir_all(&spool);
}

#[test]
fn http_batches_are_json_arrays() {
    let spool = temp_dir("http-batch");
    let mut receiver = Receiver::new();
    receiver.start();
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![http_sink(receiver.port, &spool, 10)],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    for n in 0..95 {
        d.submit(numbered(n));
    }
    let stats = shutdown(d);
    assert_eq!(stats.sinks[0].delivered, 95, "{stats:?}");
    let r = receiver.received.lock().unwrap();
    assert!(r.bodies.iter().all(|b| {
        let len = b.as_array().map(Vec::len).unwrap_or(0);
        (1..=10).contains(&len)
    }));
    assert!(r.bodies.len() >= 10);
    drop(r);
    assert_numbered(&receiver.alerts(), 95);
    let _ = fs::remove_dir_all(&spool);
}

// ---------------------------------------------------------------- rate limit

#[test]
fn rate_limit_delivers_burst_and_reports_suppressed() {
    let dir = temp_dir("rate");
    let path = dir.join("alerts.log");
    let mut sink = SinkConfig::new(SinkKind::File {
        path: path.clone(),
        max_bytes: 0,
        keep: 0,
    });
    sink.format = Some(Format::Json);
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![sink],
        rate_limit: Some(RateLimitConfig {
            per_rule_per_second: 10.0,
            burst: 10,
            summary_interval_secs: 3600,
        }),
        aggregation: None,
    })
    .unwrap();
    for n in 0..100 {
        d.submit(alert("Flood", Priority::Notice, "flooding", n));
    }
    let stats = shutdown(d);
    assert_eq!((stats.submitted, stats.suppressed), (100, 90));
    let got: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 11, "{got:?}");
    for (i, a) in got[..10].iter().enumerate() {
        assert_eq!(a["rule"], "Flood");
        assert_eq!(a["output_fields"]["n"], i as u64);
    }
    let summary = &got[10];
    assert_eq!(summary["rule"], SUPPRESSED_RULE);
    assert_eq!(summary["priority"], "Warning");
    assert_eq!(summary["source"], "internal");
    assert_eq!(summary["hostname"], "node1");
    assert_eq!(
        summary["output"],
        "90 alerts of rule Flood suppressed (rate limit 10/s, burst 10)"
    );
    assert_eq!(
        summary["output_fields"],
        json!({"monitor.suppressed_rule": "Flood", "monitor.suppressed": 90})
    );
    assert_eq!(stats.sinks[0].delivered, 11);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- aggregation

fn file_dispatcher(
    path: &Path,
    rate_limit: Option<RateLimitConfig>,
    window_secs: u64,
) -> Dispatcher {
    let mut sink = SinkConfig::new(SinkKind::File {
        path: path.to_path_buf(),
        max_bytes: 0,
        keep: 0,
    });
    sink.format = Some(Format::Json);
    Dispatcher::new(&AlertsConfig {
        sinks: vec![sink],
        rate_limit,
        aggregation: Some(AggregationConfig {
            window_secs,
            max_keys: 10_000,
        }),
    })
    .unwrap()
}

#[test]
fn aggregation_sends_the_first_alert_then_a_summary_when_the_window_ends() {
    let dir = temp_dir("aggregate");
    let path = dir.join("alerts.log");
    // A rate limit of 2 at once: the first alert and its summary take the tokens,
    // the 999 counted repeats none.
    let d = file_dispatcher(
        &path,
        Some(RateLimitConfig {
            per_rule_per_second: 0.001,
            burst: 2,
            summary_interval_secs: 3600,
        }),
        1,
    );
    for n in 0..1000 {
        assert!(d.admit_match("Flood", "node1"));
        let mut a = alert("Flood", Priority::Notice, "flooding", n);
        // Per-event values that are no part of the key.
        a.output_fields.remove("n");
        a.output_fields.insert("proc.pid".into(), json!(n));
        d.deliver_match(a, Some("/bin/flood"));
    }
    // The first at once, the summary by the timer (no further alert, no shutdown).
    wait_until(
        "the first alert and the summary",
        Duration::from_secs(10),
        || lines(&path).len() == 2,
    );
    let got: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got[0]["output"], "flooding");
    assert!(got[0].get("aggregated").is_none());
    assert_eq!(got[0]["output_fields"]["proc.pid"], 0);
    let summary = &got[1];
    assert_eq!(summary["rule"], "Flood");
    assert_eq!(summary["priority"], "Notice");
    assert_eq!(
        summary["aggregated"],
        json!({"count": 1000, "first": TIME, "last": TIME, "window_s": 1.0})
    );
    assert_eq!(summary["output_fields"]["monitor.aggregated"], 1000);
    assert_eq!(
        summary["output"],
        format!("flooding (1000 times between {TIME} and {TIME})")
    );
    let stats = shutdown(d);
    assert_eq!(
        (stats.submitted, stats.aggregated, stats.suppressed),
        (1000, 999, 0)
    );
    assert_eq!(lines(&path).len(), 2, "no second summary at shutdown");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn aggregation_flushes_open_windows_at_shutdown() {
    let dir = temp_dir("aggregate-flush");
    let path = dir.join("alerts.log");
    let d = file_dispatcher(&path, None, 3600);
    for _ in 0..5 {
        d.deliver_match(
            alert("Flood", Priority::Notice, "flooding", 1),
            Some("/bin/a"),
        );
        // Another executable: another key, also counted.
        d.deliver_match(
            alert("Flood", Priority::Notice, "flooding", 1),
            Some("/bin/b"),
        );
    }
    let stats = shutdown(d);
    assert_eq!(stats.aggregated, 8);
    let got: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<&Value> = got.iter().map(|a| &a["aggregated"]["count"]).collect();
    assert_eq!(counts, [&Value::Null, &Value::Null, &json!(5), &json!(5)]);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- file rotation

#[test]
fn file_rotation_keeps_count_and_removes_oldest() {
    let dir = temp_dir("rotate");
    let path = dir.join("alerts.log");
    let line_len = numbered(0).to_json().len() as u64 + 1;
    let mut sink = SinkConfig::new(SinkKind::File {
        path: path.clone(),
        // Three lines fit, a fourth does not.
        max_bytes: line_len * 3 + line_len / 2,
        keep: 2,
    });
    sink.format = Some(Format::Json);
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![sink],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    for n in 0..20 {
        d.submit(numbered(n));
    }
    let stats = shutdown(d);
    assert_eq!(stats.sinks[0].delivered, 20);
    let ns = |p: PathBuf| -> Vec<u64> {
        lines(&p)
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["output_fields"]["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(ns(path.clone()), vec![18, 19]);
    assert_eq!(ns(dir.join("alerts.log.1")), vec![15, 16, 17]);
    assert_eq!(ns(dir.join("alerts.log.2")), vec![12, 13, 14]);
    assert!(!dir.join("alerts.log.3").exists());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["alerts.log", "alerts.log.1", "alerts.log.2"]);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- HTTPS

/// An HTTPS receiver on loopback with a certificate from a CA made for this run;
/// returns its port and the CA's PEM. Records every POSTed body.
fn https_receiver(bodies: Arc<Mutex<Vec<Value>>>) -> (u16, String) {
    use http_body_util::BodyExt;
    let support::TestCa { ca_pem, cert, key } = support::private_ca("127.0.0.1");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    // A client that rejects our certificate ends the handshake here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let bodies = bodies.clone();
                            async move {
                                let body = request.into_body().collect().await?.to_bytes();
                                bodies
                                    .lock()
                                    .unwrap()
                                    .push(serde_json::from_slice(&body).unwrap());
                                Ok::<_, hyper::Error>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::new()),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    (port, ca_pem)
}

fn https_sink(port: u16, ca_file: Option<PathBuf>) -> SinkConfig {
    let mut s = SinkConfig::new(SinkKind::Http {
        url: format!("https://127.0.0.1:{port}/alerts"),
        headers: BTreeMap::new(),
        batch: 1,
        ca_file,
        timeout_ms: 2000,
    });
    s.retry = quick_retry();
    s
}

#[test]
fn https_delivers_with_the_given_ca_and_refuses_an_unknown_certificate() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (port, ca_pem) = https_receiver(bodies.clone());
    let dir = temp_dir("https");
    let ca_file = dir.join("ca.pem");
    fs::write(&ca_file, ca_pem).unwrap();

    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![https_sink(port, Some(ca_file))],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    for n in 0..3 {
        d.submit(numbered(n));
    }
    wait_until("3 alerts over https", Duration::from_secs(20), || {
        bodies.lock().unwrap().len() == 3
    });
    let stats = shutdown(d);
    assert_eq!(stats.sinks[0].delivered, 3);
    assert_numbered(&bodies.lock().unwrap(), 3);

    // The system's roots do not know the private CA: nothing may be delivered.
    let d = Dispatcher::new(&AlertsConfig {
        sinks: vec![https_sink(port, None)],
        rate_limit: None,
        aggregation: None,
    })
    .unwrap();
    d.submit(numbered(3));
    wait_until("a failed attempt", Duration::from_secs(20), || {
        d.stats().sinks[0].retried >= 1
    });
    let stats = shutdown(d);
    assert_eq!(stats.sinks[0].delivered, 0, "{:?}", stats.sinks[0]);
    assert_eq!(bodies.lock().unwrap().len(), 3);
    let _ = fs::remove_dir_all(&dir);
}

//! The condition language: parser, operators, lists, macros, transformers, indexes.
use serde_json::{Value, json};

use crate::rules::{
    Engine, JsonEvent, Scratch,
    parser::{Expr, Op, Rhs, parse_condition},
};

fn event() -> Value {
    json!({
        "kind": "exec", "syscall": "execve", "time": "2025-01-01T00:00:00Z", "boot_ns": 10,
        "pid": 42, "tid": 42, "comm": "BaSh", "cgroup_id": 1, "ppid": 41, "uid": 1000, "gid": 1000,
        "result": 0, "exe": "/usr/bin/bash", "args": ["bash", "-c", "cat /etc/shadow"],
        "process": {"pid": 42, "ppid": 41, "name": "BaSh", "exe": "bash", "exepath": "/usr/bin/bash",
            "args": ["-c", "cat /etc/shadow"], "cmdline": "BaSh -c cat /etc/shadow", "cwd": "/home/u",
            "tty": 0, "sid": 40, "uid": 1000, "user": "u", "gid": 1000, "group": "g", "loginuid": 1000},
        "ancestors": [
            {"pid": 41, "name": "sshd", "exe": "sshd", "exepath": "/usr/sbin/sshd", "cmdline": "sshd: u"},
            {"pid": 40, "name": "systemd", "exe": "/sbin/init", "exepath": "/usr/lib/systemd/systemd", "cmdline": "systemd"}
        ],
        "container": {"id": "host", "labels": {"app": "web"}}
    })
}

fn engine_for(cond: &str) -> Result<Engine, String> {
    let yaml = format!(
        "- list: shells\n  items: [bash, zsh, '\"Ba Sh\"']\n- list: more\n  items: [shells, fish]\n\
         - macro: is_bash\n  condition: tolower(proc.name) = bash\n\
         - rule: t\n  desc: d\n  condition: {}\n  output: o\n  priority: INFO\n",
        serde_json::to_string(cond).unwrap()
    );
    Engine::load_sources(&[("t.yaml".into(), yaml)]).map_err(|e| e.to_string())
}

fn eval_on(cond: &str, ev: &Value) -> bool {
    let engine = engine_for(cond).unwrap_or_else(|e| panic!("{cond}: {e}"));
    let ev = JsonEvent::new(ev).unwrap();
    let mut out = Vec::new();
    engine.evaluate(&ev, &mut Scratch::default(), &mut out);
    !out.is_empty()
}

fn eval(cond: &str) -> bool {
    eval_on(cond, &event())
}

#[test]
fn precedence_not_and_or() {
    let e = parse_condition("a or b and not c").unwrap();
    let Expr::Or(items) = e else { panic!("{e:?}") };
    assert!(matches!(&items[0], Expr::Macro { name, pos: 0 } if name == "a"));
    let Expr::And(inner) = &items[1] else {
        panic!()
    };
    assert!(matches!(&inner[0], Expr::Macro { name, .. } if name == "b"));
    assert!(
        matches!(&inner[1], Expr::Not(m) if matches!(&**m, Expr::Macro { name, .. } if name == "c"))
    );
    // and binds tighter than or, not tighter than and; parentheses override.
    assert!(eval(
        "evt.type = open or evt.type = execve and proc.pid = 42"
    ));
    assert!(!eval(
        "(evt.type = open or evt.type = execve) and proc.pid = 1"
    ));
    assert!(eval("not proc.pid = 1 and proc.pid = 42"));
    assert!(!eval("not (proc.pid = 42 or proc.pid = 1)"));
}

#[test]
fn values_lists_and_quotes() {
    let e = parse_condition(r#"proc.name in (a, "b c", 'd\'e', runc:[0:PARENT])"#).unwrap();
    let Expr::Check(c) = e else { panic!() };
    assert_eq!(c.op, Op::In);
    let Rhs::List(items) = c.rhs else { panic!() };
    let texts: Vec<_> = items.iter().map(|v| (v.text.as_str(), v.quoted)).collect();
    assert_eq!(
        texts,
        vec![
            ("a", false),
            ("b c", true),
            ("d'e", true),
            ("runc:[0:PARENT]", false)
        ]
    );
    let Expr::Check(c) = parse_condition("fd.num>=0").unwrap() else {
        panic!()
    };
    assert_eq!((c.op, c.op_pos), (Op::Ge, 6));
    // libsinsp's escapes: `\ ` is a backslash (the space is dropped), `\/` a slash,
    // `\xHH` a character, a quote only escapes the string's own quote.
    let Expr::Check(c) =
        parse_condition(r#"proc.args in ("a\ b", 'c\\d', "e\/f\x41", "\"g\"", 'h\'')"#).unwrap()
    else {
        panic!()
    };
    let Rhs::List(items) = c.rhs else { panic!() };
    let texts: Vec<_> = items.iter().map(|v| v.text.as_str()).collect();
    assert_eq!(texts, vec!["a\\b", "c\\d", "e/fA", "\"g\"", "h'"]);
}

#[test]
fn every_operator() {
    let cases: &[(&str, bool)] = &[
        ("proc.name = BaSh", true),
        ("proc.name == BaSh", true),
        ("proc.name = bash", false),
        ("proc.name != bash", true),
        ("proc.pid < 43", true),
        ("proc.pid <= 42", true),
        ("proc.pid > 42", false),
        ("proc.pid >= 42", true),
        ("proc.pid in (1, 42)", true),
        ("proc.pid intersects (42)", true),
        ("proc.name in (zsh, BaSh)", true),
        ("proc.name intersects (zsh)", false),
        ("proc.cmdline contains /etc/shadow", true),
        ("proc.cmdline contains /ETC/shadow", false),
        ("proc.cmdline icontains /ETC/SHADOW", true),
        ("proc.cmdline bcontains 2f657463", true),
        ("proc.cmdline startswith 'BaSh -c'", true),
        ("proc.cmdline bstartswith 42615368", true),
        ("proc.cmdline endswith shadow", true),
        ("proc.exepath glob '/usr/*/ba?h'", true),
        ("proc.exepath glob '/usr/*/zsh'", false),
        ("proc.name iglob 'ba*'", true),
        ("proc.name glob 'ba*'", false),
        ("proc.exepath pmatch (/usr/bin, /opt)", true),
        ("proc.exepath pmatch (/usr/b)", false),
        ("proc.cwd pmatch (/home/u/)", true),
        ("proc.tty exists", true),
        ("proc.sname exists", true),
        ("container.image exists", false),
        ("proc.name regex 'B.S[a-z]'", true),
        ("proc.name regex 'a.S'", false),
        ("user.loginuid = 1000", true),
        ("user.loginname = u", true),
        ("container.id = host", true),
        ("evt.dir = <", true),
        ("evt.res = SUCCESS and evt.failed = false", true),
        ("proc.sname = systemd", true),
    ];
    for (cond, expected) in cases {
        assert_eq!(eval(cond), *expected, "{cond}");
    }
}

#[test]
fn named_lists_and_macros() {
    assert!(eval("proc.name in (more, BaSh)"));
    assert!(!eval("proc.name in (more)"));
    assert!(eval("is_bash"));
    assert!(eval("is_bash and not proc.name in (shells)"));
    // A quoted list item is the literal with its spaces.
    let mut ev = event();
    ev["process"]["name"] = json!("Ba Sh");
    assert!(eval_on("proc.name in (more)", &ev));
    // A quoted word that names a list is a plain string.
    assert!(!eval("proc.name in ('shells')"));
}

#[test]
fn transformers() {
    assert!(eval("tolower(proc.name) = bash"));
    assert!(eval("toupper(proc.name) = BASH"));
    assert!(eval("basename(proc.exepath) = bash"));
    assert!(eval("toupper(basename(proc.exepath)) = BASH"));
    assert!(eval("basename(toupper(proc.exepath)) = BASH"));
    assert!(eval("len(proc.args) = 18"));
    assert!(eval("len(proc.args) > 3"));
    assert!(eval("tolower(proc.aname) = systemd"));
    let err = engine_for("len(proc.pid) = 1").unwrap_err();
    assert!(
        err.contains("len() needs a string field, 'proc.pid' is i64"),
        "{err}"
    );
}

#[test]
fn indexes_and_ancestors() {
    assert!(eval("proc.aname[0] = BaSh"));
    assert!(eval("proc.aname[1] = sshd"));
    assert!(eval("proc.aname[2] = systemd"));
    assert!(!eval("proc.aname[3] exists"));
    assert!(eval("proc.pname = sshd and proc.pcmdline = 'sshd: u'"));
    assert!(eval("proc.apid[0] = 42 and proc.apid[2] = 40"));
    assert!(eval("proc.aexepath[2] = /usr/lib/systemd/systemd"));
    // Without an index: any ancestor, from the parent up (not the process itself).
    assert!(eval("proc.aname = systemd"));
    assert!(eval("proc.aname in (foo, sshd)"));
    assert!(!eval("proc.aname = BaSh"));
    assert!(eval("proc.apid = 40"));
    assert!(eval(
        "container.label[app] = web and container.label.app = web"
    ));
    assert!(!eval("container.label[nope] exists"));
    assert!(eval("evt.arg.exe = bash and evt.arg[1] = bash"));
    assert!(eval("evt.arg.args = '-c cat /etc/shadow'"));
}

#[test]
fn missing_values_never_match() {
    // No container image, no hostname: every comparison is false, `not` of it true.
    assert!(!eval("container.image = x"));
    assert!(!eval("container.image != x"));
    assert!(eval("not container.image = x"));
    assert!(!eval("evt.hostname contains x"));
    assert!(!eval("fd.sip = 1.2.3.4"));
}

#[test]
fn open_and_connect_fields() {
    let open = json!({"kind": "open", "syscall": "openat", "time": "t", "pid": 1, "tid": 1, "comm": "vi",
        "path": "../x/./y.conf", "resolved_path": null, "dirfd": -100, "flags": 0o1101, "mode": 0o755,
        "result": -13, "fd": -13, "error": "EACCES", "uid": 0, "process": {"cwd": "/etc/app"}});
    let cases: &[(&str, bool)] = &[
        (
            "evt.type = openat and evt.is_open_write = true and evt.is_open_read = false",
            true,
        ),
        (
            "evt.is_open_exec = true and evt.is_open_create = true",
            true,
        ),
        (
            "evt.arg.flags = 'O_WRONLY|O_CREAT|O_TRUNC' and evt.arg.mode = 0755",
            true,
        ),
        (
            "fd.name = /etc/x/y.conf and fd.nameraw = '../x/./y.conf'",
            true,
        ),
        ("fd.directory = /etc/x and fd.filename = y.conf", true),
        ("fd.num = -1 and fd.typechar = f and fd.type = file", true),
        (
            "evt.res = EACCES and evt.rawres = -13 and evt.failed = true",
            true,
        ),
        ("evt.res startswith E", true),
    ];
    for (cond, expected) in cases {
        assert_eq!(eval_on(cond, &open), *expected, "{cond}");
    }
    let conn = json!({"kind": "connect", "time": "t", "pid": 1, "tid": 1, "comm": "curl", "fd": 5,
        "family": "inet6", "sock_type": "stream", "address": "2001:db8::1", "port": 443,
        "result": -115, "error": "EINPROGRESS", "uid": 0});
    let cases: &[(&str, bool)] = &[
        (
            "fd.sip = '2001:db8::1' and fd.sport = 443 and fd.rport = 443",
            true,
        ),
        (
            "fd.net = '2001:db8::/32' and fd.snet in ('10.0.0.0/8', '2001:db8::/32')",
            true,
        ),
        (
            "fd.ip != '2001:db8::2' and fd.typechar = 6 and fd.l4proto = tcp",
            true,
        ),
        (
            "fd.name = '2001:db8::1:443' and fd.connected = false and fd.num = 5",
            true,
        ),
        ("evt.res = EINPROGRESS and fd.lport exists", false),
        ("fd.sockfamily = ip", true),
    ];
    for (cond, expected) in cases {
        assert_eq!(eval_on(cond, &conn), *expected, "{cond}");
    }
}

#[test]
fn parse_errors_have_offsets() {
    let cases: &[(&str, usize, &str)] = &[
        ("proc.name = ", 12, "expected a value after '='"),
        ("proc.name foo bar", 10, "unknown operator 'foo'"),
        ("proc.name", 9, "expected an operator after 'proc.name'"),
        ("(proc.name = a", 0, "unbalanced '(': missing ')'"),
        ("proc.name = a)", 13, "unexpected ')'"),
        ("proc.name in (a, b", 13, "unterminated list: missing ')'"),
        ("proc.name = 'abc", 12, "unterminated quoted string"),
        (
            "a and",
            5,
            "unexpected end of condition, expected an expression",
        ),
        ("", 0, "empty condition"),
        ("proc.name = a b", 14, "unexpected 'b'"),
        (
            "proc.name = 'a\\.b'",
            14,
            "unsupported string escape sequence: \\.",
        ),
        (
            "proc.name = 'a\\\"b'",
            14,
            "invalid \\\" escape in '-quoted string",
        ),
        (
            "proc.name = 'a\\x4'",
            14,
            "invalid hex char escape sequence: \\x4'",
        ),
    ];
    for (cond, pos, msg) in cases {
        let e = parse_condition(cond).unwrap_err();
        assert_eq!((e.pos, e.message.as_str()), (*pos, *msg), "{cond}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let cond = format!("{}proc.pid = 1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(
        parse_condition(&cond)
            .unwrap_err()
            .message
            .contains("nested too deeply")
    );
    let cond = format!("{}proc.pid = 1", "not ".repeat(5000));
    assert!(parse_condition(&cond).is_err());
}

#[test]
fn contains_alternatives_share_one_automaton() {
    use crate::rules::tree::{Matcher, Node};
    let engine = engine_for(
        "proc.cmdline contains a or proc.cmdline contains bb or proc.cmdline icontains X or proc.name startswith Ba or proc.name startswith z",
    )
    .unwrap();
    let rule = &engine.rules()[0];
    let Node::Or(items) = rule.condition_node() else {
        panic!()
    };
    assert_eq!(items.len(), 3);
    let Node::Check(c) = &items[0] else { panic!() };
    let Matcher::Contains {
        patterns,
        ci: false,
        ..
    } = &c.matcher
    else {
        panic!()
    };
    assert_eq!(patterns.len(), 2);
    let Node::Check(c) = &items[2] else { panic!() };
    let Matcher::StartsWith { patterns, .. } = &c.matcher else {
        panic!()
    };
    assert_eq!(patterns.len(), 2);
    assert!(eval(
        "proc.cmdline contains zz or proc.cmdline contains shadow"
    ));
}

#[test]
fn label_sets_read_as_falco_writes_them() {
    let mut ev = event();
    ev["container"] = json!({
        "id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "name": "web", "image": "nginx:1",
        "labels": {"tier": "front", "io.kubernetes.pod.name": "web-0", "canary": ""},
        "pod": {"name": "web-0", "namespace": "shop", "uid": "u1", "ip": "10.1.2.3",
                "labels": {"app": "web", "team": "pay"}}
    });
    assert!(eval_on("container.labels = 'canary, tier:front'", &ev));
    assert!(eval_on("k8s.pod.labels = 'app:web, team:pay'", &ev));
    assert!(eval_on("k8s.pod.ip = 10.1.2.3", &ev));
    assert!(eval_on("k8s.pod.label[team] = pay", &ev));
    ev["container"]["pod"] = Value::Null;
    assert!(eval_on("not k8s.pod.labels exists", &ev));
}

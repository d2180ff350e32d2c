//! Feeds arbitrary UTF-8 to the condition parser, then (wrapped in a rule) to the YAML
//! loader and compiler: neither may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::rules::{Engine, parser};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parser::parse_condition(text);
    // The same text as a condition of a rule (compiled against the field catalog) and
    // as a whole rules file.
    let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
    let rule = format!(
        "- macro: m\n  condition: proc.name = x\n- list: l\n  items: [a, b]\n- rule: r\n  desc: d\n  condition: \"{quoted}\"\n  output: o %proc.name\n  priority: info\n"
    );
    let _ = Engine::load_sources(&[("f.yaml".to_string(), rule)]);
    let _ = Engine::load_sources(&[("g.yaml".to_string(), text.to_string())]);
});

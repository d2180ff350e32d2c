//! The static attack multi-tool (`attack.c`), built once per test binary with the C
//! compiler every build machine has, and copied into containers under the names the
//! rules look for.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use super::docker::docker;

/// The tool, built on first use.
pub fn tool() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/attack.c");
        let out = std::env::temp_dir().join(format!("monitor-attack-{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&source)
            .status()
            .expect("the C compiler (cc)");
        assert!(status.success(), "building {}", source.display());
        out
    })
}

/// Copies the tool into `container` as each of `names` (in /tmp).
pub fn install(container: &str, names: &[&str]) {
    let tool = tool().to_str().unwrap();
    for name in names {
        docker(&["cp", tool, &format!("{container}:/tmp/{name}")]);
    }
}

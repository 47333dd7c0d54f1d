//! What kstatus concludes about objects: the real library (`sigs.k8s.io/cli-utils/pkg/kstatus/status`,
//! what Flux's `wait: true` and `healthChecks` use), through the few lines of Go in
//! `tests/cluster/kstatus`, built once per version like the control plane (`crate::gobuild`).
//! The tests ask it about live DemoWebs, so that what Flux would conclude is checked against Flux's
//! own rules rather than a copy of them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use crate::gobuild::{GoBuild, go_modules_dir};

/// The cli-utils release whose kstatus is asked (`tests/cluster/kstatus/go.mod`).
pub const PINNED_CLI_UTILS: &str = "v0.37.2";
/// How the program is built; part of the cache's key, so that a change to it rebuilds it.
const RECIPE: &str = "r1";

/// kstatus' statuses (`status.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Status {
    InProgress,
    Failed,
    Current,
    Terminating,
    NotFound,
    Unknown,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// kstatus' result for one object (`status.Result`, without its conditions).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KStatus {
    pub status: Status,
    pub message: String,
}

/// The kstatus program, built first when missing (needs Go).
pub fn binary() -> Result<PathBuf, String> {
    let dir = GoBuild {
        name: "kstatus",
        version: PINNED_CLI_UTILS,
        recipe: RECIPE,
        ldflags: "",
        packages: &["."],
    }
    .cached(|| Ok(go_modules_dir().join("kstatus")))?;
    Ok(dir.join("kstatus"))
}

/// What kstatus concludes about each object (as the API returns it, in JSON), in order.
pub fn compute_all(objects: &[Value]) -> Result<Vec<KStatus>, String> {
    let program = binary()?;
    let mut child = Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    let mut input = Vec::new();
    for obj in objects {
        serde_json::to_writer(&mut input, obj).expect("JSON serialises");
        input.push(b'\n');
    }
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&input)
        .map_err(|e| format!("writing to kstatus: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for kstatus: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let results: Vec<KStatus> = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "kstatus printed no results ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    if results.len() != objects.len() {
        return Err(format!(
            "kstatus judged {} objects of {}",
            results.len(),
            objects.len()
        ));
    }
    Ok(results)
}

/// What kstatus concludes about one object; panics when kstatus cannot judge it (a test's mistake).
pub fn compute(obj: &Value) -> KStatus {
    compute_all(std::slice::from_ref(obj))
        .unwrap_or_else(|e| panic!("kstatus failed on {obj}: {e}"))
        .remove(0)
}

//! Installing it like real software: the systemd unit verifies (`systemd-analyze verify`,
//! where systemd is installed) and is hardened; the Dockerfile has its build, ONNX Runtime and
//! non-root runtime stages (built and run where a container engine runs).

mod common;

use std::path::Path;
use std::process::Command;

use common::service_bin;

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `key=value` settings of a unit or Dockerfile-like text, comments left out.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = repo_file("examples/dwcp-anomaly.service");
    let set = settings(&unit);
    let has = |k: &str, v: &str| set.iter().any(|(a, b)| a == k && b == v);
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "dwcp-anomaly"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert!(has(k, v), "the unit lacks {k}={v}");
    }
    let exec = set.iter().find(|(k, _)| k == "ExecStart").map(|(_, v)| v.clone()).expect("ExecStart");
    assert!(exec.contains(" serve ") && exec.contains("--state-dir /var/lib/dwcp-anomaly"), "{exec}");
    // The service has no reload: a unit that promised one would lie.
    assert!(!set.iter().any(|(k, _)| k == "ExecReload"), "ExecReload without a reload in the service");

    let Ok(analyze) = which("systemd-analyze") else { return };
    // verify checks that ExecStart's binary exists: point it at the one cargo built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("dwcp-anomaly.service");
    let bin = service_bin();
    std::fs::write(&copy, unit.replace("/usr/local/bin/dwcp-anomaly", bin.to_str().unwrap())).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&copy).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about other units of the host (a sandbox's own unit files) are not ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("dwcp-anomaly.service")).collect();
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify:\n{stderr}");
}

fn which(binary: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() {
    let text = repo_file("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let stages: Vec<&str> = lines.iter().filter(|l| l.starts_with("FROM ")).copied().collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    assert!(stages[0].starts_with("FROM rust:") && stages[0].ends_with(" AS build"), "{}", stages[0]);
    // The builder's Rust is at least the crate's rust-version.
    let image: Vec<u32> = stages[0]["FROM rust:".len()..]
        .split('-')
        .next()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    let cargo = repo_file("Cargo.toml");
    let msrv = cargo.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    let msrv: Vec<u32> = msrv.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(image >= msrv, "rust image {image:?} older than rust-version {msrv:?}");
    // ONNX Runtime from the wheel the Rust side pins.
    let pin = format!("onnxruntime=={}", dwcp_anomaly::internals::onnx::ORT_VERSION);
    assert!(text.contains(&pin), "the image takes ONNX Runtime from {pin}");
    // The runtime stage: non-root user, state on a volume, the library where ort finds it.
    let last = text.rsplit("\nFROM ").next().unwrap();
    let user =
        last.lines().find_map(|l| l.trim().strip_prefix("USER ")).expect("the runtime stage sets USER");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "runs as root: USER {user}");
    assert!(last.contains("VOLUME [\"/var/lib/dwcp-anomaly\"]"), "state on a volume");
    assert!(
        last.contains("ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so"),
        "ONNX Runtime inside the image"
    );
    let ignore = repo_file(".dockerignore");
    for p in ["target/", ".venv/", ".git/"] {
        assert!(ignore.lines().any(|l| l.trim() == p), ".dockerignore lacks {p}");
    }

    // Build and run it where a container engine answers (none on the CI machine).
    let engine = ["docker", "podman"]
        .into_iter()
        .find(|e| Command::new(e).arg("info").output().is_ok_and(|o| o.status.success()));
    let Some(engine) = engine else { return };
    let tag = "dwcp-anomaly:test";
    let st = Command::new(engine).args(["build", "-t", tag, env!("CARGO_MANIFEST_DIR")]).status().unwrap();
    assert!(st.success(), "{engine} build failed");
    let out = Command::new(engine).args(["run", "--rm", tag, "--version"]).output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.contains("onnx backend: ONNX Runtime"), "{version}");
}

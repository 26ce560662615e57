//! `berthd config`, `berthd --version` and start-up refusal of bad configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use berth_testkit::workspace_bin;

fn berthd(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(workspace_bin("berthd"))
        .arg("--config")
        .arg(dir.join("berth.toml"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn config_prints_the_merged_configuration_as_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("berth.toml"), "log_level = \"debug\"\n").unwrap();
    std::fs::create_dir(dir.path().join("berth.d")).unwrap();
    std::fs::write(
        dir.path().join("berth.d/10-mirror.toml"),
        "[registries.\"registry.k8s.io\"]\nmirrors = [\"http://127.0.0.1:5000\"]\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let out = berthd(dir.path(), &["--root", "/srv/berth", "config"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(printed["log_level"].as_str(), Some("debug"));
    assert_eq!(printed["root"].as_str(), Some("/srv/berth"));
    let mirror = &printed["registries"]["registry.k8s.io"];
    assert_eq!(mirror["mirrors"][0].as_str(), Some("http://127.0.0.1:5000"));
    assert!(
        !text.contains("hunter2"),
        "credentials are never printed:\n{text}"
    );
}

#[test]
fn a_bad_config_stops_the_daemon_with_file_key_and_want() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("berth.toml"),
        "[streaming]\nadress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = berthd(dir.path(), &["--root", "/nonexistent/never-created"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("berth.toml"), "{stderr}");
    assert!(stderr.contains("adress"), "{stderr}");
    assert!(
        stderr.contains("expected") && stderr.contains("`address`"),
        "what is wanted: {stderr}"
    );
    assert!(!std::path::Path::new("/nonexistent/never-created").exists());
}

#[test]
fn version_and_unknown_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = berthd(dir.path(), &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("berthd {}", env!("CARGO_PKG_VERSION"))
    );
    let out = berthd(dir.path(), &["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

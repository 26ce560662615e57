//! The bench binary runs every workload once against berthd and containerd, prints its table,
//! writes its JSON and leaves nothing behind: `make bench` is this with real sample counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn running(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn one_sample_of_everything_on_both_runtimes() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args([
            "--cycles",
            "1",
            "--burst",
            "2",
            "--rounds",
            "1",
            "--density",
            "1",
            "--relist-pods",
            "2",
            "--relist-samples",
            "1",
            "--pull-samples",
            "1",
            "--big-mb",
            "1",
            "--exec-samples",
            "1",
            "--out",
        ])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{table}\n{log}");
    for row in [
        "RunPodSandbox",
        "whole lifecycle",
        "2 pods to running",
        "helper PSS per pod",
        "ListContainers, 4 containers",
        "PullImage, big",
        "ExecSync `true`",
    ] {
        let line = table
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("{row}:\n{table}"));
        assert!(!line.contains(" - "), "both runtimes have a figure: {line}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("latest.json")).unwrap())
            .unwrap();
    assert_eq!(json["runtimes"], serde_json::json!(["berth", "containerd"]));
    assert_eq!(json["sections"].as_array().unwrap().len(), 6);
    let config = "berth-bench-containerd";
    assert!(!running(config), "containerd was stopped");
    assert!(
        !running("containerd-shim-runc-v2 -namespace k8s.io -id"),
        "no shim is left"
    );
}

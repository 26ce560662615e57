//! berth-bench: drives CRI runtimes through the work kubelet gives a node and prints the figures
//! side by side (p50/p90/max, and the ratio of the first runtime to the second).
//!
//! ```text
//! berth-bench [options]                      set up a registry, a CNI network, berthd and
//!                                            containerd; run every workload on both; tear down
//! berth-bench --endpoint NAME=unix:///sock --image REF [--pull-image REF]...
//!                                            drive runtimes already running
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cpu;
mod floor;
mod lab;
mod memory;
mod options;
mod report;
mod runtime;
mod samples;
mod workloads;

use std::path::Path;
use std::sync::Arc;

use options::{Options, Workload};
use report::Report;
use runtime::{Res, Runtime};

fn main() {
    let report = berth_testkit::tool::main("berth-bench", options::USAGE, Options::parse, run);
    print!("{}", report.table());
}

async fn run(o: Options) -> Res<Report> {
    if !o.endpoints.is_empty() {
        let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut rts = Vec::new();
        for (name, socket) in &o.endpoints {
            let rt = Runtime::connect(name, socket, &logs.path().join(name), None).await?;
            rt.pull(&o.image).await?;
            rts.push(Arc::new(rt));
        }
        let pulls: Vec<(&str, &str)> = o
            .pull_images
            .iter()
            .map(|i| (i.as_str(), i.as_str()))
            .collect();
        return workloads(&o, &rts, &o.image, &pulls, None).await;
    }
    eprintln!(
        "setting up: registry and images ({} MB), CNI network, {}",
        o.big_mb,
        o.runtimes.join(", ")
    );
    let lab = lab::Lab::start(&o.runtimes, o.big_mb).await?;
    let rts = lab.runtimes(&o.runtimes).await?;
    let bins = [
        lab.net.bin_dir(),
        Path::new(berth_testkit::CNI_BIN_DIR).to_path_buf(),
    ];
    let mut floor = floor::FloorRig::new(&lab.busybox_tar, &lab.cni_conf_dir(), &bins)?;
    let big = format!("big ({} MB, 5 gzip layers)", o.big_mb);
    let pulls = [
        ("small (300 kB, 1 layer)", lab.images.small.as_str()),
        (big.as_str(), lab.images.big.as_str()),
    ];
    let result = workloads(&o, &rts, &lab.images.busybox, &pulls, Some(&mut floor)).await;
    for rt in &rts {
        rt.end_all_pods().await;
    }
    let report = result?;
    write_json(&o.out, &report)?;
    Ok(report)
}

async fn workloads(
    o: &Options,
    rts: &[Arc<Runtime>],
    image: &str,
    pulls: &[(&str, &str)],
    floor: Option<&mut floor::FloorRig>,
) -> Res<Report> {
    let mut report = Report {
        runtimes: rts.iter().map(|r| r.name.clone()).collect(),
        sections: Vec::new(),
    };
    // Density first: "idle" means a daemon that has done nothing yet.
    if o.runs(Workload::Density) && rts.iter().any(|r| r.processes.is_some()) {
        eprintln!("3. density");
        report
            .sections
            .push(workloads::density(rts, o.density, image).await?);
    }
    if o.runs(Workload::Lifecycle) {
        eprintln!("1. lifecycle");
        report
            .sections
            .push(workloads::lifecycle(rts, o.cycles, image, floor).await?);
    }
    if o.runs(Workload::Burst) {
        eprintln!("2. burst");
        report
            .sections
            .push(workloads::burst(rts, o.burst, o.rounds, image).await?);
    }
    if o.runs(Workload::Relist) {
        eprintln!("4. relist");
        report
            .sections
            .push(workloads::relist(rts, o.relist_pods, o.relist_samples, o.burst, image).await?);
    }
    if o.runs(Workload::Pull) && !pulls.is_empty() {
        eprintln!("5. pull");
        report
            .sections
            .push(workloads::pull(rts, pulls, o.pull_samples).await?);
    }
    if o.runs(Workload::Exec) {
        eprintln!("6. exec");
        report
            .sections
            .push(workloads::exec(rts, o.exec_samples, image).await?);
    }
    report.sections.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(report)
}

fn write_json(dir: &Path, report: &Report) -> Res<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = serde_json::to_vec_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    for name in [format!("bench-{stamp}.json"), "latest.json".to_owned()] {
        let path = dir.join(name);
        std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("figures written to {}", dir.join("latest.json").display());
    Ok(())
}

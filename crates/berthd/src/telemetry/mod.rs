//! berthd's own figures for Prometheus (off unless `[metrics] address` is set): CRI calls by
//! method and code with their latency, image pulls with bytes and durations, and at scrape time
//! pods and containers by state and the monitors running.

mod openmetrics;
pub mod server;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::LockRecovered;
use openmetrics::{Histogram, Writer};

/// Bucket bounds of CRI call latency, seconds.
const RPC_BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds of image pull durations, seconds.
const PULL_BOUNDS: [f64; 11] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Debug)]
struct RpcFigures {
    /// Calls by gRPC code name (`OK`, `NotFound`, …).
    by_code: BTreeMap<String, u64>,
    latency: Histogram,
}

#[derive(Debug)]
struct PullFigures {
    succeeded: u64,
    failed: u64,
    bytes: u64,
    duration: Histogram,
}

#[derive(Debug)]
pub struct Telemetry {
    rpcs: Mutex<BTreeMap<&'static str, RpcFigures>>,
    pulls: Mutex<PullFigures>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            rpcs: Mutex::new(BTreeMap::new()),
            pulls: Mutex::new(PullFigures {
                succeeded: 0,
                failed: 0,
                bytes: 0,
                duration: Histogram::new(&PULL_BOUNDS),
            }),
        }
    }
}

/// What is counted at scrape time rather than as it happens.
#[derive(Debug, Default)]
pub struct NodeCounts {
    pub pods_by_state: BTreeMap<&'static str, u64>,
    pub containers_by_state: BTreeMap<&'static str, u64>,
    pub monitors: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock_recovered()
}

impl Telemetry {
    pub fn record_rpc(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let mut rpcs = lock(&self.rpcs);
        let figures = rpcs.entry(method).or_insert_with(|| RpcFigures {
            by_code: BTreeMap::new(),
            latency: Histogram::new(&RPC_BOUNDS),
        });
        *figures.by_code.entry(format!("{code:?}")).or_default() += 1;
        figures.latency.observe(elapsed.as_secs_f64());
    }

    /// A finished pull: its layer bytes downloaded (None: it failed).
    pub fn record_pull(&self, downloaded: Option<u64>, elapsed: Duration) {
        let mut pulls = lock(&self.pulls);
        match downloaded {
            Some(bytes) => {
                pulls.succeeded += 1;
                pulls.bytes += bytes;
            }
            None => pulls.failed += 1,
        }
        pulls.duration.observe(elapsed.as_secs_f64());
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self, counts: &NodeCounts) -> String {
        let mut w = Writer::default();
        {
            let rpcs = lock(&self.rpcs);
            w.family(
                "berth_cri_requests",
                "counter",
                "CRI calls handled, by method and gRPC code (any code but Ok is an error).",
            );
            for (method, f) in rpcs.iter() {
                for (code, n) in &f.by_code {
                    w.sample(
                        "berth_cri_requests_total",
                        &[("method", method), ("code", code)],
                        n,
                    );
                }
            }
            w.family(
                "berth_cri_request_duration_seconds",
                "histogram",
                "Time to answer a CRI call, by method.",
            );
            for (method, f) in rpcs.iter() {
                w.histogram(
                    "berth_cri_request_duration_seconds",
                    &[("method", method)],
                    &f.latency,
                );
            }
        }
        {
            let pulls = lock(&self.pulls);
            w.family(
                "berth_image_pulls",
                "counter",
                "Image pulls finished, by result.",
            );
            w.sample(
                "berth_image_pulls_total",
                &[("result", "success")],
                pulls.succeeded,
            );
            w.sample(
                "berth_image_pulls_total",
                &[("result", "failure")],
                pulls.failed,
            );
            w.family(
                "berth_image_pull_bytes",
                "counter",
                "Layer bytes downloaded by image pulls.",
            );
            w.sample("berth_image_pull_bytes_total", &[], pulls.bytes);
            w.family(
                "berth_image_pull_duration_seconds",
                "histogram",
                "Time an image pull took, failed ones included.",
            );
            w.histogram("berth_image_pull_duration_seconds", &[], &pulls.duration);
        }
        w.family("berth_pod_sandboxes", "gauge", "Pod sandboxes, by state.");
        for (state, n) in &counts.pods_by_state {
            w.sample("berth_pod_sandboxes", &[("state", state)], n);
        }
        w.family("berth_containers", "gauge", "Containers, by state.");
        for (state, n) in &counts.containers_by_state {
            w.sample("berth_containers", &[("state", state)], n);
        }
        w.family(
            "berth_monitors",
            "gauge",
            "berth-monitor processes running (one per created or running container).",
        );
        w.sample("berth_monitors", &[], counts.monitors);
        w.finish()
    }
}

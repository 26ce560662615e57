//! `berth-conformance bench`: critest's benchmark mode against berth, then against Debian's
//! containerd on the same node (same images through the same mirror, same CNI network), and the
//! median of every RPC critest times side by side.

use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use crate::critest;
use crate::node::{Node, Peers};

/// How many lifecycles of each kind critest runs (sequentially).
#[derive(Debug, Clone)]
pub struct Samples {
    pub pods: usize,
    pub containers: usize,
    pub images: usize,
}

impl Default for Samples {
    fn default() -> Self {
        Samples {
            pods: 50,
            containers: 50,
            images: 20,
        }
    }
}

/// The result files critest's benchmarks write (each names the operations it timed).
const RESULT_FILES: [&str; 4] = [
    "pod_benchmark_data.json",
    "container_benchmark_data.json",
    "image_lifecycle_benchmark_data.json",
    "image_listing_benchmark_data.json",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultsSet {
    operations_names: Vec<String>,
    #[serde(default)]
    datapoints: Vec<Datapoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Datapoint {
    operations_durations_ns: Vec<i64>,
}

/// Per operation, in critest's order: the median of each runtime, in milliseconds.
#[derive(Debug, Default)]
pub struct Table {
    runtimes: Vec<String>,
    rows: Vec<(String, Vec<Option<f64>>)>,
    samples: Vec<(String, usize)>,
}

fn median(mut values: Vec<i64>) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2] as f64),
        _ => Some((values[n / 2 - 1] + values[n / 2]) as f64 / 2.0),
    }
}

/// Each operation's median (ms) and sample count, from the result files in `dir`.
fn medians(dir: &Path) -> Result<Vec<(String, Option<f64>, usize)>, String> {
    let mut out = Vec::new();
    for file in RESULT_FILES {
        let path = dir.join(file);
        let text = std::fs::read(&path)
            .map_err(|e| format!("critest wrote no {}: {e}", path.display()))?;
        let set: ResultsSet =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, name) in set.operations_names.iter().enumerate() {
            let values: Vec<i64> = set
                .datapoints
                .iter()
                .filter_map(|d| d.operations_durations_ns.get(i).copied())
                .collect();
            let n = values.len();
            out.push((name.clone(), median(values).map(|ns| ns / 1e6), n));
        }
    }
    Ok(out)
}

fn params(s: &Samples) -> String {
    format!(
        "containersNumber: {}\ncontainersNumberParallel: 1\npodsNumber: {}\npodsNumberParallel: 1\n\
         imagesNumber: {}\nimagesNumberParallel: 1\n",
        s.containers, s.pods, s.images
    )
}

pub async fn run(critest: &Path, samples: &Samples) -> Result<Table, String> {
    let node = Node::start(Peers::WithContainerd).await?;
    let containerd = node
        .containerd_endpoint()
        .ok_or("containerd was not started")?;
    let mut table = Table::default();
    for (name, endpoint) in [("berth", node.berth_endpoint()), ("containerd", containerd)] {
        let work_dir = node.work_dir().join(name);
        let run = critest::Run {
            critest,
            endpoint: &endpoint,
            work_dir: &work_dir,
            focus: None,
            skip: None,
        };
        let dir = run.benchmark(&params(samples)).await?;
        let column = table.runtimes.len();
        table.runtimes.push(name.to_owned());
        for (op, ms, n) in medians(&dir)? {
            match table.rows.iter_mut().find(|(o, _)| *o == op) {
                Some((_, cells)) => cells.push(ms),
                None => {
                    let mut cells = vec![None; column];
                    cells.push(ms);
                    table.rows.push((op.clone(), cells));
                }
            }
            if column == 0 {
                table.samples.push((op, n));
            }
        }
    }
    Ok(table)
}

impl Table {
    pub fn render(&self) -> String {
        let mut out = format!("{:<18}", "median (ms)");
        for r in &self.runtimes {
            out.push_str(&format!(" {r:>11}"));
        }
        out.push_str("   ratio  samples\n");
        for (op, cells) in &self.rows {
            out.push_str(&format!("{op:<18}"));
            for c in cells {
                match c {
                    Some(ms) => out.push_str(&format!(" {ms:>11.2}")),
                    None => out.push_str(&format!(" {:>11}", "-")),
                }
            }
            match (
                cells.first().copied().flatten(),
                cells.get(1).copied().flatten(),
            ) {
                (Some(a), Some(b)) if b > 0.0 => out.push_str(&format!("   {:>5.2}", a / b)),
                _ => out.push_str("       -"),
            }
            let n = self
                .samples
                .iter()
                .find(|(o, _)| o == op)
                .map_or(0, |(_, n)| *n);
            out.push_str(&format!("  {n:>7}\n"));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|(op, cells)| {
                let medians: serde_json::Map<String, serde_json::Value> = self
                    .runtimes
                    .iter()
                    .zip(cells)
                    .map(|(r, c)| (r.clone(), json!(c)))
                    .collect();
                json!({"operation": op, "median_ms": medians})
            })
            .collect();
        json!({"runtimes": self.runtimes, "operations": rows})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_per_operation_from_critest_result_files() {
        let dir = tempfile::tempdir().unwrap();
        for file in RESULT_FILES {
            let set = json!({
                "operationsNames": ["A", "B"],
                "numParallel": 1,
                "datapoints": [
                    {"operationsDurationsNs": [1_000_000, 4_000_000]},
                    {"operationsDurationsNs": [3_000_000, 2_000_000]},
                    {"operationsDurationsNs": [2_000_000, 6_000_000]},
                ],
            });
            std::fs::write(dir.path().join(file), set.to_string()).unwrap();
        }
        let m = medians(dir.path()).unwrap();
        assert_eq!(m.len(), 8);
        assert_eq!(m[0], ("A".into(), Some(2.0), 3));
        assert_eq!(m[1], ("B".into(), Some(4.0), 3));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2.5));
    }
}

//! The summary of a conformance run, from ginkgo's JSON report: counts, each failing spec with a
//! one-line reason, each spec skipped at run time and why. A spec skipped at run time is one
//! that called `Skip` (its report carries the reason); one the focus or skip filters left out
//! has none.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::images::OFFLINE_IMPOSSIBLE;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuiteReport {
    #[serde(default)]
    spec_reports: Vec<SpecReport>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SpecReport {
    #[serde(default)]
    container_hierarchy_texts: Option<Vec<String>>,
    #[serde(default)]
    leaf_node_text: String,
    leaf_node_type: String,
    state: String,
    #[serde(default)]
    failure: Option<Failure>,
    /// Nanoseconds.
    #[serde(default)]
    run_time: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Failure {
    #[serde(default)]
    message: String,
}

/// One spec and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The containers' texts and the spec's own, as ginkgo prints them.
    pub name: String,
    pub outcome: Outcome,
    /// The first line of the failure or skip message.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// Skipped by the spec itself while running (a feature the runtime does not report, say).
    SkippedAtRunTime,
    /// Left out by the focus and skip filters.
    NotSelected,
}

#[derive(Debug)]
pub struct Summary {
    pub specs: Vec<Spec>,
    pub run_time: Duration,
}

/// The first line of a message, cut to a readable length.
fn one_line(message: &str) -> String {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line.trim();
    match line.char_indices().nth(240) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

impl Summary {
    pub fn of(report: &serde_json::Value) -> Result<Summary, String> {
        let suites: Vec<SuiteReport> = serde_json::from_value(report.clone())
            .map_err(|e| format!("critest's report is not ginkgo's JSON: {e}"))?;
        let mut specs = Vec::new();
        let mut run_time = 0;
        for spec in suites.into_iter().flat_map(|s| s.spec_reports) {
            if spec.leaf_node_type != "It" {
                continue;
            }
            run_time += spec.run_time;
            let reason = spec.failure.as_ref().map(|f| one_line(&f.message));
            let outcome = match (spec.state.as_str(), &reason) {
                ("passed", _) => Outcome::Passed,
                ("skipped", Some(_)) => Outcome::SkippedAtRunTime,
                ("skipped" | "pending", None) => Outcome::NotSelected,
                _ => Outcome::Failed,
            };
            let mut name = spec.container_hierarchy_texts.unwrap_or_default();
            name.push(spec.leaf_node_text);
            specs.push(Spec {
                name: name.join(" "),
                outcome,
                reason: reason.unwrap_or_default(),
            });
        }
        Ok(Summary {
            specs,
            run_time: Duration::from_nanos(run_time),
        })
    }

    fn with(&self, outcome: Outcome) -> impl Iterator<Item = &Spec> {
        self.specs.iter().filter(move |s| s.outcome == outcome)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.with(outcome).count()
    }

    /// A failure no offline run can avoid.
    fn expected(spec: &Spec) -> bool {
        spec.name.contains(OFFLINE_IMPOSSIBLE)
    }

    /// Every spec that ran passed, but the offline-impossible one; and some spec ran.
    pub fn passed(&self) -> bool {
        self.with(Outcome::Failed).all(Self::expected) && self.count(Outcome::Passed) > 0
    }

    pub fn render(&self) -> String {
        let failed = self.count(Outcome::Failed);
        let expected = self
            .with(Outcome::Failed)
            .filter(|s| Self::expected(s))
            .count();
        let mut out = format!(
            "critest: {} passed, {failed} failed ({expected} that cannot pass offline), {} skipped \
             at run time, {} not selected; {} specs ran in {:.0} s\n",
            self.count(Outcome::Passed),
            self.count(Outcome::SkippedAtRunTime),
            self.count(Outcome::NotSelected),
            self.count(Outcome::Passed) + failed,
            self.run_time.as_secs_f64(),
        );
        if failed > 0 {
            out.push_str("\nfailed:\n");
            for s in self.with(Outcome::Failed) {
                let note = if Self::expected(s) {
                    " [cannot pass offline: it pulls an upstream manifest by digest]"
                } else {
                    ""
                };
                out.push_str(&format!("  - {}{note}\n      {}\n", s.name, s.reason));
            }
        }
        if self.count(Outcome::SkippedAtRunTime) > 0 {
            out.push_str("\nskipped at run time:\n");
            for s in self.with(Outcome::SkippedAtRunTime) {
                out.push_str(&format!("  - {}\n      {}\n", s.name, s.reason));
            }
        }
        out.push_str(if self.passed() {
            "\nconformance: PASS\n"
        } else {
            "\nconformance: FAIL\n"
        });
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let list = |o: Outcome| -> Vec<serde_json::Value> {
            self.with(o)
                .map(|s| json!({"spec": s.name, "reason": s.reason}))
                .collect()
        };
        json!({
            "passed": self.count(Outcome::Passed),
            "failed": list(Outcome::Failed),
            "skipped_at_run_time": list(Outcome::SkippedAtRunTime),
            "not_selected": self.count(Outcome::NotSelected),
            "run_time_seconds": self.run_time.as_secs_f64(),
            "pass": self.passed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(specs: serde_json::Value) -> Summary {
        Summary::of(&json!([{"SuiteDescription": "CRI", "SpecReports": specs}])).unwrap()
    }

    #[test]
    fn outcomes_follow_the_states_and_the_offline_spec_alone_is_forgiven() {
        let spec = |text: &str, state: &str, failure: Option<&str>| {
            let mut s = json!({
                "ContainerHierarchyTexts": ["[k8s.io] Image Manager"],
                "LeafNodeText": text, "LeafNodeType": "It", "State": state, "RunTime": 1_000_000_000u64,
            });
            if let Some(m) = failure {
                s["Failure"] = json!({"Message": m});
            }
            s
        };
        let offline = format!("{OFFLINE_IMPOSSIBLE} [Conformance]");
        let summary = report(json!([
            {"LeafNodeType": "BeforeSuite", "State": "passed"},
            spec("pulls", "passed", None),
            spec(&offline, "failed", Some("failed to pull\nmore")),
            spec("needs a feature", "skipped", Some("The runtime does not support it")),
            spec("filtered", "skipped", None),
        ]));
        let outcomes: Vec<Outcome> = summary.specs.iter().map(|s| s.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Passed,
                Outcome::Failed,
                Outcome::SkippedAtRunTime,
                Outcome::NotSelected
            ]
        );
        assert_eq!(summary.specs[1].reason, "failed to pull");
        assert!(summary.passed(), "{}", summary.render());

        let failing = report(json!([
            spec("pulls", "passed", None),
            spec("x", "timedout", Some("slow"))
        ]));
        assert!(!failing.passed());
        assert!(
            failing
                .render()
                .contains("  - [k8s.io] Image Manager x\n      slow\n")
        );
        assert!(
            !report(json!([])).passed(),
            "a run where nothing ran is no pass"
        );
    }
}

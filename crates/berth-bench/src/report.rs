//! The side-by-side table and its JSON form.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

use crate::samples::Figure;

#[derive(Debug, Default)]
pub struct Report {
    /// Runtime names in column order (the first is compared with the second).
    pub runtimes: Vec<String>,
    pub sections: Vec<Section>,
}

#[derive(Debug)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
}

#[derive(Debug)]
pub struct Row {
    pub name: String,
    /// One figure per runtime that has one.
    pub figures: Vec<(String, Figure)>,
    /// The same work done without any CRI runtime, where there is such a thing.
    pub floor: Option<Figure>,
}

impl Row {
    pub fn new(name: &str) -> Row {
        Row {
            name: name.to_owned(),
            figures: Vec::new(),
            floor: None,
        }
    }

    fn figure(&self, runtime: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|(r, _)| r == runtime)
            .map(|(_, f)| f)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The three cells of a figure: p50, p90, max in ms, or MiB alone.
fn cells(f: Option<&Figure>) -> [String; 3] {
    match f {
        Some(Figure::Time(s)) => [ms(s.p50()), ms(s.p90()), ms(s.max())],
        Some(Figure::Bytes(b)) => [
            format!("{:.2}MiB", *b as f64 / 1048576.0),
            String::new(),
            String::new(),
        ],
        None => ["-".into(), String::new(), String::new()],
    }
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut header = format!("{:<44}", "operation (times in ms)");
        for r in &self.runtimes {
            let _ = write!(
                header,
                " | {:>9} {:>9} {:>9}",
                format!("{r} p50"),
                "p90",
                "max"
            );
        }
        if let [a, b, ..] = self.runtimes.as_slice() {
            let _ = write!(header, " | {:>9}", format!("{}/{}", short(a), short(b)));
        }
        let _ = write!(header, " | {:>9}", "floor p50");
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "{}", "-".repeat(header.len()));
        for section in &self.sections {
            let _ = writeln!(out, "{}", section.title);
            for row in &section.rows {
                let mut line = format!("  {:<42}", row.name);
                for r in &self.runtimes {
                    let [a, b, c] = cells(row.figure(r));
                    let _ = write!(line, " | {a:>9} {b:>9} {c:>9}");
                }
                if let [a, b, ..] = self.runtimes.as_slice() {
                    let ratio = match (row.figure(a), row.figure(b)) {
                        (Some(x), Some(y)) if y.headline() > 0.0 => {
                            format!("{:.2}", x.headline() / y.headline())
                        }
                        _ => "-".into(),
                    };
                    let _ = write!(line, " | {ratio:>9}");
                }
                let floor = row
                    .floor
                    .as_ref()
                    .map_or(String::new(), |f| cells(Some(f))[0].clone());
                let _ = write!(line, " | {floor:>9}");
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "runtimes": self.runtimes,
            "sections": self.sections.iter().map(|s| json!({
                "title": s.title,
                "rows": s.rows.iter().map(|r| json!({
                    "name": r.name,
                    "runtimes": r.figures.iter().map(|(n, f)| (n.clone(), f.to_json())).collect::<serde_json::Map<_, _>>(),
                    "floor": r.floor.as_ref().map(Figure::to_json),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A column-friendly name: `containerd` → `ctrd`.
fn short(name: &str) -> &str {
    match name {
        "containerd" => "ctrd",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::Samples;

    #[test]
    fn ratios_are_first_over_second() {
        let time = |ms: u64| {
            let mut s = Samples::default();
            s.push(Duration::from_millis(ms));
            Figure::Time(s)
        };
        let report = Report {
            runtimes: vec!["berth".into(), "containerd".into()],
            sections: vec![Section {
                title: "lifecycle".into(),
                rows: vec![Row {
                    name: "RunPodSandbox".into(),
                    figures: vec![("berth".into(), time(50)), ("containerd".into(), time(200))],
                    floor: Some(time(45)),
                }],
            }],
        };
        let table = report.table();
        let row = table.lines().find(|l| l.contains("RunPodSandbox")).unwrap();
        assert!(row.contains("0.25") && row.ends_with("45.0"), "{row}");
        assert_eq!(
            report.to_json()["sections"][0]["rows"][0]["runtimes"]["berth"]["p50_ms"],
            50.0
        );
    }
}

//! The OpenMetrics text format (what Prometheus scrapes): families with `# TYPE` and `# HELP`,
//! samples with escaped label values, `# EOF` last. And the histogram berth keeps.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Cumulative-bucket histogram of durations in seconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not yet cumulative).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Builds one exposition.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
    }

    /// A sample: `name` is the family name plus any suffix (`_total`, `_bucket`, …).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (bound, n) in h.bounds.iter().zip(&h.counts) {
            cumulative += n;
            let le = format!("{bound}");
            let with_le: Vec<(&str, &str)> = labels
                .iter()
                .copied()
                .chain([("le", le.as_str())])
                .collect();
            self.sample(&bucket, &with_le, cumulative);
        }
        let with_inf: Vec<(&str, &str)> = labels.iter().copied().chain([("le", "+Inf")]).collect();
        self.sample(&bucket, &with_inf, h.count);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count);
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("# EOF\n");
        self.out
    }
}

/// Backslash, newline and (in label values) the double quote are escaped.
fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms() {
        static BOUNDS: [f64; 2] = [0.1, 1.0];
        let mut h = Histogram::new(&BOUNDS);
        for s in [0.05, 0.5, 0.7, 3.0] {
            h.observe(s);
        }
        let mut w = Writer::default();
        w.family("x_seconds", "histogram", "How long.\nReally.");
        w.histogram("x_seconds", &[("method", "A\"b")], &h);
        let text = w.finish();
        assert_eq!(
            text,
            "# TYPE x_seconds histogram\n# HELP x_seconds How long.\\nReally.\n\
             x_seconds_bucket{method=\"A\\\"b\",le=\"0.1\"} 1\n\
             x_seconds_bucket{method=\"A\\\"b\",le=\"1\"} 3\n\
             x_seconds_bucket{method=\"A\\\"b\",le=\"+Inf\"} 4\n\
             x_seconds_sum{method=\"A\\\"b\"} 4.25\n\
             x_seconds_count{method=\"A\\\"b\"} 4\n# EOF\n"
        );
    }
}

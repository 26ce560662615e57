//! berth-conformance: the CRI conformance suite (cri-tools' critest) against berth, offline.
//!
//! ```text
//! berth-conformance [--critest PATH] [--focus REGEX] [--skip REGEX] [--report FILE]
//!     sets up a registry with stand-ins for every image critest names, a CNI bridge and berthd
//!     with mirrors for the upstream hosts; runs critest; prints a summary; tears everything down.
//!     Exit status 1 when any spec fails but the one that cannot pass offline.
//! berth-conformance bench [--critest PATH] [--pods N] [--containers N] [--images N]
//!     critest's benchmark mode against berth and containerd back to back, then a table of
//!     per-RPC medians side by side.
//! ```
//! critest is found at `--critest`, else `$CRITEST`, else on `PATH`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod critest;
mod images;
mod node;
mod report;

use std::path::PathBuf;

const USAGE: &str = "usage: berth-conformance [--critest PATH] [--focus REGEX] [--skip REGEX] [--report FILE]
       berth-conformance bench [--critest PATH] [--pods N] [--containers N] [--images N] [--report FILE]";

#[derive(Debug, Default)]
struct Options {
    bench: bool,
    critest: Option<PathBuf>,
    focus: Option<String>,
    skip: Option<String>,
    /// Where the summary (or the benchmark table) is also written, as JSON.
    report: Option<PathBuf>,
    samples: bench::Samples,
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("bench") {
        o.bench = true;
        args.next();
    }
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} wants a number, not {v}"))
        };
        match flag.as_str() {
            "--critest" => o.critest = Some(value()?.into()),
            "--focus" => o.focus = Some(value()?),
            "--skip" => o.skip = Some(value()?),
            "--report" => o.report = Some(value()?.into()),
            "--pods" if o.bench => o.samples.pods = number(value()?)?,
            "--containers" if o.bench => o.samples.containers = number(value()?)?,
            "--images" if o.bench => o.samples.images = number(value()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() {
    if !berth_testkit::tool::main("berth-conformance", USAGE, parse, run) {
        std::process::exit(1);
    }
}

/// Runs what was asked; whether it passed.
async fn run(o: Options) -> Result<bool, String> {
    let critest = critest::find(o.critest.as_deref())?;
    if o.bench {
        let table = bench::run(&critest, &o.samples).await?;
        print!("{}", table.render());
        if let Some(path) = &o.report {
            write_json(path, &table.to_json())?;
        }
        return Ok(true);
    }
    let node = node::Node::start(node::Peers::BerthOnly).await?;
    let run = critest::Run {
        critest: &critest,
        endpoint: &node.berth_endpoint(),
        work_dir: &node.work_dir(),
        focus: o.focus.as_deref(),
        skip: o.skip.as_deref(),
    };
    let specs = run.conformance().await?;
    let summary = report::Summary::of(&specs)?;
    print!("{}", summary.render());
    if let Some(path) = &o.report {
        write_json(path, &summary.to_json())?;
    }
    Ok(summary.passed())
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

//! The command line.

use std::path::PathBuf;

use crate::runtime::Res;

pub const USAGE: &str = "usage: berth-bench [--runtimes berth,containerd] [--workloads lifecycle,burst,density,relist,pull,exec]
                   [--cycles 20] [--burst 20] [--rounds 3] [--density 30] [--relist-pods 100]
                   [--relist-samples 100] [--pull-samples 3] [--big-mb 200] [--exec-samples 50]
                   [--out target/bench]
       berth-bench --endpoint NAME=unix:///path.sock [--endpoint …] --image REF [--pull-image REF]… [same workload options]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Lifecycle,
    Burst,
    Density,
    Relist,
    Pull,
    Exec,
}

const ALL: [Workload; 6] = [
    Workload::Lifecycle,
    Workload::Burst,
    Workload::Density,
    Workload::Relist,
    Workload::Pull,
    Workload::Exec,
];

impl Workload {
    fn parse(name: &str) -> Res<Workload> {
        ALL.into_iter()
            .find(|w| format!("{w:?}").eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown workload {name}"))
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub runtimes: Vec<String>,
    pub workloads: Vec<Workload>,
    /// Runtimes already running: (name, socket).
    pub endpoints: Vec<(String, PathBuf)>,
    pub image: String,
    pub pull_images: Vec<String>,
    pub cycles: usize,
    pub burst: usize,
    pub rounds: usize,
    pub density: usize,
    pub relist_pods: usize,
    pub relist_samples: usize,
    pub pull_samples: usize,
    pub big_mb: usize,
    pub exec_samples: usize,
    pub out: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runtimes: vec!["berth".into(), "containerd".into()],
            workloads: ALL.to_vec(),
            endpoints: Vec::new(),
            image: String::new(),
            pull_images: Vec::new(),
            cycles: 20,
            burst: 20,
            rounds: 3,
            density: 30,
            relist_pods: 100,
            relist_samples: 100,
            pull_samples: 3,
            big_mb: 200,
            exec_samples: 50,
            out: PathBuf::from("target/bench"),
        }
    }
}

impl Options {
    pub fn runs(&self, w: Workload) -> bool {
        self.workloads.contains(&w)
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Res<Options> {
        let mut o = Options::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |v: String| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{flag}: `{v}` is not a positive number"))
            };
            match flag.as_str() {
                "--runtimes" => o.runtimes = value()?.split(',').map(str::to_owned).collect(),
                "--workloads" => {
                    o.workloads = value()?
                        .split(',')
                        .map(Workload::parse)
                        .collect::<Res<_>>()?
                }
                "--endpoint" => {
                    let v = value()?;
                    let (name, url) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--endpoint {v}: NAME=unix:///path"))?;
                    let path = url
                        .strip_prefix("unix://")
                        .ok_or_else(|| format!("--endpoint {v}: only unix:// endpoints"))?;
                    o.endpoints.push((name.to_owned(), PathBuf::from(path)));
                }
                "--image" => o.image = value()?,
                "--pull-image" => o.pull_images.push(value()?),
                "--cycles" => o.cycles = number(value()?)?,
                "--burst" => o.burst = number(value()?)?,
                "--rounds" => o.rounds = number(value()?)?,
                "--density" => o.density = number(value()?)?,
                "--relist-pods" => o.relist_pods = number(value()?)?,
                "--relist-samples" => o.relist_samples = number(value()?)?,
                "--pull-samples" => o.pull_samples = number(value()?)?,
                "--big-mb" => o.big_mb = number(value()?)?,
                "--exec-samples" => o.exec_samples = number(value()?)?,
                "--out" => o.out = PathBuf::from(value()?),
                other => return Err(format!("unknown option {other}")),
            }
        }
        if !o.endpoints.is_empty() && o.image.is_empty() {
            return Err("--endpoint needs --image (the container image to run)".into());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Res<Options> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_and_their_errors() {
        let o = parse(&[
            "--cycles",
            "3",
            "--workloads",
            "lifecycle,exec",
            "--runtimes",
            "berth",
        ])
        .unwrap();
        assert_eq!((o.cycles, o.runtimes.len()), (3, 1));
        assert!(o.runs(Workload::Exec) && !o.runs(Workload::Pull));
        let o = parse(&[
            "--endpoint",
            "crio=unix:///run/crio/crio.sock",
            "--image",
            "busybox",
        ])
        .unwrap();
        assert_eq!(o.endpoints[0].1, PathBuf::from("/run/crio/crio.sock"));
        assert!(parse(&["--endpoint", "x=tcp://1.2.3.4:1", "--image", "i"]).is_err());
        assert!(
            parse(&["--endpoint", "x=unix:///s"]).is_err(),
            "needs an image"
        );
        assert!(parse(&["--cycles", "0"]).is_err());
        assert!(parse(&["--cycles"]).is_err());
        assert!(parse(&["--workloads", "nap"]).is_err());
    }
}

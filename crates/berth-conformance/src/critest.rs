//! Finding critest and running it: the conformance suite with a ginkgo JSON report, or its
//! benchmark mode with result files.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// critest at `given`, else `$CRITEST`, else the first `critest` on `PATH`.
pub fn find(given: Option<&Path>) -> Result<PathBuf, String> {
    let from_env = std::env::var_os("CRITEST").map(PathBuf::from);
    if let Some(path) = given.map(Path::to_path_buf).or(from_env) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("critest: {} does not exist", path.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("critest"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "critest is not on PATH and CRITEST is not set: get it from the cri-tools release \
             (https://github.com/kubernetes-sigs/cri-tools/releases)"
                .to_owned()
        })
}

/// One critest invocation against one runtime.
pub struct Run<'a> {
    pub critest: &'a Path,
    /// `unix://…` of the runtime (its image service on the same socket).
    pub endpoint: &'a str,
    /// Reports and logs go here.
    pub work_dir: &'a Path,
    pub focus: Option<&'a str>,
    pub skip: Option<&'a str>,
}

impl Run<'_> {
    /// Runs the conformance specs; the ginkgo JSON report they leave. critest's own output goes
    /// to our stderr as it comes (a failing spec's details are there).
    pub async fn conformance(&self) -> Result<serde_json::Value, String> {
        let report = self.work_dir.join("report.json");
        let mut args = self.common_args();
        args.push(format!("-ginkgo.json-report={}", report.display()));
        self.run(&args).await?;
        let text = std::fs::read(&report)
            .map_err(|e| format!("critest left no report at {}: {e}", report.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("critest's report: {e}"))
    }

    /// critest's benchmark mode with `params` (its YAML settings); the dir of its result files.
    pub async fn benchmark(&self, params: &str) -> Result<PathBuf, String> {
        let out = self.work_dir.join("benchmark");
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let params_file = self.work_dir.join("benchmark.yaml");
        std::fs::write(&params_file, params).map_err(|e| format!("benchmark params: {e}"))?;
        let mut args = self.common_args();
        args.push("-benchmark".into());
        args.push(format!(
            "-benchmarking-params-file={}",
            params_file.display()
        ));
        args.push(format!("-benchmarking-output-dir={}", out.display()));
        self.run(&args).await?;
        Ok(out)
    }

    fn common_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--runtime-endpoint={}", self.endpoint),
            format!("--image-endpoint={}", self.endpoint),
            "-ginkgo.no-color".into(),
            "-ginkgo.timeout=60m".into(),
        ];
        if let Some(f) = self.focus {
            args.push(format!("-ginkgo.focus={f}"));
        }
        if let Some(s) = self.skip {
            args.push(format!("-ginkgo.skip={s}"));
        }
        args
    }

    /// critest exits non-zero when a spec fails; that is for the report to tell, so only a
    /// critest that could not run at all is an error here.
    async fn run(&self, args: &[String]) -> Result<(), String> {
        std::fs::create_dir_all(self.work_dir)
            .map_err(|e| format!("{}: {e}", self.work_dir.display()))?;
        // Its output goes to our stderr, so that stdout carries the summary alone.
        let to_stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("stderr: {e}"))?;
        let status = tokio::process::Command::new(self.critest)
            .args(args)
            .current_dir(self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(to_stderr))
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.critest.display()))?;
        if status.code().is_none() {
            return Err(format!("critest was killed ({status})"));
        }
        Ok(())
    }
}

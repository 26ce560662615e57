//! A berthd of the test's own: private root, state dir, socket and config under one temp dir.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::client::{Clients, connect};

/// How long a daemon may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct DaemonBuilder {
    config: String,
    drop_ins: Vec<(String, String)>,
    log_level: &'static str,
    env: Vec<(String, String)>,
}

impl Default for DaemonBuilder {
    fn default() -> Self {
        DaemonBuilder {
            config: String::new(),
            drop_ins: Vec::new(),
            log_level: "debug",
            env: Vec::new(),
        }
    }
}

impl DaemonBuilder {
    /// Text appended to the main config file (after the kit's own keys).
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// A file of the drop-in directory `berth.d/`.
    pub fn drop_in(mut self, name: &str, toml: &str) -> Self {
        self.drop_ins.push((name.to_owned(), toml.to_owned()));
        self
    }

    /// `--log-level` (tests log everything; a benchmark logs as production does).
    pub fn log_level(mut self, level: &'static str) -> Self {
        self.log_level = level;
        self
    }

    /// A variable of the daemon's environment (and so of the helpers it starts).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes the config and starts the daemon; returns once it answers `Version`.
    pub async fn start(self) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir_in(test_base())
            .expect("temp dir");
        let path = dir.path().to_path_buf();
        let config_file = path.join("etc/berth.toml");
        std::fs::create_dir_all(path.join("etc/berth.d")).expect("config dir");
        // The pods of each test daemon get cgroups under a parent of their own, which the leak
        // audit can read and teardown remove.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cgroup_parent = format!("/{name}");
        let config = if self.config.contains("pod_cgroup_parent") {
            self.config.clone()
        } else {
            format!("pod_cgroup_parent = \"{cgroup_parent}\"\n{}", self.config)
        };
        std::fs::write(&config_file, config).expect("config file");
        for (name, text) in &self.drop_ins {
            std::fs::write(path.join("etc/berth.d").join(name), text).expect("drop-in");
        }
        let mut daemon = TestDaemon {
            root: path.join("root"),
            state_dir: path.join("state"),
            socket: path.join("berth.sock"),
            config_file,
            log_path: path.join("berthd.log"),
            log_level: self.log_level,
            env: self.env,
            cgroup_parent,
            failpoint: None,
            child: None,
            dir,
        };
        daemon.spawn_and_wait().await;
        daemon
    }
}

/// A running berthd. Dropping it kills the daemon and removes everything it made.
#[derive(Debug)]
pub struct TestDaemon {
    pub root: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub config_file: PathBuf,
    pub log_path: PathBuf,
    log_level: &'static str,
    env: Vec<(String, String)>,
    /// Where berthd makes the cgroups of pods that name no parent.
    pub cgroup_parent: String,
    /// A failpoint armed for the next start (`BERTH_FAILPOINT`): berthd dies there.
    pub failpoint: Option<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// Where test daemons keep their files: on a disk filesystem (overlayfs upper dirs need one).
fn test_base() -> PathBuf {
    let base = std::env::var_os("BERTH_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/berth-tests"));
    std::fs::create_dir_all(&base).expect("test base dir");
    base
}

impl TestDaemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// A daemon with the kit's defaults.
    pub async fn start() -> TestDaemon {
        Self::builder().start().await
    }

    /// The temp dir holding everything of this daemon.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `berthd` with this daemon's config, root, state dir and socket.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(crate::workspace_bin("berthd"));
        cmd.arg("--config")
            .arg(&self.config_file)
            .arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--log-level")
            .arg(self.log_level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        match &self.failpoint {
            Some(point) => cmd.env("BERTH_FAILPOINT", point),
            None => cmd.env_remove("BERTH_FAILPOINT"),
        };
        cmd
    }

    async fn spawn_and_wait(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = self
            .command()
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("berthd exited at start ({status}):\n{}", self.log());
            }
            if let Ok(mut clients) = connect(&self.socket).await {
                // ListImages answers once start-up recovery is done (before, Unavailable).
                let ready = clients
                    .image
                    .list_images(berth_cri::v1::ListImagesRequest::default())
                    .await;
                if ready.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not answer in {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The cgroup driver RuntimeConfig reports.
    pub async fn cgroup_driver(&self) -> berth_cri::v1::CgroupDriver {
        let config = self
            .clients()
            .await
            .runtime
            .runtime_config(berth_cri::v1::RuntimeConfigRequest {})
            .await
            .expect("RuntimeConfig")
            .into_inner();
        let driver = config.linux.expect("linux runtime config").cgroup_driver;
        berth_cri::v1::CgroupDriver::try_from(driver).expect("a known cgroup driver")
    }

    /// Clients connected to this daemon's socket.
    pub async fn clients(&self) -> Clients {
        connect(&self.socket).await.expect("connect to berthd")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The snapshot dirs of an image, top layer first, from its verbose ImageStatus info.
    pub fn snapshot_dirs(&self, info: &serde_json::Value) -> Vec<PathBuf> {
        let chain = info["chainIDs"]
            .as_array()
            .expect("chainIDs in verbose info");
        chain
            .iter()
            .rev()
            .map(|c| {
                let hex = c.as_str().expect("chain ID").trim_start_matches("sha256:");
                self.root.join("snapshots").join(hex).join("fs")
            })
            .collect()
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit. Async, so that the test's own client connections
    /// keep being served while the daemon shuts down (a graceful HTTP/2 close needs their answer).
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal_and_wait(Signal::TERM, Duration::from_secs(20))
            .await
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        self.signal_and_wait(Signal::KILL, Duration::from_secs(10))
            .await;
    }

    /// The IDs runc of `handler` has containers of (`runc list` on the handler's state root).
    pub fn runtime_containers(&self, handler: &str) -> Vec<String> {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.state_dir.join("runtimes").join(handler))
            .args(["list", "-q"])
            .output()
            .expect("runc list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the daemon has died on its own (at an armed failpoint); false if it still
    /// runs after `timeout`.
    pub async fn died_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Starts the daemon again on the same root, state dir and socket.
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() follows terminate() or kill()"
        );
        self.spawn_and_wait().await;
    }

    async fn signal_and_wait(&mut self, signal: Signal, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("daemon is running");
        if let Some(pid) = Pid::from_raw(child.id() as i32) {
            let _ = kill_process(pid, signal);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait for berthd") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berthd did not exit within {timeout:?} of {signal:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- berthd log ({}) ----\n{}",
                self.log_path.display(),
                self.log()
            );
        }
        if self.child.is_some() {
            self.remove_everything();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::teardown::leftovers(self.dir.path(), &self.cgroup_parent);
    }
}

impl TestDaemon {
    /// Asks the daemon to remove every pod (and with them their containers and networks), on a
    /// thread of its own since Drop cannot await.
    fn remove_everything(&self) {
        let socket = self.socket.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(mut c) = connect(&socket).await else {
                    return;
                };
                let Ok(pods) = c
                    .runtime
                    .list_pod_sandbox(berth_cri::v1::ListPodSandboxRequest::default())
                    .await
                else {
                    return;
                };
                for pod in pods.into_inner().items {
                    let _ = c
                        .runtime
                        .remove_pod_sandbox(berth_cri::v1::RemovePodSandboxRequest {
                            pod_sandbox_id: pod.id,
                        })
                        .await;
                }
            });
        })
        .join();
    }
}

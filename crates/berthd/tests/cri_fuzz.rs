//! Structured random requests to every RPC of the CRI (the test kit's `cri_fuzz`) against a real
//! node: berthd answers each with a status that says what was wrong with it (never Internal or
//! Unknown, which mean "berth has a bug"), keeps answering throughout, touches no file the
//! requests point it at outside what it may own, and once the pods are removed leaves nothing.
//!
//! `BERTH_CRI_FUZZ_REQUESTS` sets the number of requests (default [`DEFAULT_REQUESTS`], what
//! `make test` runs; `make fuzz` runs many more) and `BERTH_FUZZ_SEED` the seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_cri::prost::Message;
use berth_cri::v1 as cri;
use berth_testkit::cri_fuzz::{Answer, RequestFuzzer, Targets, send};
use berth_testkit::{Node, PodConfig};
use tonic::Code;

const DEFAULT_REQUESTS: usize = 3_000;
/// Requests in flight at once: enough to race the daemon's locks against each other.
const WORKERS: usize = 4;
/// Requests between two re-plantings of real objects (and health checks).
const ROUND: usize = 200;
/// A request's gRPC deadline: a Stop with a huge timeout waits this long.
const DEADLINE: Duration = Duration::from_secs(10);

fn requests() -> usize {
    std::env::var("BERTH_CRI_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS)
}

/// Codes that say "the server failed", not "the request was wrong". Unavailable is the daemon
/// gone, except from PullImage, whose registry may be the one unavailable; ResourceExhausted
/// belongs only to an events subscriber that lags and to a full streaming token cache;
/// Cancelled means the connection went down under the call.
fn is_server_failure(rpc: &str, code: Code) -> bool {
    match code {
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Cancelled => true,
        Code::Unavailable => rpc != "ImageService/PullImage",
        Code::ResourceExhausted => !matches!(
            rpc,
            "RuntimeService/GetContainerEvents"
                | "RuntimeService/Exec"
                | "RuntimeService/Attach"
                | "RuntimeService/PortForward"
        ),
        _ => false,
    }
}

/// Every file under `dir` with its bytes and mode: what the requests must not change.
fn contents(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let bytes = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path, (bytes, meta.permissions().mode()));
        }
    }
    out
}

/// The node's objects the requests aim at, and what they may name on the host.
fn targets(node: &Node, sentinel: &Path, escape: &Path) -> Targets {
    let d = &node.daemon;
    let dir = d.dir().display().to_string();
    let sentinel = sentinel.display().to_string();
    let escape = escape.display().to_string();
    Targets {
        ids: vec![node.image.clone(), "busybox".into()],
        host_paths: vec![
            sentinel.clone(),
            format!("{sentinel}/keep"),
            format!("{sentinel}/dir"),
            format!("{sentinel}/../{}", "x".repeat(300)),
            format!("{dir}/volumes/a"),
            "/dev/null".into(),
            "relative/path".into(),
            format!("{sentinel}\0/x"),
            String::new(),
        ],
        log_dirs: vec![
            format!("{dir}/logs/a"),
            format!("{dir}/logs/b"),
            "relative/logs".into(),
            format!("{dir}/logs/\0"),
            String::new(),
        ],
        cgroup_parents: vec![
            d.cgroup_parent.clone(),
            format!("{}/fuzz", d.cgroup_parent),
            format!("{}/../../..", d.cgroup_parent),
            "relative".into(),
            format!("{}\0", d.cgroup_parent),
            String::new(),
        ],
        strings: vec![
            escape.clone(),
            format!("{}{escape}", "../".repeat(16)),
            format!("../../../../{sentinel}/keep"),
        ],
        templates: HashMap::new(),
    }
}

/// A fresh pod with a running container for the next round's requests to hit, its IDs added to
/// the targets; every pod but the newest few removed first, so that the pods the requests make
/// do not exhaust the network's addresses.
async fn plant(node: &Node, targets: &mut Targets, keep: &mut Vec<String>) {
    let d = &node.daemon;
    for pod in d.list_pods(None).await {
        if !keep.contains(&pod.id) {
            let _ = d.stop_pod(&pod.id).await;
            let _ = d.remove_pod(&pod.id).await;
        }
    }
    let _ = d.clients().await.pull(&node.image).await;
    let config = PodConfig::new("fuzz-target");
    let Ok(pod) = d.run_pod(&config).await else {
        return;
    };
    let c = node
        .container("target")
        .sh("trap 'exit 0' TERM; while true; do sleep 1; done");
    if let Ok(id) = d.create_container(&pod, &config, &c).await {
        let _ = d.start_container(&id).await;
        targets.templates = templates(node, &config, &pod, &id);
        targets.ids.push(id);
    }
    targets.ids.push(pod.clone());
    if let Some(image) = d.clients().await.image_status(&node.image).await {
        targets.ids.push(image.0.id);
    }
    keep.push(pod);
    if keep.len() > 2 {
        keep.remove(0);
    }
}

/// Valid requests of the RPCs that take more than an ID, aimed at the planted pod and container.
fn templates(
    node: &Node,
    pod_config: &PodConfig,
    pod: &str,
    container: &str,
) -> HashMap<String, Vec<u8>> {
    let resources = cri::LinuxContainerResources {
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    let id = container.to_owned();
    let requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "RuntimeService/RunPodSandbox",
            cri::RunPodSandboxRequest {
                config: Some(PodConfig::new("fuzz-made").0),
                runtime_handler: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/CreateContainer",
            cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(node.container("made").command(&["echo", "hi"]).0),
                sandbox_config: Some(pod_config.0.clone()),
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/ExecSync",
            cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["echo".into(), "hi".into()],
                timeout: 5,
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/Exec",
            cri::ExecRequest {
                container_id: id.clone(),
                cmd: vec!["sh".into()],
                stdout: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/Attach",
            cri::AttachRequest {
                container_id: id.clone(),
                stdout: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/PortForward",
            cri::PortForwardRequest {
                pod_sandbox_id: pod.into(),
                port: vec![80],
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/UpdateContainerResources",
            cri::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(resources.clone()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/UpdatePodSandboxResources",
            cri::UpdatePodSandboxResourcesRequest {
                pod_sandbox_id: pod.into(),
                overhead: None,
                resources: Some(resources),
            }
            .encode_to_vec(),
        ),
        (
            "RuntimeService/StopContainer",
            cri::StopContainerRequest {
                container_id: id,
                timeout: 1,
            }
            .encode_to_vec(),
        ),
        (
            "ImageService/PullImage",
            cri::PullImageRequest {
                image: Some(berth_testkit::spec(&node.image)),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    requests
        .into_iter()
        .map(|(rpc, bytes)| (rpc.to_owned(), bytes))
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    /// (RPC, answer) → count.
    answers: BTreeMap<(String, String), usize>,
    /// The first answer of each code, to show what the codes stand for.
    examples: BTreeMap<String, String>,
    failures: Vec<String>,
}

async fn version_answers(node: &Node) -> bool {
    let mut c = node.daemon.clients().await;
    let version = c.runtime.version(cri::VersionRequest::default());
    matches!(
        tokio::time::timeout(Duration::from_secs(10), version).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_to_every_rpc_get_clear_answers_and_harm_nothing() {
    let node = Node::start().await;
    let d = &node.daemon;
    let sentinel = d.dir().join("sentinel");
    std::fs::create_dir_all(sentinel.join("dir")).unwrap();
    std::fs::write(sentinel.join("keep"), b"not berth's").unwrap();
    let escape = d.dir().join("escaped");
    let before = contents(&sentinel);
    let mut targets = targets(&node, &sentinel, &escape);
    let mut keep = Vec::new();
    // One connection for the whole run, as kubelet keeps one.
    let channel = berth_testkit::channel(&d.socket).await.expect("channel");
    let seed = berth_fuzz::seed();
    let total = requests();
    let mut fuzzers: Vec<RequestFuzzer> = (0..WORKERS as u64)
        .map(|w| RequestFuzzer::new(seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let mut tally = Tally::default();
    let mut sent = 0;
    while sent < total {
        plant(&node, &mut targets, &mut keep).await;
        assert!(version_answers(&node).await, "berthd stopped answering");
        let shared = Arc::new(targets.clone());
        let mut round = tokio::task::JoinSet::new();
        let per_worker = ROUND.min(total - sent).div_ceil(WORKERS);
        for mut fuzzer in fuzzers.drain(..) {
            let channel = channel.clone();
            let targets = Arc::clone(&shared);
            round.spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..per_worker {
                    let request = fuzzer.request(&targets);
                    let rpc = fuzzer.rpcs()[request.rpc].clone();
                    let (decodes, shown) = (request.decodes, request.shown.clone());
                    let answer = send(&channel, &rpc, request, DEADLINE).await;
                    answers.push((rpc.name, decodes, shown, answer));
                }
                (fuzzer, answers)
            });
        }
        while let Some(done) = round.join_next().await {
            let (fuzzer, answers) = done.expect("a fuzzing worker");
            fuzzers.push(fuzzer);
            for (rpc, decodes, shown, answer) in answers {
                sent += 1;
                let (label, failure) = match &answer {
                    Answer::Ok => ("OK".to_owned(), false),
                    Answer::TimedOut => ("no answer".to_owned(), true),
                    Answer::Status(s) if !decodes && s.code() == Code::Internal => {
                        ("Internal (bytes that do not decode)".to_owned(), false)
                    }
                    Answer::Status(s) => {
                        let label = format!("{:?}", s.code());
                        tally
                            .examples
                            .entry(label.clone())
                            .or_insert_with(|| format!("{rpc}: {}", s.message()));
                        (label, is_server_failure(&rpc, s.code()))
                    }
                };
                if failure {
                    tally
                        .failures
                        .push(format!("{rpc} → {answer:?}\n    request: {shown}"));
                }
                *tally.answers.entry((rpc, label)).or_default() += 1;
            }
        }
    }
    let mut table = String::new();
    for ((rpc, label), n) in &tally.answers {
        table.push_str(&format!("{n:>7}  {rpc:<45} {label}\n"));
    }
    eprintln!("{sent} CRI requests (seed {seed}):\n{table}");
    for (code, example) in &tally.examples {
        let example: String = example.chars().take(300).collect();
        eprintln!("first {code}: {example}");
    }
    assert!(version_answers(&node).await, "berthd stopped answering");
    assert!(
        tally.failures.is_empty(),
        "{} of {sent} requests got a server failure (seed {seed}):\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert_eq!(
        contents(&sentinel),
        before,
        "a request changed a file it named"
    );
    assert!(!escape.exists(), "a request made {}", escape.display());

    for pod in d.list_pods(None).await {
        d.stop_pod(&pod.id).await.expect("StopPodSandbox");
        d.remove_pod(&pod.id).await.expect("RemovePodSandbox");
    }
    let leaks = d.leaks(&node.net);
    assert!(leaks.is_empty(), "after the fuzzing: {leaks:#?}");
}

//! berth's native exec path (berth-exec entering the container itself) against the reference,
//! runc: the process an exec starts must be what runc made of the container's own process, in
//! every security context, and nothing of the node may be reached through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{
    CtrConfig, DaemonBuilder, ImageBuilder, Node, PodConfig, TestDaemon, log_lines, wait_until,
};

/// Everything of a process that runc decides: its IDs, groups, capabilities, no_new_privs,
/// seccomp, cgroups, namespaces, OOM score, working dir, umask, rlimits, descriptors and
/// environment, and what a setuid binary becomes under it. Printed by the shell about itself.
const FINGERPRINT: &str = r#"
grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/$$/status
cat /proc/$$/cgroup
for n in mnt net ipc uts pid user cgroup; do echo "ns $n $(readlink /proc/$$/ns/$n)"; done
echo "oom $(cat /proc/$$/oom_score_adj)"
echo "apparmor $(cat /proc/$$/attr/current 2>/dev/null)"
echo "cwd $(pwd)"
echo "umask $(umask)"
cat /proc/$$/limits
echo "fds $(ls /proc/$$/fd | tr '\n' ' ')"
env | grep -v -E '^(PWD|SHLVL|_)=' | sort
if [ -x /usr/local/bin/probe ]; then /usr/local/bin/probe; fi
"#;

/// Runs a container of `config` that prints its fingerprint and waits; then execs the same
/// fingerprint into it and returns both (the container's first).
async fn fingerprints(
    d: &TestDaemon,
    pod: &(String, PodConfig),
    config: CtrConfig,
) -> (String, String) {
    let id = d
        .run_container(
            &pod.0,
            &pod.1,
            &config.sh(&format!("{FINGERPRINT}\necho END; sleep 100000")),
        )
        .await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    let own = wait_until(
        "the container's fingerprint",
        Duration::from_secs(30),
        || {
            let lines: Vec<String> = log_lines(&log).into_iter().map(|l| l.2).collect();
            let done = lines.iter().any(|l| l == "END");
            async move { done.then(|| lines[..lines.len() - 1].join("\n")) }
        },
    )
    .await;
    let exec = d
        .exec_sync(&id, &["sh", "-c", FINGERPRINT], 30)
        .await
        .unwrap();
    assert_eq!(
        exec.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&exec.stderr)
    );
    (own, String::from_utf8_lossy(&exec.stdout).trim().to_owned())
}

fn runtime_default(s: &mut cri::LinuxContainerSecurityContext) {
    s.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
        ..Default::default()
    });
}

#[tokio::test]
async fn an_exec_gets_what_runc_gave_the_container_in_every_security_context() {
    // A soft file limit below the hard one, as systemd gives services: runc builds differ in
    // what they make of it (a Go runtime before 1.21 raised it and left it raised for the
    // container), so the exec must take the container's, whatever runc did.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if nofile.maximum.is_none_or(|hard| hard > 1024) {
        let lowered = rustix::process::Rlimit {
            current: Some(1024),
            ..nofile
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, lowered).unwrap();
    }
    let node = Node::start().await;
    let d = &node.daemon;
    let image = node.setuid_probe_image().await;
    let pod = node.pod("contexts").await;
    let contexts: Vec<(&str, CtrConfig)> = vec![
        ("default", CtrConfig::new("default", &image)),
        (
            "user, groups, RuntimeDefault seccomp",
            CtrConfig::new("user", &image).security(|s| {
                s.run_as_user = Some(cri::Int64Value { value: 1000 });
                s.run_as_group = Some(cri::Int64Value { value: 1234 });
                s.supplemental_groups = vec![5000, 6000];
                runtime_default(s);
            }),
        ),
        (
            "no_new_privs with a setuid binary",
            CtrConfig::new("nnp", &image).security(|s| {
                s.run_as_user = Some(cri::Int64Value { value: 1000 });
                s.no_new_privs = true;
                runtime_default(s);
            }),
        ),
        (
            "capabilities dropped, added and ambient",
            CtrConfig::new("caps", &image).security(|s| {
                s.run_as_user = Some(cri::Int64Value { value: 1000 });
                s.capabilities = Some(cri::Capability {
                    drop_capabilities: vec!["ALL".into()],
                    add_capabilities: vec!["NET_ADMIN".into(), "NET_BIND_SERVICE".into()],
                    add_ambient_capabilities: vec!["NET_BIND_SERVICE".into()],
                });
            }),
        ),
        (
            "read-only rootfs, masked paths, a working dir, an OOM score",
            CtrConfig::new("confined", &image)
                .working_dir("/tmp")
                .default_proc_mount()
                .security(|s| s.readonly_rootfs = true)
                .resources(|r| r.oom_score_adj = 500),
        ),
    ];
    for (what, config) in contexts {
        let (own, exec) = fingerprints(d, &pod, config).await;
        assert_eq!(
            exec, own,
            "{what}: the exec'd process differs from the container's"
        );
    }

    let pod = node
        .pod_with(PodConfig::new("privileged").privileged())
        .await;
    let config = CtrConfig::new("privileged", &image).security(|s| s.privileged = true);
    let (own, exec) = fingerprints(d, &pod, config).await;
    assert_eq!(exec, own, "privileged");

    let pod = node
        .pod_with(
            PodConfig::new("userns")
                .shared_pid()
                .user_namespace(400_000, 65536),
        )
        .await;
    let config = CtrConfig::new("userns", &image).security(runtime_default);
    let (own, exec) = fingerprints(d, &pod, config).await;
    assert!(own.contains("Uid:\t0\t0\t0\t0"), "{own}");
    assert_eq!(exec, own, "user namespace");
}

#[tokio::test]
async fn the_runtimes_own_exec_serves_handlers_configured_for_it() {
    let node = Node::start_with(
        TestDaemon::builder().config("[runtimes.runc]\npath = \"runc\"\nnative = false"),
        ImageBuilder::busybox(),
    )
    .await;
    let d = &node.daemon;
    let pod = node.pod("fallback").await;
    let config = node.container("fallback").security(|s| {
        s.run_as_user = Some(cri::Int64Value { value: 1000 });
        runtime_default(s);
    });
    let (own, exec) = fingerprints(d, &pod, config).await;
    assert_eq!(exec, own);
    let plans = std::fs::read_dir(d.state_dir.join("containers"))
        .unwrap()
        .filter(|c| {
            std::fs::read_dir(c.as_ref().unwrap().path())
                .unwrap()
                .any(|f| {
                    f.unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("exec-plan")
                })
        })
        .count();
    assert_eq!(plans, 0, "runc exec ran it, not the native path");
}

#[tokio::test]
async fn an_exec_runs_in_the_containers_cgroup_as_the_node_sees_it() {
    let node = Node::start().await;
    let d = &node.daemon;
    let pod = node.pod("cgroup").await;
    let id = d
        .run_container(&pod.0, &pod.1, &node.container("c").sh("sleep 100000"))
        .await;
    let cgroup = format!("{}/pod{}/{id}", d.cgroup_parent, pod.0);
    let members = || berth_testkit::cgroup::procs(&cgroup);
    assert_eq!(members().len(), 1, "the container's own process");
    let exec = {
        let id = id.clone();
        let clients = d.clients().await;
        tokio::spawn(async move {
            let mut runtime = clients.runtime;
            runtime
                .exec_sync(cri::ExecSyncRequest {
                    container_id: id,
                    cmd: vec!["sleep".into(), "3".into()],
                    timeout: 30,
                })
                .await
        })
    };
    let exec_pid = wait_until("the exec'd sleep", Duration::from_secs(10), || {
        let found = members().into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c == "sleep\u{0}3\u{0}")
        });
        async move { found }
    })
    .await;
    // The node's view agrees in every hierarchy, the memory one included.
    let cgroup = std::fs::read_to_string(format!("/proc/{exec_pid}/cgroup")).unwrap();
    for line in cgroup.lines() {
        assert!(line.ends_with(&format!("/pod{}/{id}", pod.0)), "{line}");
    }
    assert_eq!(exec.await.unwrap().unwrap().into_inner().exit_code, 0);
}

/// The script of a container that watches for the exec helper's child (its command line names
/// berth-exec; `[b]` keeps the watcher's own grep from matching) and tries to reach the node
/// through it: read and write the binary it runs, list its root, read its environment.
const WATCHER: &str = r#"
echo watching
while :; do
  for p in /proc/[0-9]*; do
    if grep -q '[b]erth-exec' $p/cmdline 2>/dev/null; then
      r=$( (head -c 4 $p/exe >/dev/null && echo ok) 2>&1 )
      w=$( (echo overwritten >> $p/exe && echo ok) 2>&1 )
      l=$( (ls $p/root/ >/dev/null && echo ok) 2>&1 )
      e=$( (cat $p/environ >/dev/null && echo ok) 2>&1 )
      echo "found read=[$r] write=[$w] root=[$l] environ=[$e]"
      # PID 1 stays: its end would kill every process of its PID namespace.
      exec sleep 100000
    fi
  done
  sleep 0.05
done
"#;

/// Runs the watcher in a container of `config`, execs `true` into it while the helper's child
/// pauses before doing anything (a debug build's test hook), and returns the watcher's report.
async fn watch_an_exec(node: &Node, pod: &(String, PodConfig), config: CtrConfig) -> String {
    let d = &node.daemon;
    let id = d.run_container(&pod.0, &pod.1, &config.sh(WATCHER)).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    wait_until("the watcher", Duration::from_secs(20), || {
        let ready = log_lines(&log).iter().any(|l| l.2 == "watching");
        async move { ready.then_some(()) }
    })
    .await;
    let exec = d.exec_sync(&id, &["true"], 30).await.unwrap();
    assert_eq!(exec.exit_code, 0);
    wait_until("the watcher's report", Duration::from_secs(10), || {
        let found = log_lines(&log)
            .into_iter()
            .map(|l| l.2)
            .find(|l| l.starts_with("found"));
        async move { found }
    })
    .await
}

#[tokio::test]
async fn a_container_cannot_reach_the_node_through_the_exec_helper() {
    let helper = berth_testkit::workspace_bin("berth-exec");
    let on_disk = std::fs::read(&helper).unwrap();
    let node = Node::start_with(
        DaemonBuilder::default().env("BERTH_EXEC_TEST_PAUSE_MS", "2000"),
        ImageBuilder::busybox(),
    )
    .await;

    // A plain container's root: the child is not dumpable and holds capabilities it lacks, so
    // none of its /proc files open.
    let pod = node.pod("plain").await;
    let report = watch_an_exec(&node, &pod, node.container("plain")).await;
    for field in ["read", "write", "root", "environ"] {
        assert!(
            report.contains(&format!("{field}=[")) && !report.contains(&format!("{field}=[ok]")),
            "{field}: {report}"
        );
    }
    assert!(report.contains("Permission denied"), "{report}");

    // A privileged container may ptrace anything (it is the node's root); even so the binary
    // behind /proc/<pid>/exe is a sealed copy that takes no write.
    let pod = node
        .pod_with(PodConfig::new("privileged").privileged())
        .await;
    let config = node
        .container("privileged")
        .security(|s| s.privileged = true);
    let report = watch_an_exec(&node, &pod, config).await;
    assert!(report.contains("read=[ok]"), "{report}");
    assert!(!report.contains("write=[ok]"), "{report}");
    assert_eq!(
        std::fs::read(&helper).unwrap(),
        on_disk,
        "the helper on disk"
    );
}

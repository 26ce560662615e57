//! What a container gets from its CRI config and its image, checked from inside the container.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_cri::v1 as cri;
use berth_testkit::{
    Compression, CtrConfig, ImageBuilder, LayerBuilder, Node, PodConfig, log_lines,
};
use serde_json::json;

/// Runs `script` in a fresh container of `config` and returns its log's text (waits for the exit).
async fn output(node: &Node, pod: &(String, PodConfig), config: CtrConfig) -> String {
    let d = &node.daemon;
    let id = d.run_container(&pod.0, &pod.1, &config).await;
    let s = d
        .wait_container(&id, cri::ContainerState::ContainerExited)
        .await;
    let text: Vec<String> = log_lines(&s.log_path).into_iter().map(|l| l.2).collect();
    assert_eq!(s.exit_code, 0, "{config:?} failed: {text:?}");
    text.join("\n")
}

#[tokio::test]
async fn entrypoint_and_cmd_merge_by_the_docker_rules() {
    let node = Node::start().await;
    let image = node
        .image(
            ImageBuilder::busybox()
                .config("Entrypoint", json!(["echo", "from-entrypoint"]))
                .config("Cmd", json!(["from-cmd"])),
            "entry",
        )
        .await;
    let pod = node.pod("merge").await;
    assert_eq!(
        output(&node, &pod, CtrConfig::new("a", &image)).await,
        "from-entrypoint from-cmd"
    );
    assert_eq!(
        output(&node, &pod, CtrConfig::new("b", &image).args(&["args"])).await,
        "from-entrypoint args"
    );
    assert_eq!(
        output(
            &node,
            &pod,
            CtrConfig::new("c", &image).command(&["echo", "command"])
        )
        .await,
        "command"
    );
    assert_eq!(
        output(
            &node,
            &pod,
            CtrConfig::new("d", &image)
                .command(&["echo"])
                .args(&["x", "y"])
        )
        .await,
        "x y"
    );
}

#[tokio::test]
async fn env_and_working_dir_come_from_image_then_config() {
    let node = Node::start().await;
    let image = node
        .image(
            ImageBuilder::busybox()
                .config("Env", json!(["PATH=/bin", "A=image", "B=image"]))
                .config("WorkingDir", json!("/tmp")),
            "envs",
        )
        .await;
    let pod = node.pod("env").await;
    let script = "echo $A $B $HOSTNAME; pwd";
    let c = CtrConfig::new("e", &image).sh(script).env("A", "config");
    assert_eq!(output(&node, &pod, c).await, "config image env\n/tmp");
    // Values that are not UTF-8 (a binary Secret) reach the process byte for byte, beside the
    // others, and the process is the one the config names.
    let raw = CtrConfig::new("raw", &image)
        .sh("printf '%s' \"$RAW\" | od -An -tx1; echo $A $HOSTNAME; tr '\\0' ' ' < /proc/1/cmdline; true")
        .env_bytes("RAW", b"f\xff\xfeo\n")
        .env("A", "config");
    let text = output(&node, &pod, raw).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["66", "ff", "fe", "6f", "0a"],
        "{text}"
    );
    assert_eq!(lines[1], "config env", "{text}");
    assert!(lines[2].starts_with("sh -c printf"), "{text}");
    let c = CtrConfig::new("w", &image).sh("pwd").working_dir("/home");
    assert_eq!(output(&node, &pod, c).await, "/home");
}

#[tokio::test]
async fn users_groups_and_their_errors() {
    let node = Node::start().await;
    let numeric = node
        .image(
            ImageBuilder::busybox().config("User", json!("1000:50")),
            "numeric",
        )
        .await;
    let pod = node.pod("users").await;
    let ids = "echo $(id -u) $(id -g) $(id -G)";
    let by_uid = node
        .container("uid")
        .sh(ids)
        .security(|s| s.run_as_user = Some(cri::Int64Value { value: 1000 }));
    assert_eq!(output(&node, &pod, by_uid).await, "1000 1000 1000 29 100");
    let by_name = node
        .container("name")
        .sh(ids)
        .security(|s| s.run_as_username = "www-data".into());
    assert_eq!(output(&node, &pod, by_name).await, "33 33 33 100");
    assert_eq!(
        output(&node, &pod, CtrConfig::new("image-user", &numeric).sh(ids)).await,
        "1000 50 50 29 100"
    );
    let merged = node.container("merged").sh(ids).security(|s| {
        s.run_as_user = Some(cri::Int64Value { value: 1000 });
        s.run_as_group = Some(cri::Int64Value { value: 1234 });
        s.supplemental_groups = vec![5000];
    });
    assert_eq!(
        output(&node, &pod, merged).await,
        "1000 1234 1234 29 100 5000"
    );
    let strict = node.container("strict").sh(ids).security(|s| {
        s.run_as_user = Some(cri::Int64Value { value: 1000 });
        s.supplemental_groups = vec![5000];
        s.supplemental_groups_policy = cri::SupplementalGroupsPolicy::Strict as i32;
    });
    assert_eq!(output(&node, &pod, strict).await, "1000 1000 1000 5000");

    let d = &node.daemon;
    let id = d
        .run_container(
            &pod.0,
            &pod.1,
            &node
                .container("status")
                .sh("sleep 100")
                .security(|s| s.run_as_username = "berth".into()),
        )
        .await;
    let user = d
        .container_status(&id)
        .await
        .unwrap()
        .0
        .user
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(
        (user.uid, user.gid, user.supplemental_groups),
        (1000, 1000, vec![1000, 29, 100])
    );

    let group_only = node
        .container("group-only")
        .sh("true")
        .security(|s| s.run_as_group = Some(cri::Int64Value { value: 5 }));
    let err = d
        .create_container(&pod.0, &pod.1, &group_only)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let unknown = node
        .container("unknown")
        .sh("true")
        .security(|s| s.run_as_username = "nobody-here".into());
    assert_eq!(
        d.create_container(&pod.0, &pod.1, &unknown)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::InvalidArgument
    );
}

fn cap_eff(text: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).unwrap()
}

#[tokio::test]
async fn capabilities_default_add_drop_and_all() {
    let node = Node::start().await;
    let pod = node.pod("caps").await;
    let status = "cat /proc/self/status";
    let default = cap_eff(&output(&node, &pod, node.container("default").sh(status)).await);
    assert_eq!(default, 0xa80425fb, "the usual default set");
    let ping = "busybox ping -c 1 -W 2 127.0.0.1 >/dev/null && echo pinged";
    assert_eq!(
        output(&node, &pod, node.container("ping").sh(ping)).await,
        "pinged"
    );
    let no_raw = node
        .container("no-raw")
        .sh(&format!("{ping} || echo refused"))
        .security(|s| {
            s.capabilities = Some(cri::Capability {
                drop_capabilities: vec!["NET_RAW".into()],
                ..cri::Capability::default()
            })
        });
    assert!(
        output(&node, &pod, no_raw).await.ends_with("refused"),
        "dropping NET_RAW makes ping fail"
    );
    let only_admin = node.container("only-admin").sh(status).security(|s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["ALL".into()],
            ..cri::Capability::default()
        })
    });
    assert_eq!(cap_eff(&output(&node, &pod, only_admin).await), 1 << 12);
    let all = node.container("all").sh(status).security(|s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["ALL".into()],
            ..cri::Capability::default()
        })
    });
    assert_eq!(cap_eff(&output(&node, &pod, all).await), own_bounding_set());
}

/// What the node lets root have (this one withholds CAP_SYS_RESOURCE): privileged and `ALL`
/// containers get exactly that.
fn own_bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    u64::from_str_radix(line["CapBnd:".len()..].trim(), 16).unwrap()
}

#[tokio::test]
async fn privileged_containers_get_everything_in_privileged_pods_only() {
    let node = Node::start().await;
    let pod = node.pod_with(PodConfig::new("priv").privileged()).await;
    let script =
        "grep -E 'CapEff|Seccomp:' /proc/self/status; ls /dev/kmsg; wc -c < /proc/timer_list";
    let text = output(
        &node,
        &pod,
        node.container("root")
            .sh(script)
            .security(|s| s.privileged = true),
    )
    .await;
    assert_eq!(cap_eff(&text), own_bounding_set());
    assert!(text.contains("Seccomp:\t0"), "{text}");
    assert!(text.contains("/dev/kmsg"), "host devices: {text}");
    assert!(!text.ends_with("\n0"), "nothing masked: {text}");

    let plain = node.pod("plain").await;
    let err = node
        .daemon
        .create_container(
            &plain.0,
            &plain.1,
            &node
                .container("root")
                .sh("true")
                .security(|s| s.privileged = true),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn read_only_rootfs_masked_and_read_only_paths() {
    let node = Node::start().await;
    let pod = node.pod("ro").await;
    let ro = node
        .container("ro")
        .sh("touch /x 2>&1 || true; touch /tmp/x 2>&1 || true")
        .security(|s| s.readonly_rootfs = true);
    let text = output(&node, &pod, ro).await;
    assert!(text.matches("Read-only file system").count() == 2, "{text}");
    // What kubelet sends for the Default proc mount is applied; for Unmasked it sends nothing,
    // and nothing is masked.
    let masked = "wc -c < /proc/timer_list; (echo 1 > /proc/sys/vm/drop_caches) 2>&1 || true";
    let default = node.container("masked").sh(masked).default_proc_mount();
    let text = output(&node, &pod, default).await;
    assert!(
        text.starts_with('0') && text.contains("Read-only file system"),
        "{text}"
    );
    let probe = "wc -c < /proc/timer_list; grep -c ' /proc/sys ro,' /proc/self/mountinfo || true";
    let text = output(&node, &pod, node.container("unmasked").sh(probe)).await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0] != "0" && lines[1] == "0",
        "Unmasked: /proc/timer_list readable and /proc/sys writable: {text}"
    );
    let custom = node
        .container("custom")
        .sh("wc -c < /etc/passwd")
        .security(|s| {
            s.masked_paths = vec!["/etc/passwd".into()];
            s.readonly_paths = vec!["/tmp".into()];
        });
    assert_eq!(output(&node, &pod, custom).await, "0");
}

#[tokio::test]
async fn seccomp_runtime_default_unconfined_and_localhost() {
    let node = Node::start().await;
    let pod = node.pod("seccomp").await;
    use cri::security_profile::ProfileType;
    let profile = |kind: ProfileType, path: &str| {
        let path = path.to_owned();
        move |s: &mut cri::LinuxContainerSecurityContext| {
            s.seccomp = Some(cri::SecurityProfile {
                profile_type: kind as i32,
                localhost_ref: path,
            })
        }
    };
    let check = "grep Seccomp: /proc/self/status; unshare -n true 2>&1 || echo unshare refused";
    let text = output(
        &node,
        &pod,
        node.container("default")
            .sh(check)
            .security(profile(ProfileType::RuntimeDefault, "")),
    )
    .await;
    assert!(
        text.starts_with("Seccomp:\t2") && text.ends_with("unshare refused"),
        "{text}"
    );
    let text = output(
        &node,
        &pod,
        node.container("none")
            .sh(check)
            .security(profile(ProfileType::Unconfined, "")),
    )
    .await;
    assert!(text.starts_with("Seccomp:\t0"), "{text}");

    let file = node.daemon.dir().join("no-mkdir.json");
    let denied = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    });
    std::fs::write(&file, denied.to_string()).unwrap();
    let local = node
        .container("local")
        .sh("mkdir /tmp/d 2>&1 || echo mkdir refused")
        .security(profile(ProfileType::Localhost, file.to_str().unwrap()));
    assert!(output(&node, &pod, local).await.ends_with("mkdir refused"));
}

#[tokio::test]
async fn no_new_privs_keeps_a_setuid_binary_from_raising_privileges() {
    let node = Node::start().await;
    let image = node.setuid_probe_image().await;
    let pod = node.pod("nnp").await;
    let script = "grep NoNewPrivs /proc/self/status; /usr/local/bin/probe";
    let as_user = |s: &mut cri::LinuxContainerSecurityContext| {
        s.run_as_user = Some(cri::Int64Value { value: 1000 })
    };
    let without = output(
        &node,
        &pod,
        CtrConfig::new("without", &image)
            .sh(script)
            .security(as_user),
    )
    .await;
    assert!(
        without.contains("NoNewPrivs:\t0") && without.contains("uid=1000 euid=0"),
        "{without}"
    );
    let with = output(
        &node,
        &pod,
        CtrConfig::new("with", &image).sh(script).security(|s| {
            as_user(s);
            s.no_new_privs = true;
        }),
    )
    .await;
    assert!(
        with.contains("NoNewPrivs:\t1") && with.contains("uid=1000 euid=1000"),
        "{with}"
    );
}

#[tokio::test]
async fn apparmor_profiles_that_cannot_apply_are_refused() {
    let node = Node::start().await;
    let pod = node.pod("aa").await;
    let named = node.container("named").sh("true").security(|s| {
        s.apparmor = Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Localhost as i32,
            localhost_ref: "k8s-nginx".into(),
        })
    });
    let err = node
        .daemon
        .create_container(&pod.0, &pod.1, &named)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("AppArmor"), "{err:?}");
    let default = node.container("default").sh("true").security(|s| {
        s.apparmor = Some(cri::SecurityProfile::default());
    });
    output(&node, &pod, default).await;
}

#[tokio::test]
async fn mounts_with_each_propagation() {
    let node = Node::start().await;
    let d = &node.daemon;
    let pod = node.pod("mounts").await;
    let host = d.dir().join("volumes");
    for sub in ["rw", "ro", "slave", "shared"] {
        std::fs::create_dir_all(host.join(sub)).unwrap();
    }
    std::fs::write(host.join("rw/hello"), "from the host\n").unwrap();
    std::os::unix::fs::symlink(host.join("rw"), host.join("link")).unwrap();
    let p = |x: &str| host.join(x).to_str().unwrap().to_owned();
    use cri::MountPropagation as P;
    let priv_pod = node
        .pod_with(PodConfig::new("mounts-priv").privileged())
        .await;
    let c = node
        .container("vols")
        .sh("cat /rw/hello; echo written > /rw/out; (echo x > /ro/out) 2>&1 || true; mount -t tmpfs none /shared/inner && echo mounted; sleep 1000")
        .mount(&p("link"), "/rw", false, P::PropagationPrivate)
        .mount(&p("ro"), "/ro", true, P::PropagationPrivate)
        .mount(&p("slave"), "/slave", false, P::PropagationHostToContainer)
        .mount(&p("shared"), "/shared", false, P::PropagationBidirectional)
        .security(|s| s.privileged = true);
    std::fs::create_dir_all(host.join("shared/inner")).unwrap();
    let id = d.run_container(&priv_pod.0, &priv_pod.1, &c).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    berth_testkit::wait_until(
        "the container's mounts",
        std::time::Duration::from_secs(10),
        || async {
            log_lines(&log)
                .iter()
                .any(|l| l.2 == "mounted")
                .then_some(())
        },
    )
    .await;
    let text: Vec<String> = log_lines(&log).into_iter().map(|l| l.2).collect();
    assert_eq!(text[0], "from the host");
    assert!(text[1].contains("Read-only file system"), "{text:?}");
    assert_eq!(
        std::fs::read_to_string(host.join("rw/out")).unwrap(),
        "written\n"
    );

    // Bidirectional: the container's mount appears on the host.
    assert!(berth_testkit::mounts_under(&host.join("shared")).contains(&host.join("shared/inner")));
    // HostToContainer: a host mount made now appears in the container.
    std::fs::create_dir_all(host.join("slave/late")).unwrap();
    let late = std::ffi::CString::new("size=1m").unwrap();
    rustix::mount::mount(
        "tmpfs",
        host.join("slave/late"),
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(late.as_c_str()),
    )
    .unwrap();
    let seen = d
        .sh(&id, "grep -c ' /slave/late ' /proc/self/mountinfo")
        .await;
    rustix::mount::unmount(host.join("slave/late"), rustix::mount::UnmountFlags::DETACH).unwrap();
    rustix::mount::unmount(
        host.join("shared/inner"),
        rustix::mount::UnmountFlags::DETACH,
    )
    .unwrap();
    assert_eq!(seen, "1");

    let mounts = d.container_status(&id).await.unwrap().0.mounts;
    let by_path = |c: &str| {
        mounts
            .iter()
            .find(|m| m.container_path == c)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_path("/rw").host_path,
        std::fs::canonicalize(host.join("rw"))
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert!(by_path("/ro").readonly);
    assert_eq!(
        by_path("/slave").propagation,
        P::PropagationHostToContainer as i32
    );
    assert_eq!(
        by_path("/shared").propagation,
        P::PropagationBidirectional as i32
    );
    let _ = pod;
}

#[tokio::test]
async fn pid_namespaces_pod_node_and_target() {
    let node = Node::start().await;
    let d = &node.daemon;
    let shared = node.pod_with(PodConfig::new("shared").shared_pid()).await;
    let a = d
        .run_container(&shared.0, &shared.1, &node.container("a").sh("sleep 1001"))
        .await;
    let b = d
        .run_container(&shared.0, &shared.1, &node.container("b").sh("sleep 1002"))
        .await;
    let ps = d.sh(&b, "ps -o pid,args").await;
    assert!(
        ps.contains("    1 berth-infra init") && ps.contains("sleep 1001"),
        "{ps}"
    );
    let _ = a;

    let own = node.pod("own").await;
    let target = d
        .run_container(&own.0, &own.1, &node.container("target").sh("sleep 1003"))
        .await;
    let joiner = node.container("joiner").sh("sleep 1004").security(|s| {
        s.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Target as i32,
            target_id: target.clone(),
            ..cri::NamespaceOption::default()
        })
    });
    let j = d.run_container(&own.0, &own.1, &joiner).await;
    let ps = d.sh(&j, "ps -o args").await;
    assert!(ps.contains("sleep 1003"), "{ps}");
    let alone = d.sh(&target, "ps -o args").await;
    assert!(!alone.contains("sleep 1001"));

    let host = node.container("host-pid").sh("sleep 1005").security(|s| {
        s.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Node as i32,
            ..cri::NamespaceOption::default()
        })
    });
    let h = d.run_container(&own.0, &own.1, &host).await;
    assert!(
        d.sh(&h, "ps -o args").await.contains("sleep 1001"),
        "the node's processes are visible"
    );
}

#[tokio::test]
async fn pod_files_devices_and_oom_score() {
    let node = Node::start().await;
    let pod = node
        .pod_with(PodConfig::new("files").dns(&["10.96.0.10"], &["svc.cluster.local"], &[]))
        .await;
    let mut c = node
        .container("files")
        .sh("cat /etc/hostname /etc/resolv.conf; ls -l /dev/mynull; cat /proc/self/oom_score_adj")
        .resources(|r| r.oom_score_adj = -998);
    c.0.devices.push(cri::Device {
        container_path: "/dev/mynull".into(),
        host_path: "/dev/null".into(),
        permissions: "rwm".into(),
    });
    let text = output(&node, &pod, c).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "files");
    assert!(
        text.contains("nameserver 10.96.0.10") && text.contains("search svc.cluster.local"),
        "{text}"
    );
    assert!(
        text.contains("1,   3") && text.contains("/dev/mynull"),
        "{text}"
    );
    let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let got: i64 = lines.last().unwrap().parse().unwrap();
    assert!(
        got == -998 || got >= own.min(0),
        "refused negative scores are clamped, not failed: {got}"
    );
}

#[tokio::test]
async fn image_volumes_are_read_only_confined_and_kept_while_used() {
    let node = Node::start().await;
    let d = &node.daemon;
    let one_layer = node
        .image(
            ImageBuilder::new().layer(
                LayerBuilder::new()
                    .file("greeting", b"hello from an image\n")
                    .tar(),
                Compression::Gzip,
            ),
            "volume-one",
        )
        .await;
    let two_layers = node
        .image(
            ImageBuilder::new()
                .layer(
                    LayerBuilder::new()
                        .file("data/first", b"first layer\n")
                        .symlink("escape", "/etc")
                        .symlink("climb", "../../../../../../etc")
                        .tar(),
                    Compression::Gzip,
                )
                .layer(
                    LayerBuilder::new()
                        .file("data/second", b"second layer\n")
                        .tar(),
                    Compression::Gzip,
                ),
            "volume-two",
        )
        .await;
    let pod = node.pod("image-volumes").await;
    let c = node
        .container("reader")
        .sh("cat /one /vol/data/first /sub/second; (echo x > /vol/new) 2>&1 || true; sleep 1000")
        .image_mount(&one_layer, "greeting", "/one")
        .image_mount(&two_layers, "", "/vol")
        .image_mount(&two_layers, "data", "/sub");
    let id = d.run_container(&pod.0, &pod.1, &c).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    let text = berth_testkit::wait_until(
        "the image volumes' files",
        std::time::Duration::from_secs(10),
        || async {
            let text: Vec<String> = log_lines(&log).into_iter().map(|l| l.2).collect();
            (text.len() >= 4).then_some(text)
        },
    )
    .await;
    assert_eq!(
        text[..3],
        ["hello from an image", "first layer", "second layer"]
    );
    assert!(text[3].contains("Read-only file system"), "{text:?}");
    let status = d.container_status(&id).await.unwrap().0;
    let sub = status
        .mounts
        .iter()
        .find(|m| m.container_path == "/sub")
        .unwrap();
    assert_eq!(sub.image.as_ref().unwrap().image, two_layers);
    let (two_layers_image, _) = d.clients().await.image_status(&two_layers).await.unwrap();
    assert_eq!(sub.image.as_ref().unwrap().image_ref, two_layers_image.id);
    assert_eq!(sub.image_sub_path, "data");
    assert!(sub.readonly);

    // Sub-paths stay inside the image, however its symlinks point.
    for sub_path in [
        "escape/passwd",
        "climb/passwd",
        "../../../../etc",
        "missing",
    ] {
        let c = node
            .container(&format!("bad-{}", sub_path.len()))
            .image_mount(&two_layers, sub_path, "/vol");
        let err = d.create_container(&pod.0, &pod.1, &c).await.unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "{sub_path}: {err:?}"
        );
        assert!(err.message().contains("image_sub_path"), "{err:?}");
    }
    let both = node.container("both").image_mount(&two_layers, "", "/vol");
    let mut both = both;
    both.0.mounts[0].host_path = "/tmp".into();
    let err = d.create_container(&pod.0, &pod.1, &both).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let containers = d.root.join("containers");
    let mounted = berth_testkit::mounts_under(&containers);
    assert_eq!(
        mounted.iter().filter(|m| m.ends_with("rootfs")).count(),
        1,
        "refused creates leave no mounts: {mounted:?}"
    );

    // A removed image's snapshots stay while a container mounts them, and go with it.
    let mut clients = d.clients().await;
    let (_, info) = clients.image_status(&two_layers).await.unwrap();
    let snapshots = d.snapshot_dirs(&info);
    clients.remove_image(&two_layers).await.unwrap();
    assert_eq!(d.sh(&id, "cat /sub/second").await, "second layer");
    d.stop_container(&id, 0).await.unwrap();
    d.remove_container(&id).await.unwrap();
    assert!(berth_testkit::mounts_under(&containers).is_empty());
    berth_testkit::wait_until(
        "the removed image's snapshots reclaimed",
        std::time::Duration::from_secs(10),
        || async { snapshots.iter().all(|s| !s.exists()).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn user_namespace_pods_own_their_files_through_idmapped_mounts() {
    let node = Node::start().await;
    let d = &node.daemon;
    let status = d
        .clients()
        .await
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    let runc = status
        .runtime_handlers
        .iter()
        .find(|h| h.name == "runc")
        .unwrap();
    assert!(runc.features.unwrap().user_namespaces, "{runc:?}");

    let host = d.dir().join("userns-volume");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "root's on the node\n").unwrap();
    // The PID namespace of the pod's infra process belongs to the user namespace too.
    let pod = node
        .pod_with(
            PodConfig::new("userns")
                .shared_pid()
                .user_namespace(300_000, 65536),
        )
        .await;
    let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; \
                  stat -c %u:%g /bin/busybox /etc/hostname /vol/from-host; \
                  echo written > /made-inside && stat -c %u /made-inside; \
                  echo volume > /vol/from-container && echo wrote-volume; \
                  sleep 1000";
    let mut c = node.container("inside").sh(script).mount(
        host.to_str().unwrap(),
        "/vol",
        false,
        cri::MountPropagation::PropagationPrivate,
    );
    c.0.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = pod.1.namespace_options();
    let id = d.run_container(&pod.0, &pod.1, &c).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    let text = berth_testkit::wait_until(
        "the user namespace container's report",
        std::time::Duration::from_secs(10),
        || async {
            let text: Vec<String> = log_lines(&log).into_iter().map(|l| l.2).collect();
            text.iter().any(|l| l == "wrote-volume").then_some(text)
        },
    )
    .await;
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(words(&text[0]), "0 300000 65536", "{text:?}");
    assert_eq!(words(&text[1]), "0 300000 65536", "{text:?}");
    assert_eq!(
        text[2..7],
        ["0", "0:0", "0:0", "0:0", "0"],
        "the container's root owns its image, its pod's files and the volume: {text:?}"
    );
    // On the node, the container's root is uid 300000, and what it writes is that user's, but
    // in the volume (seen through the mapping) the node's root's.
    let pid = d.container_status(&id).await.unwrap().1["pid"].clone();
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(words(uid_line), "Uid: 300000 300000 300000 300000");
    let upper = d.root.join("containers").join(&id).join("upper");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(upper.join("made-inside")).unwrap()),
        300_000
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(host.join("from-container")).unwrap()
        ),
        0
    );
    let pod_status = d.pod_status(&pod.0).await.unwrap().0;
    let userns = pod_status
        .linux
        .unwrap()
        .namespaces
        .unwrap()
        .options
        .unwrap()
        .userns_options
        .unwrap();
    assert_eq!(userns.mode, cri::NamespaceMode::Pod as i32);
    assert_eq!(userns.uids[0].host_id, 300_000);

    // Removal leaves nothing mounted.
    d.stop_container(&id, 0).await.unwrap();
    d.remove_container(&id).await.unwrap();
    assert!(berth_testkit::mounts_under(&d.root.join("containers")).is_empty());
}

#[tokio::test]
async fn user_namespaces_that_cannot_be_made_are_invalid_arguments() {
    let node = Node::start().await;
    let d = &node.daemon;
    let range = |container_id, host_id| cri::IdMapping {
        container_id,
        host_id,
        length: 65536,
    };
    use cri::NamespaceMode as M;
    let cases = [
        (
            "two-ranges",
            M::Pod,
            vec![range(0, 300_000), range(0, 400_000)],
        ),
        ("no-root", M::Pod, vec![range(1, 300_000)]),
        ("no-ranges", M::Pod, vec![]),
        ("container", M::Container, vec![]),
        ("target", M::Target, vec![]),
    ];
    for (name, mode, ranges) in cases {
        let config = PodConfig::new(name).userns_options(cri::UserNamespace {
            mode: mode as i32,
            uids: ranges.clone(),
            gids: ranges,
        });
        let err = d.run_pod(&config).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{name}: {err:?}");
        assert!(err.message().contains("userns_options"), "{name}: {err:?}");
    }
    let host_net = PodConfig::new("host-net")
        .host_network()
        .user_namespace(300_000, 65536);
    let err = d.run_pod(&host_net).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        std::fs::read_dir(d.state_dir.join("pods")).map_or(true, |mut e| e.next().is_none()),
        "refused pods leave nothing"
    );

    // A container names its pod's user namespace or none.
    let pod = node
        .pod_with(PodConfig::new("mapped").user_namespace(300_000, 65536))
        .await;
    let mut c = node.container("elsewhere").sh("true");
    c.0.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(cri::NamespaceOption {
        userns_options: Some(cri::UserNamespace {
            mode: M::Node as i32,
            ..cri::UserNamespace::default()
        }),
        ..cri::NamespaceOption::default()
    });
    let err = d.create_container(&pod.0, &pod.1, &c).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn recursive_read_only_mounts_reach_every_submount() {
    let node = Node::start().await;
    let d = &node.daemon;
    let pod = node.pod("rro").await;
    let host = d.dir().join("rro");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    let size = std::ffi::CString::new("size=1m").unwrap();
    rustix::mount::mount(
        "tmpfs",
        host.join("sub"),
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(size.as_c_str()),
    )
    .unwrap();
    let path = host.to_str().unwrap();
    let mut c = node
        .container("writer")
        .sh("(touch /rro/sub/x) 2>&1 || true; touch /ro/sub/y && echo plain-read-only-submount-written")
        .mount(path, "/rro", true, cri::MountPropagation::PropagationPrivate)
        .mount(path, "/ro", true, cri::MountPropagation::PropagationPrivate);
    c.0.mounts[0].recursive_read_only = true;
    let id = d.run_container(&pod.0, &pod.1, &c).await;
    let s = d
        .wait_container(&id, cri::ContainerState::ContainerExited)
        .await;
    let text: Vec<String> = log_lines(&s.log_path).into_iter().map(|l| l.2).collect();
    rustix::mount::unmount(host.join("sub"), rustix::mount::UnmountFlags::DETACH).unwrap();
    assert!(text[0].contains("Read-only file system"), "{text:?}");
    assert_eq!(text[1], "plain-read-only-submount-written", "{text:?}");
    let reported = d.container_status(&id).await.unwrap().0.mounts;
    let rro = reported
        .iter()
        .find(|m| m.container_path == "/rro")
        .unwrap();
    assert!(rro.recursive_read_only && rro.readonly, "{rro:?}");

    // recursive_read_only needs readonly and private propagation, as the CRI says.
    for (name, readonly, propagation) in [
        ("writable", false, cri::MountPropagation::PropagationPrivate),
        (
            "slave",
            true,
            cri::MountPropagation::PropagationHostToContainer,
        ),
    ] {
        let mut c = node
            .container(name)
            .sh("true")
            .mount(path, "/rro", readonly, propagation);
        c.0.mounts[0].recursive_read_only = true;
        let err = d.create_container(&pod.0, &pod.1, &c).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{name}: {err:?}");
        assert!(err.message().contains("recursive_read_only"), "{err:?}");
    }
}

#[tokio::test]
async fn account_files_that_are_fifos_or_devices_are_refused_and_the_daemon_keeps_answering() {
    let node = Node::start().await;
    let d = &node.daemon;
    let fifo = node
        .image(
            ImageBuilder::busybox()
                .layer(
                    LayerBuilder::new()
                        .whiteout("etc", "passwd")
                        .whiteout("etc", "group")
                        .tar(),
                    Compression::Gzip,
                )
                .layer(
                    LayerBuilder::new()
                        .fifo("etc/passwd")
                        .fifo("etc/group")
                        .tar(),
                    Compression::Gzip,
                ),
            "fifo-accounts",
        )
        .await;
    // /dev/zero of the node: a read never ends.
    let device = node
        .image(
            ImageBuilder::busybox()
                .layer(
                    LayerBuilder::new().whiteout("etc", "passwd").tar(),
                    Compression::Gzip,
                )
                .layer(
                    LayerBuilder::new().char_device("etc/passwd", 1, 5).tar(),
                    Compression::Gzip,
                ),
            "device-accounts",
        )
        .await;
    let pod = node.pod("hostile-accounts").await;
    // More creates at once than the daemon has async workers.
    let mut creates = tokio::task::JoinSet::new();
    for n in 0..8 {
        let image = if n % 2 == 0 { &fifo } else { &device };
        let c = CtrConfig::new(&format!("by-name-{n}"), image)
            .sh("true")
            .security(|s| s.run_as_username = "berth".into());
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: pod.0.clone(),
            config: Some(c.0),
            sandbox_config: Some(pod.1.0.clone()),
        };
        let mut runtime = d.clients().await.runtime;
        creates.spawn(async move { runtime.create_container(request).await });
    }
    let answered = tokio::time::timeout(std::time::Duration::from_secs(30), creates.join_all())
        .await
        .expect("every create answers");
    for result in answered {
        let err = result.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("/etc/passwd is not a regular file"),
            "{err:?}"
        );
    }
    let version = d
        .clients()
        .await
        .runtime
        .version(cri::VersionRequest::default())
        .await;
    assert!(version.is_ok());
}

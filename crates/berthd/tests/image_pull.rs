//! Pulling every manifest and layer type from a real registry, and what the unpacked image holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;

use berth_testkit::{
    Compression, Format, ImageBuilder, LayerBuilder, MergedRoot, Registry, TestDaemon, push_index,
};
use serde_json::json;

/// A daemon whose `registry.k8s.io` is mirrored by `registry`.
async fn daemon_mirroring(registry: &Registry) -> TestDaemon {
    TestDaemon::builder()
        .config(&format!(
            "[registries.\"registry.k8s.io\"]\nmirrors = [\"{}\"]",
            registry.url()
        ))
        .start()
        .await
}

#[tokio::test]
async fn busybox_pulls_through_a_mirror_and_unpacks_whole() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .push(&registry, "e2e-test-images/busybox", &["1.29-2"])
        .await;
    let d = daemon_mirroring(&registry).await;
    let mut c = d.clients().await;
    let reference = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
    let id = c.pull(reference).await.unwrap();
    assert_eq!(id, pushed.id);

    let images = c.list_images().await;
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, pushed.id);
    assert_eq!(images[0].repo_tags, [reference]);
    assert_eq!(
        images[0].repo_digests,
        [format!(
            "registry.k8s.io/e2e-test-images/busybox@{}",
            pushed.manifest_digest
        )]
    );
    assert!(images[0].size > 500_000, "size {}", images[0].size);

    let (_, info) = c.image_status(reference).await.unwrap();
    let fs = &d.snapshot_dirs(&info)[0];
    assert_eq!(
        std::fs::read(fs.join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        std::fs::read_link(fs.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let tmp = std::fs::metadata(fs.join("tmp")).unwrap();
    assert_eq!(tmp.mode() & 0o7777, 0o1777);
    assert_eq!(info["imageSpec"]["config"]["Cmd"], json!(["sh"]));
}

#[tokio::test]
async fn deleted_files_and_opaque_dirs_apply_when_layers_stack() {
    let registry = Registry::start().await;
    let upper = LayerBuilder::new()
        .dir("etc", 0o755)
        .whiteout("etc", "group")
        .dir("var/www", 0o755)
        .opaque("var/www")
        .file("var/www/index.html", b"new")
        .tar();
    let base = LayerBuilder::busybox()
        .file("var/www/old.html", b"old")
        .tar();
    ImageBuilder::new()
        .layer(base, Compression::Gzip)
        .layer(upper, Compression::Gzip)
        .push(&registry, "layered", &["v1"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let reference = format!("{}/layered:v1", registry.host());
    c.pull(&reference).await.unwrap();
    let (_, info) = c.image_status(&reference).await.unwrap();
    let root = MergedRoot::mount(&d.snapshot_dirs(&info));
    assert!(
        !root.join("etc/group").exists(),
        "whiteout hides the lower file"
    );
    assert!(root.join("etc/passwd").exists());
    assert!(
        !root.join("var/www/old.html").exists(),
        "opaque dir hides the lower dir"
    );
    assert_eq!(
        std::fs::read(root.join("var/www/index.html")).unwrap(),
        b"new"
    );
}

#[tokio::test]
async fn zstd_and_uncompressed_layers_pull() {
    let registry = Registry::start().await;
    ImageBuilder::new()
        .layer(LayerBuilder::busybox().tar(), Compression::Zstd)
        .layer(
            LayerBuilder::new().file("plain.txt", b"plain").tar(),
            Compression::None,
        )
        .push(&registry, "mixed", &["v1"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let reference = format!("{}/mixed:v1", registry.host());
    c.pull(&reference).await.unwrap();
    let (_, info) = c.image_status(&reference).await.unwrap();
    let dirs = d.snapshot_dirs(&info);
    assert_eq!(std::fs::read(dirs[0].join("plain.txt")).unwrap(), b"plain");
    assert!(dirs[1].join("bin/busybox").exists());
}

#[tokio::test]
async fn an_oci_index_resolves_to_this_nodes_platform() {
    let registry = Registry::start().await;
    let marker = |which: &[u8]| LayerBuilder::new().file("platform", which).tar();
    let arm = ImageBuilder::new()
        .architecture("arm64")
        .layer(marker(b"arm64"), Compression::Gzip)
        .push(&registry, "multi", &[])
        .await;
    let amd = ImageBuilder::new()
        .layer(marker(b"amd64"), Compression::Gzip)
        .push(&registry, "multi", &[])
        .await;
    let index = push_index(
        &registry,
        "multi",
        "v1",
        Format::Oci,
        &[(&arm, "arm64", Some("v8")), (&amd, "amd64", None)],
    )
    .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let reference = format!("{}/multi:v1", registry.host());
    assert_eq!(c.pull(&reference).await.unwrap(), amd.id);
    let (image, info) = c.image_status(&reference).await.unwrap();
    assert_eq!(
        image.repo_digests,
        [format!("{}/multi@{index}", registry.host())],
        "the index digest"
    );
    assert_eq!(
        std::fs::read(d.snapshot_dirs(&info)[0].join("platform")).unwrap(),
        b"amd64"
    );
}

#[tokio::test]
async fn docker_schema2_manifests_and_lists_pull() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .format(Format::Docker)
        .push(&registry, "docker-format", &["v1"])
        .await;
    push_index(
        &registry,
        "docker-format",
        "list",
        Format::Docker,
        &[(&pushed, "amd64", None)],
    )
    .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    assert_eq!(
        c.pull(&format!("{}/docker-format:v1", registry.host()))
            .await
            .unwrap(),
        pushed.id
    );
    assert_eq!(
        c.pull(&format!("{}/docker-format:list", registry.host()))
            .await
            .unwrap(),
        pushed.id
    );
    let images = c.list_images().await;
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags.len(), 2);
}

#[tokio::test]
async fn image_users_are_reported_in_every_form() {
    let registry = Registry::start().await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    for (tag, user, uid, name) in [
        ("numeric", "1000", Some(1000), ""),
        ("numeric-group", "1000:50", Some(1000), ""),
        ("named", "www-data", None, "www-data"),
        ("named-group", "www-data:50", None, "www-data"),
    ] {
        ImageBuilder::busybox()
            .config("User", json!(user))
            .push(&registry, "users", &[tag])
            .await;
        let reference = format!("{}/users:{tag}", registry.host());
        c.pull(&reference).await.unwrap();
        let (image, _) = c.image_status(&reference).await.unwrap();
        assert_eq!(image.uid.map(|u| u.value), uid, "{user}");
        assert_eq!(image.username, name, "{user}");
    }
}

#[tokio::test]
async fn one_image_under_three_tags_answers_to_every_reference() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .push(&registry, "tagged", &["a", "b", "c"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let host = registry.host();
    for tag in ["a", "b", "c"] {
        assert_eq!(
            c.pull(&format!("{host}/tagged:{tag}")).await.unwrap(),
            pushed.id
        );
    }
    let by_id = c.image_status(&pushed.id).await.unwrap().0;
    assert_eq!(by_id.repo_tags.len(), 3);
    let digest_ref = format!("{host}/tagged@{}", pushed.manifest_digest);
    for form in [
        format!("{host}/tagged:a"),
        format!("{host}/tagged:c"),
        digest_ref.clone(),
        pushed.id.trim_start_matches("sha256:").to_owned(),
        pushed.id[..19].to_owned(),
    ] {
        let (image, _) = c
            .image_status(&form)
            .await
            .unwrap_or_else(|| panic!("{form}"));
        assert_eq!(image, by_id, "{form}");
    }
    // A pull by digest adds no tag.
    c.pull(&digest_ref).await.unwrap();
    assert_eq!(c.list_images().await.len(), 1);
    assert_eq!(
        c.image_status(&pushed.id).await.unwrap().0.repo_tags.len(),
        3
    );
}

#[tokio::test]
async fn a_later_layer_writes_through_a_lower_layers_symlink() {
    let registry = Registry::start().await;
    let lower = LayerBuilder::busybox()
        .dir("usr/lib", 0o750)
        .symlink("lib", "usr/lib")
        .tar();
    let upper = LayerBuilder::new()
        .file("lib/x", b"through the symlink")
        .tar();
    ImageBuilder::new()
        .layer(lower, Compression::Gzip)
        .layer(upper, Compression::Gzip)
        .push(&registry, "through", &["v1"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let reference = format!("{}/through:v1", registry.host());
    c.pull(&reference).await.unwrap();
    let (_, info) = c.image_status(&reference).await.unwrap();
    let dirs = d.snapshot_dirs(&info);
    assert_eq!(
        std::fs::read(dirs[0].join("usr/lib/x")).unwrap(),
        b"through the symlink"
    );
    assert!(
        std::fs::symlink_metadata(dirs[0].join("lib")).is_err(),
        "no `lib` dir shadows the symlink"
    );
    let root = MergedRoot::mount(&dirs);
    assert_eq!(
        std::fs::read(root.join("lib/x")).unwrap(),
        b"through the symlink"
    );
    assert_eq!(
        std::fs::metadata(root.join("usr/lib")).unwrap().mode() & 0o777,
        0o750
    );
}

#[tokio::test]
async fn hostile_layers_are_refused_or_confined() {
    let registry = Registry::start().await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let host = registry.host();

    for (tag, layer, entry) in [
        (
            "dotdot",
            LayerBuilder::new()
                .file("../../../escaped-by-berth-test", b"x")
                .tar(),
            "../../../escaped-by-berth-test",
        ),
        (
            "hardlink",
            LayerBuilder::new()
                .hardlink("shadow", "../../../../etc/shadow")
                .tar(),
            "../../../../etc/shadow",
        ),
    ] {
        ImageBuilder::new()
            .layer(layer, Compression::Gzip)
            .push(&registry, "hostile", &[tag])
            .await;
        let err = c.pull(&format!("{host}/hostile:{tag}")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains(entry), "{err:?}");
        assert!(
            c.image_status(&format!("{host}/hostile:{tag}"))
                .await
                .is_none()
        );
    }
    assert!(!std::path::Path::new("/escaped-by-berth-test").exists());

    let marker = format!("berth-test-escape-{}", std::process::id());
    let confined = LayerBuilder::new()
        .file("/absolute-name", b"abs")
        .symlink("to-tmp", "/tmp")
        .file(&format!("to-tmp/{marker}"), b"written through a symlink")
        .tar();
    ImageBuilder::new()
        .layer(confined, Compression::Gzip)
        .push(&registry, "hostile", &["symlink"])
        .await;
    let reference = format!("{host}/hostile:symlink");
    c.pull(&reference).await.unwrap();
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "wrote outside the layer"
    );
    let (_, info) = c.image_status(&reference).await.unwrap();
    let fs = &d.snapshot_dirs(&info)[0];
    assert_eq!(std::fs::read(fs.join("absolute-name")).unwrap(), b"abs");
    assert_eq!(
        std::fs::read(fs.join("tmp").join(&marker)).unwrap(),
        b"written through a symlink"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "refused pulls leave nothing: {leftovers:?}"
    );
}

#[tokio::test]
async fn layers_beyond_the_limits_are_refused_by_name_and_leave_nothing() {
    let registry = Registry::start().await;
    let d = TestDaemon::builder()
        .config("[images]\nmax_layer_size = 8388608\nmax_layer_entries = 100")
        .start()
        .await;
    let mut c = d.clients().await;
    let host = registry.host();
    let many = (0..150).fold(LayerBuilder::new(), |l, n| l.file(&format!("f{n}"), b""));
    for (tag, layer, limit) in [
        (
            "long-name",
            LayerBuilder::new().long_name_header(1 << 30, &[b'a'; 1 << 20]),
            "a tar header body of 1073741824 bytes",
        ),
        (
            "bomb",
            LayerBuilder::new().file("zeros", &vec![0; 20 << 20]),
            "unpacks to more than 8388608 bytes",
        ),
        ("entries", many, "more than 100 entries"),
    ] {
        ImageBuilder::new()
            .layer(layer.tar(), Compression::Gzip)
            .push(&registry, "limits", &[tag])
            .await;
        let reference = format!("{host}/limits:{tag}");
        let err = c.pull(&reference).await.unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::FailedPrecondition,
            "{tag}: {err:?}"
        );
        assert!(err.message().contains(limit), "{tag}: {err:?}");
        assert!(c.image_status(&reference).await.is_none());
    }
    // A manifest past 8 MiB (from a registry that lies: real ones refuse such) is refused.
    let huge = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "annotations": {"padding": "x".repeat(9 << 20)}
    });
    let liar = berth_testkit::LyingRegistry::serving(serde_json::to_vec(&huge).unwrap()).await;
    let err = c
        .pull(&format!("127.0.0.1:{}/limits:huge", liar.port))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("larger than 8388608 bytes"),
        "{err:?}"
    );
    let snapshots: Vec<_> = std::fs::read_dir(d.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        snapshots.is_empty(),
        "refused layers leave nothing: {snapshots:?}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid().unwrap())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    assert!(
        peak_kib < 256 << 10,
        "berthd's peak memory stays bounded: {peak_kib} KiB"
    );
}

//! Where images come from and where they go: mirrors, authentication, failures that leave nothing
//! behind, deadlines, stalls, removal and reclaiming, and a daemon restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{
    Compression, ImageBuilder, LayerBuilder, Registry, StallingServer, TestDaemon, TokenProxy,
    free_port, spec, wait_until,
};
use serde_json::json;

fn basic(user: &str, password: &str) -> Option<cri::AuthConfig> {
    Some(cri::AuthConfig {
        username: user.into(),
        password: password.into(),
        ..cri::AuthConfig::default()
    })
}

/// Names of the snapshot store's entries.
fn snapshot_entries(d: &TestDaemon) -> Vec<String> {
    std::fs::read_dir(d.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn mirrors_are_tried_in_order_then_the_host() {
    let first = Registry::start().await;
    let second = Registry::start().await;
    let host = Registry::start().await;
    let a = ImageBuilder::busybox()
        .config("User", json!("1"))
        .push(&first, "app", &["v1"])
        .await;
    let b = ImageBuilder::busybox()
        .config("User", json!("2"))
        .push(&second, "app", &["v1"])
        .await;
    let h = ImageBuilder::busybox()
        .config("User", json!("3"))
        .push(&host, "app", &["v2"])
        .await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let d = TestDaemon::builder()
        .config(&format!(
            "[registries.\"{}\"]\nmirrors = [\"{dead}\", \"{}\", \"{}\"]",
            host.host(),
            first.url(),
            second.url()
        ))
        .start()
        .await;
    let mut c = d.clients().await;
    // The dead mirror is skipped, the first live one wins over the second.
    assert_eq!(
        c.pull(&format!("{}/app:v1", host.host())).await.unwrap(),
        a.id
    );
    assert_ne!(a.id, b.id);
    // No mirror has v2: the host itself serves it.
    assert_eq!(
        c.pull(&format!("{}/app:v2", host.host())).await.unwrap(),
        h.id
    );
    let err = c
        .pull(&format!("{}/app:v3", host.host()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn basic_auth_succeeds_with_the_right_credentials_only() {
    let registry = Registry::start_with_htpasswd("alice", "wonderland").await;
    ImageBuilder::busybox()
        .push(&registry, "private", &["v1"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let reference = format!("{}/private:v1", registry.host());

    let err = c.pull(&reference).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = c
        .pull_with(&reference, basic("alice", "hunter2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(
        !err.message().contains("hunter2"),
        "credentials never appear in errors"
    );
    assert!(
        !d.log().contains("hunter2"),
        "credentials never appear in logs"
    );

    c.pull_with(&reference, basic("alice", "wonderland"))
        .await
        .unwrap();
    // `auth` (base64 of user:password) works as well.
    let auth = Some(cri::AuthConfig {
        auth: "YWxpY2U6d29uZGVybGFuZA==".into(),
        ..cri::AuthConfig::default()
    });
    c.pull_with(&reference, auth).await.unwrap();
}

#[tokio::test]
async fn configured_credentials_are_used_for_their_host() {
    let registry = Registry::start_with_htpasswd("bob", "builder").await;
    ImageBuilder::busybox()
        .push(&registry, "private", &["v1"])
        .await;
    let d = TestDaemon::builder()
        .config(&format!(
            "[registries.\"{}\"]\nusername = \"bob\"\npassword = \"builder\"",
            registry.host()
        ))
        .start()
        .await;
    let mut c = d.clients().await;
    c.pull(&format!("{}/private:v1", registry.host()))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_bearer_token_flow_fetches_and_uses_a_token() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .push(&registry, "tokened", &["v1"])
        .await;
    let proxy = TokenProxy::start(&registry.url(), "carol", "s3cret").await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let reference = format!("{}/tokened:v1", proxy.host());
    let err = c.pull(&reference).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("token service refused"), "{err:?}");
    assert_eq!(
        c.pull_with(&reference, basic("carol", "s3cret"))
            .await
            .unwrap(),
        pushed.id
    );
    // A registry token is used as is.
    let err = c
        .pull_with(
            &reference,
            Some(cri::AuthConfig {
                registry_token: "not-the-token".into(),
                ..cri::AuthConfig::default()
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_share_one_download() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .push(&registry, "shared", &["v1"])
        .await;
    let proxy = TokenProxy::start(&registry.url(), "u", "p").await;
    let d = TestDaemon::start().await;
    let reference = format!("{}/shared:v1", proxy.host());
    let mut pulls = Vec::new();
    for _ in 0..3 {
        let mut c = d.clients().await;
        let reference = reference.clone();
        pulls.push(tokio::spawn(async move {
            c.pull_with(&reference, basic("u", "p")).await
        }));
    }
    for p in pulls {
        assert_eq!(p.await.unwrap().unwrap(), pushed.id);
    }
    // One layer blob and one config per pull at most: the layer was fetched once.
    let fetches = proxy.blob_fetches.load(Ordering::SeqCst);
    assert!(
        fetches <= 1 + 3,
        "{fetches} blob fetches for 3 pulls of a 1-layer image"
    );
    assert_eq!(d.clients().await.list_images().await.len(), 1);
}

#[tokio::test]
async fn a_layer_that_does_not_match_its_diff_id_fails_and_leaves_nothing() {
    let registry = Registry::start().await;
    let good = ImageBuilder::busybox()
        .push(&registry, "corrupt", &["good"])
        .await;
    // Same config, but a different layer blob under the manifest: its diff ID cannot match.
    let other_layer = berth_testkit::compress(
        &LayerBuilder::new().file("x", b"x").tar(),
        Compression::Gzip,
    );
    let other = registry.push_blob("corrupt", &other_layer).await;
    let config_digest = good.id.clone();
    let config_size = {
        let r = reqwest_get(&format!(
            "{}/v2/corrupt/blobs/{config_digest}",
            registry.url()
        ))
        .await;
        r.len()
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": other, "size": other_layer.len()}],
    });
    registry
        .push_manifest(
            "corrupt",
            "bad",
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let err = c
        .pull(&format!("{}/corrupt:bad", registry.host()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert!(err.message().contains("diff ID"), "{err:?}");
    assert!(c.list_images().await.is_empty());
    assert!(
        snapshot_entries(&d).is_empty(),
        "{:?}",
        snapshot_entries(&d)
    );
}

async fn reqwest_get(url: &str) -> Vec<u8> {
    let out = tokio::process::Command::new("busybox")
        .args(["wget", "-q", "-O", "-", url])
        .output()
        .await
        .unwrap();
    out.stdout
}

#[tokio::test]
async fn a_pull_past_its_deadline_is_deadline_exceeded() {
    let stalling = StallingServer::start().await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let mut req = tonic::Request::new(cri::PullImageRequest {
        image: Some(spec(&format!("127.0.0.1:{}/never:v1", stalling.port))),
        ..cri::PullImageRequest::default()
    });
    req.set_timeout(Duration::from_secs(2));
    let err = c.image.pull_image(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(snapshot_entries(&d).is_empty());
}

#[tokio::test]
async fn a_stalled_transfer_is_aborted_with_a_clear_error() {
    let stalling = StallingServer::start().await;
    let d = TestDaemon::builder()
        .config("[images]\nstall_timeout = \"1s\"")
        .start()
        .await;
    let mut c = d.clients().await;
    let err = c
        .pull(&format!("127.0.0.1:{}/never:v1", stalling.port))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("no data for 1s"), "{err:?}");
}

#[tokio::test]
async fn bad_references_are_invalid_arguments_and_unknown_images_are_empty() {
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    for bad in ["UPPERCASE", "busybox:", "a//b", "busybox@sha256:xyz"] {
        let err = c.pull(bad).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}: {err:?}");
    }
    assert!(c.image_status("busybox").await.is_none());
    c.remove_image("never-pulled:v1").await.unwrap();
}

#[tokio::test]
async fn removing_images_reclaims_what_no_image_uses() {
    let registry = Registry::start().await;
    let base = LayerBuilder::busybox().tar();
    let a = ImageBuilder::new()
        .layer(base.clone(), Compression::Gzip)
        .layer(LayerBuilder::new().file("a", b"a").tar(), Compression::Gzip)
        .push(&registry, "pair", &["a"])
        .await;
    ImageBuilder::new()
        .layer(base, Compression::Gzip)
        .layer(LayerBuilder::new().file("b", b"b").tar(), Compression::Gzip)
        .push(&registry, "pair", &["b"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let host = registry.host();
    c.pull(&format!("{host}/pair:a")).await.unwrap();
    c.pull(&format!("{host}/pair:b")).await.unwrap();
    assert_eq!(snapshot_entries(&d).len(), 3, "the busybox layer is shared");
    let content = d.root.join("content/sha256");
    let blobs_before = std::fs::read_dir(&content).unwrap().count();

    c.remove_image(&a.id).await.unwrap();
    assert!(c.image_status(&format!("{host}/pair:a")).await.is_none());
    wait_until(
        "the unshared snapshot to go",
        Duration::from_secs(10),
        || async { (snapshot_entries(&d).len() == 2).then_some(()) },
    )
    .await;
    assert!(std::fs::read_dir(&content).unwrap().count() < blobs_before);

    c.remove_image(&format!("{host}/pair:b")).await.unwrap();
    c.remove_image(&format!("{host}/pair:b")).await.unwrap();
    wait_until("every snapshot to go", Duration::from_secs(10), || async {
        snapshot_entries(&d).is_empty().then_some(())
    })
    .await;
    assert_eq!(std::fs::read_dir(&content).unwrap().count(), 0);
}

#[tokio::test]
async fn pull_answers_the_image_id_and_removing_one_tag_removes_the_image() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .push(&registry, "tagged", &["one", "two"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let host = registry.host();
    let (one, two) = (format!("{host}/tagged:one"), format!("{host}/tagged:two"));
    let image_ref = c.pull(&one).await.unwrap();
    assert_eq!(c.pull(&two).await.unwrap(), image_ref);
    let (image, _) = c.image_status(&two).await.unwrap();
    assert_eq!(image_ref, image.id, "PullImage's image_ref is the Image.id");
    assert_eq!(image.id, pushed.id);
    assert_eq!(image.repo_tags.len(), 2, "{image:?}");
    c.remove_image(&one).await.unwrap();
    assert!(
        c.image_status(&two).await.is_none(),
        "RemoveImage of one tag removes the image with all its tags"
    );
}

#[tokio::test]
async fn images_survive_a_daemon_crash() {
    let registry = Registry::start().await;
    let pushed = ImageBuilder::busybox()
        .push(&registry, "durable", &["v1"])
        .await;
    let mut d = TestDaemon::start().await;
    let reference = format!("{}/durable:v1", registry.host());
    let before = {
        let mut c = d.clients().await;
        c.pull(&reference).await.unwrap();
        c.image_status(&reference).await.unwrap().0
    };
    d.kill().await;
    d.restart().await;
    let mut c = d.clients().await;
    let after = c.image_status(&reference).await.unwrap().0;
    assert_eq!(after, before);
    assert_eq!(after.id, pushed.id);
    let (_, info) = c.image_status(&reference).await.unwrap();
    assert!(d.snapshot_dirs(&info)[0].join("bin/busybox").exists());
}

#[tokio::test]
async fn image_fs_info_counts_the_image_store() {
    let registry = Registry::start().await;
    ImageBuilder::busybox()
        .push(&registry, "sized", &["v1"])
        .await;
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    c.pull(&format!("{}/sized:v1", registry.host()))
        .await
        .unwrap();
    let info = c
        .image
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let images = &info.image_filesystems[0];
    assert!(images.used_bytes.unwrap().value > 1_000_000, "{images:?}");
    assert!(images.inodes_used.unwrap().value > 100, "{images:?}");
    assert_eq!(
        images.fs_id.as_ref().unwrap().mountpoint,
        d.root.join("snapshots").display().to_string()
    );
    assert_eq!(info.container_filesystems.len(), 1);
}

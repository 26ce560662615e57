//! Every parser of what a registry or a layer holds, fed mutated valid input and random bytes
//! (`berth-fuzz`): references, digests, manifests and indexes, image configs, and whole layer
//! archives through the unpacker (whose entries must stay inside the layer).

use crate::digest::Digest;
use crate::limits::{LayerLimits, TarGuard};
use crate::manifest::{Fetched, ImageConfigFile};
use crate::reference::Reference;

#[test]
fn references_and_digests() {
    let seeds: Vec<Vec<u8>> = [
        "busybox",
        "registry.k8s.io/pause:3.10",
        "127.0.0.1:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "[::1]:5000/x:tag",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    berth_fuzz::fuzz("references", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        if let Ok(r) = Reference::parse(&text) {
            // What parses prints as something that parses to the same.
            let again = Reference::parse(&r.to_string());
            assert_eq!(
                again.map(|a| a.to_string()).ok(),
                Some(r.to_string()),
                "{text}"
            );
        }
        let _ = Digest::parse(&text);
    });
}

#[test]
fn manifests_indexes_and_configs() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":10}]}"#,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#,
        r#"{"architecture":"amd64","os":"linux","config":{"User":"1000:50","Env":["A=b"],"Entrypoint":["sh"],"StopSignal":"SIGINT"},"rootfs":{"type":"layers","diff_ids":["sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    berth_fuzz::fuzz("manifests", &seeds, |input| {
        for content_type in [
            None,
            Some("application/vnd.oci.image.manifest.v1+json"),
            Some("application/vnd.docker.distribution.manifest.list.v2+json"),
        ] {
            let _ = Fetched::parse(content_type, input);
        }
        let _ = serde_json::from_slice::<ImageConfigFile>(input);
    });
}

#[test]
fn layer_archives_unpack_inside_their_dir_or_are_refused() {
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    layer
        .append_data(&mut header, "dir/file", &b"hello"[..])
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    layer
        .append_link(&mut link, "dir/link", "../../etc")
        .unwrap();
    let mut wh = tar::Header::new_gnu();
    wh.set_size(0);
    wh.set_entry_type(tar::EntryType::Regular);
    layer
        .append_data(&mut wh, "dir/.wh.gone", &b""[..])
        .unwrap();
    let long = format!("{}/x", "d".repeat(200));
    layer
        .append_data(&mut header.clone(), &long, &b"hello"[..])
        .unwrap();
    let seeds = vec![layer.into_inner().unwrap()];
    let scratch = tempfile::tempdir().unwrap();
    let outside = scratch.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut n = 0;
    berth_fuzz::fuzz("layer archives", &seeds, |input| {
        n += 1;
        let dir = scratch.path().join(format!("layer-{n}"));
        let (fs, staging) = (dir.join("fs"), dir.join("staging"));
        std::fs::create_dir_all(&fs).unwrap();
        let guarded = TarGuard::new(input, LayerLimits::default());
        let _ = crate::unpack::unpack_layer(guarded, &fs, &staging);
        let _ = std::fs::remove_dir_all(&dir);
    });
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing was written outside a layer's dir"
    );
}

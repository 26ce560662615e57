//! Stand-ins for every image critest names, built from Debian's busybox and pushed to the local
//! registry under the upstream repository paths (`../shared/conformance.md` lists what each must
//! hold). Layers are deterministic (fixed mtimes, entries in a fixed order, gzip without a
//! timestamp, no `created`), so a rerun pushes the same digests.

use berth_testkit::{Applets, Compression, ImageBuilder, LayerBuilder, Registry};
use serde_json::json;

/// The hosts critest's images are named under; berthd sends each to the local registry.
pub const UPSTREAM_HOSTS: [&str; 6] = [
    "registry.k8s.io",
    "k8s.gcr.io",
    "gcr.io",
    "docker.io",
    "quay.io",
    "public.ecr.aws",
];

/// The one spec no local stand-in can pass: it pulls an upstream manifest by its digest.
pub const OFFLINE_IMPOSSIBLE: &str = "public image with digest should be pulled and removed";

const E2E: &str = "e2e-test-images";
const CRI_TOOLS: &str = "k8s-staging-cri-tools";

/// `/etc/passwd` of the e2e busybox image: the users its specs look up.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
";

const GROUP: &str = "root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:mail
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
";

/// `pgrep NAME` as procps matches it: every process whose name contains NAME (Debian's busybox
/// has no pgrep).
const PGREP: &str = r#"#!/bin/sh
found=1
for dir in /proc/[0-9]*; do
  case "$(cat "$dir/comm" 2>/dev/null)" in
    *"$1"*) echo "${dir#/proc/}"; found=0 ;;
  esac
done
exit $found
"#;

/// `ipcs -m`: the shared memory segments of this IPC namespace (Debian's busybox has no ipcs).
/// The header holds no digits, so that a segment ID found in the output is a segment's.
const IPCS: &str = r#"#!/bin/sh
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
  echo "$key $shmid $uid $perms $size $nattch"
done
"#;

/// nginx as critest checks it: a process named `nginx` with `master process` in its command
/// line, its PID in /var/run/nginx.pid, serving an index page on the port given (80 by default).
/// It stays the parent of the web server so that its name is the one `pidof nginx` finds.
const NGINX: &str = r#"#!/bin/sh
echo $$ > /var/run/nginx.pid
httpd -f -p "${2:-80}" -h /usr/share/nginx/html &
trap 'kill $!; exit 0' TERM INT
wait
"#;

/// httpd as the multi-container specs check it: a log line naming it, "It works!" on port 80.
const HTTPD: &str = r#"#!/bin/sh
echo "httpd: serving It works! on port 80"
httpd -f -p 80 -h /usr/local/apache2/htdocs &
trap 'kill $!; exit 0' TERM INT
wait
"#;

/// The base every stand-in builds on: busybox with hard-linked applets, its users and groups,
/// pgrep and ipcs.
fn base() -> LayerBuilder {
    LayerBuilder::new()
        .with_busybox(Applets::HardLinks)
        .file("etc/passwd", PASSWD.as_bytes())
        .file("etc/group", GROUP.as_bytes())
        .file_with("bin/pgrep", PGREP.as_bytes(), 0o755, 0, 0)
        .file_with("bin/ipcs", IPCS.as_bytes(), 0o755, 0, 0)
        .dir("var/run", 0o755)
}

fn image(layer: LayerBuilder) -> ImageBuilder {
    ImageBuilder::new()
        .layer(layer.tar(), Compression::Gzip)
        .config(
            "Env",
            json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        )
        .config("Cmd", json!(["sh"]))
}

/// The base with a marker file, so that images meant to differ do.
fn marked(name: &str) -> ImageBuilder {
    image(base().file(&format!("etc/{name}"), name.as_bytes()))
}

fn web_server(port: u16) -> ImageBuilder {
    let port = port.to_string();
    image(
        base()
            .file_with("usr/sbin/nginx", NGINX.as_bytes(), 0o755, 0, 0)
            .file("usr/share/nginx/html/index.html", b"Welcome to nginx!\n"),
    )
    .config(
        "Entrypoint",
        json!(["/usr/sbin/nginx", "master process", port]),
    )
    .config("Cmd", json!(null))
    .config("StopSignal", json!("SIGTERM"))
}

fn with_user(user: &str) -> ImageBuilder {
    image(base()).config("User", json!(user))
}

/// Pushes every stand-in. `probe` is berth-probe, whose `effective-uid` mode is the setuid
/// entrypoint of the NoNewPrivs image.
pub async fn push_all(registry: &Registry, probe: &std::path::Path) {
    push_e2e_images(registry, probe).await;
    push_user_images(registry).await;
    push_reference_images(registry).await;
    image(base())
        .push(
            registry,
            "docker/library/busybox",
            &["1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl"],
        )
        .await;
}

fn e2e(name: &str) -> String {
    format!("{E2E}/{name}")
}

fn tools(name: &str) -> String {
    format!("{CRI_TOOLS}/{name}")
}

/// The Kubernetes e2e images critest runs containers of, and the sandbox image.
async fn push_e2e_images(registry: &Registry, probe: &std::path::Path) {
    image(base())
        .push(registry, &e2e("busybox"), &["1.29-2"])
        .await;
    web_server(80)
        .push(registry, &e2e("nginx"), &["1.14-2"])
        .await;
    web_server(12003)
        .push(registry, &tools("hostnet-nginx-amd64"), &["latest"])
        .await;
    image(
        base()
            .file_with(
                "usr/local/bin/httpd-foreground",
                HTTPD.as_bytes(),
                0o755,
                0,
                0,
            )
            .file(
                "usr/local/apache2/htdocs/index.html",
                b"<html><body><h1>It works!</h1></body></html>\n",
            ),
    )
    .config("Cmd", json!(["httpd-foreground"]))
    .push(registry, &e2e("httpd"), &["2.4.39-4"])
    .await;
    image(base().binary(probe, "usr/local/bin/nnp", 0o4755))
        .config("Entrypoint", json!(["/usr/local/bin/nnp", "effective-uid"]))
        .config("Cmd", json!(null))
        .push(registry, &e2e("nonewprivs"), &["1.3"])
        .await;
    // The sandbox image a runtime may pull: one manifest under both registries' names.
    image(base())
        .config("Entrypoint", json!(["/bin/sleep", "infinity"]))
        .config("Cmd", json!(null))
        .config("User", json!("65535:65535"))
        .push(registry, "pause", &["3.6", "3.7", "3.8", "3.9", "3.10"])
        .await;
}

/// The images whose `User` ImageStatus and SupplementalGroupsPolicy specs read.
async fn push_user_images(registry: &Registry) {
    for (name, user) in [
        ("test-image-user-uid", "1002"),
        ("test-image-user-username", "www-data"),
        ("test-image-user-uid-group", "1003:1004"),
        ("test-image-user-username-group", "www-data:1004"),
    ] {
        with_user(user)
            .push(registry, &tools(name), &["latest"])
            .await;
    }
    let predefined = LayerBuilder::new()
        .with_busybox(Applets::HardLinks)
        .file(
            "etc/passwd",
            format!("{PASSWD}default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\n")
                .as_bytes(),
        )
        .file(
            "etc/group",
            format!("{GROUP}default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
                .as_bytes(),
        )
        .dir("home/default-user", 0o755);
    image(predefined)
        .config("User", json!("1000"))
        .push(registry, &tools("test-image-predefined-group"), &["latest"])
        .await;
}

/// The images the Image Manager specs pull by tag, by every reference and under several tags.
async fn push_reference_images(registry: &Registry) {
    for name in [
        "test-image-latest",
        "test-image-1",
        "test-image-2",
        "test-image-3",
    ] {
        marked(name).push(registry, &tools(name), &["latest"]).await;
    }
    marked("test-image-tags")
        .push(registry, &tools("test-image-tags"), &["1", "2", "3"])
        .await;
    marked("test-image-tag-test")
        .push(registry, &tools("test-image-tag"), &["test"])
        .await;
    marked("test-image-tag-all")
        .push(registry, &tools("test-image-tag"), &["all"])
        .await;
    // Only so that the repository exists: the spec pulls an upstream digest.
    marked("test-image-digest")
        .push(registry, &tools("test-image-digest"), &["latest"])
        .await;
}

//! Unpacking real tar streams into temp dirs: entry kinds, attributes, whiteouts, hostile names,
//! and layers that depend on the ones below.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

/// Builds a layer tar entry by entry, with raw control over names (hostile ones included).
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        h
    }

    fn dir(mut self, name: &str, mode: u32) -> Self {
        let h = Self::header(name, tar::EntryType::Directory, mode, 0);
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn file(mut self, name: &str, data: &str) -> Self {
        let h = Self::header(name, tar::EntryType::Regular, 0o644, data.len() as u64);
        self.0.append(&h, data.as_bytes()).unwrap();
        self
    }

    fn owned_file(mut self, name: &str, data: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.0.append(&h, data.as_bytes()).unwrap();
        self
    }

    fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        let raw = &mut h.as_old_mut().linkname;
        raw.fill(0);
        raw[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }

    fn node(mut self, name: &str, kind: tar::EntryType) -> Self {
        let mut h = Self::header(name, kind, 0o600, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn xattr_file(mut self, name: &str, key: &str, value: &[u8]) -> Self {
        let pax_key = format!("SCHILY.xattr.{key}");
        self.0
            .append_pax_extensions([(pax_key.as_str(), value)])
            .unwrap();
        self.file(name, "x")
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A temp dir holding snapshot dirs `<n>/fs` and `<n>/staging`.
struct Snapshots(tempfile::TempDir);

impl Snapshots {
    fn new() -> Snapshots {
        Snapshots(tempfile::tempdir_in("/var/tmp").unwrap())
    }

    fn fs(&self, n: usize) -> PathBuf {
        self.0.path().join(n.to_string()).join("fs")
    }

    fn staging(&self, n: usize) -> PathBuf {
        self.0.path().join(n.to_string()).join("staging")
    }

    /// Unpacks `layers` in order (each on top of those before), as a pull does.
    fn unpack_all(&self, layers: Vec<Vec<u8>>) -> Result<(), UnpackError> {
        let mut unpacked = Vec::new();
        for (n, layer) in layers.iter().enumerate() {
            fs::create_dir_all(self.fs(n)).unwrap();
            let (u, _) = unpack_layer(&layer[..], &self.fs(n), &self.staging(n))?;
            unpacked.push(u);
        }
        for (n, u) in unpacked.into_iter().enumerate() {
            let lowers: Vec<PathBuf> = (0..n).rev().map(|i| self.fs(i)).collect();
            apply_deferred(&self.fs(n), &self.staging(n), &lowers, u)?;
        }
        Ok(())
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

#[test]
fn every_entry_kind_lands_with_its_attributes() {
    let s = Snapshots::new();
    let layer = Layer::new()
        .dir("etc/", 0o755)
        .owned_file("etc/secret", "s3cret", 0o4750, 1000, 50)
        .symlink("etc/link", "secret")
        .hardlink("etc/hard", "etc/secret")
        .node("etc/null", tar::EntryType::Char)
        .node("etc/fifo", tar::EntryType::Fifo)
        .dir("tmp/", 0o1777)
        .xattr_file("etc/xattr", "user.berth", b"yes")
        .bytes();
    s.unpack_all(vec![layer]).unwrap();
    let fs0 = s.fs(0);
    let secret = fs::metadata(fs0.join("etc/secret")).unwrap();
    assert_eq!(read(&fs0.join("etc/secret")), "s3cret");
    assert_eq!(
        secret.permissions().mode() & 0o7777,
        0o4750,
        "setuid survives chown"
    );
    assert_eq!((secret.uid(), secret.gid()), (1000, 50));
    assert_eq!(secret.mtime(), 1_600_000_000);
    assert_eq!(
        fs::read_link(fs0.join("etc/link")).unwrap(),
        Path::new("secret")
    );
    assert_eq!(
        fs::metadata(fs0.join("etc/hard")).unwrap().ino(),
        secret.ino()
    );
    let null = fs::metadata(fs0.join("etc/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(
        fs::metadata(fs0.join("etc/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        fs::metadata(fs0.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(fs0.join("etc")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set last"
    );
    let mut value = [0u8; 8];
    let n = rustix::fs::getxattr(
        fs0.join("etc/xattr").as_path(),
        "user.berth",
        &mut value[..],
    )
    .unwrap();
    assert_eq!(&value[..n], b"yes");
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_opaque_dirs() {
    let s = Snapshots::new();
    let lower = Layer::new()
        .dir("a/", 0o755)
        .file("a/old", "1")
        .file("gone", "1")
        .bytes();
    let upper = Layer::new()
        .dir("a/", 0o755)
        .file("a/.wh..wh..opq", "")
        .file("a/new", "2")
        .file(".wh.gone", "")
        .bytes();
    s.unpack_all(vec![lower, upper]).unwrap();
    let wh = fs::symlink_metadata(s.fs(1).join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    let mut value = [0u8; 2];
    let n =
        rustix::fs::getxattr(s.fs(1).join("a").as_path(), OPAQUE_XATTR, &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(!s.fs(1).join(".wh.gone").exists());
}

#[test]
fn names_climbing_out_are_refused_naming_the_entry() {
    let s = Snapshots::new();
    let err = s
        .unpack_all(vec![Layer::new().file("../../escaped", "x").bytes()])
        .unwrap_err();
    assert!(matches!(err, UnpackError::Escapes { .. }));
    assert!(err.to_string().contains("../../escaped"), "{err}");
    assert!(!s.0.path().join("escaped").exists());

    let s = Snapshots::new();
    let err = s
        .unpack_all(vec![
            Layer::new()
                .hardlink("passwd", "../../../../etc/passwd")
                .bytes(),
        ])
        .unwrap_err();
    assert!(matches!(err, UnpackError::LinkEscapes { .. }), "{err}");
    assert!(err.to_string().contains("../../../../etc/passwd"));
}

#[test]
fn absolute_names_and_symlinks_resolve_inside_the_layer() {
    let marker = format!("berth-unpack-escape-{}", std::process::id());
    let s = Snapshots::new();
    let layer = Layer::new()
        .file("/abs-file", "abs")
        .symlink("to-tmp", "/tmp")
        .file(&format!("to-tmp/{marker}"), "pwned")
        .symlink("up", "../../../../..")
        .file(&format!("up/tmp/{marker}-2"), "pwned")
        .bytes();
    s.unpack_all(vec![layer]).unwrap();
    assert_eq!(read(&s.fs(0).join("abs-file")), "abs");
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "wrote through a symlink to the host"
    );
    assert!(!Path::new("/tmp").join(format!("{marker}-2")).exists());
    assert_eq!(
        read(&s.fs(0).join("tmp").join(&marker)),
        "pwned",
        "confined to the layer's /tmp"
    );
    assert_eq!(
        read(&s.fs(0).join("tmp").join(format!("{marker}-2"))),
        "pwned"
    );
}

#[test]
fn a_later_layer_writes_through_a_lower_layers_symlink() {
    let s = Snapshots::new();
    let lower = Layer::new()
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o750)
        .file("usr/lib/old", "old")
        .symlink("lib", "usr/lib")
        .bytes();
    let upper = Layer::new().file("lib/x", "new").bytes();
    s.unpack_all(vec![lower, upper]).unwrap();
    let upper_fs = s.fs(1);
    assert_eq!(read(&upper_fs.join("usr/lib/x")), "new");
    assert!(
        !upper_fs.join("lib").exists(),
        "the symlink of the lower layer must not be shadowed"
    );
    let copied = fs::metadata(upper_fs.join("usr/lib")).unwrap();
    assert_eq!(
        copied.permissions().mode() & 0o7777,
        0o750,
        "parent copied up with lower's mode"
    );
    assert!(!s.staging(1).exists(), "staging removed");
}

#[test]
fn a_directory_entry_replaces_a_lower_symlink() {
    // With its own entry for `lib/`, the layer replaces the symlink, as containerd's apply does.
    let s = Snapshots::new();
    let lower = Layer::new()
        .dir("usr/", 0o755)
        .symlink("lib", "usr")
        .bytes();
    let upper = Layer::new().dir("lib/", 0o755).file("lib/x", "new").bytes();
    s.unpack_all(vec![lower, upper]).unwrap();
    assert_eq!(read(&s.fs(1).join("lib/x")), "new");
    assert!(!s.staging(1).exists(), "nothing was deferred");
}

#[test]
fn hard_links_to_lower_files_copy_them_up() {
    let s = Snapshots::new();
    let lower = Layer::new()
        .dir("bin/", 0o755)
        .owned_file("bin/tool", "binary", 0o755, 0, 0)
        .bytes();
    let upper = Layer::new()
        .dir("bin/", 0o755)
        .hardlink("bin/alias", "bin/tool")
        .bytes();
    s.unpack_all(vec![lower, upper]).unwrap();
    let a = fs::metadata(s.fs(1).join("bin/alias")).unwrap();
    let t = fs::metadata(s.fs(1).join("bin/tool")).unwrap();
    assert_eq!(a.ino(), t.ino());
    assert_eq!(read(&s.fs(1).join("bin/alias")), "binary");
}

#[test]
fn a_later_entry_of_the_layer_wins_over_a_deferred_one() {
    let s = Snapshots::new();
    let lower = Layer::new()
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o755)
        .symlink("lib", "usr/lib")
        .bytes();
    let upper = Layer::new()
        .file("lib/x", "deferred, earlier")
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o755)
        .file("usr/lib/x", "anchored, later")
        .bytes();
    s.unpack_all(vec![lower, upper]).unwrap();
    assert_eq!(read(&s.fs(1).join("usr/lib/x")), "anchored, later");
}

#[test]
fn stacked_in_overlayfs_the_layers_show_their_union() {
    let s = Snapshots::new();
    let lower = Layer::new()
        .dir("a/", 0o755)
        .file("a/old", "1")
        .file("gone", "1")
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o755)
        .symlink("lib", "usr/lib")
        .bytes();
    let upper = Layer::new()
        .dir("a/", 0o755)
        .file("a/.wh..wh..opq", "")
        .file("a/new", "2")
        .file(".wh.gone", "")
        .file("lib/x", "through symlink")
        .bytes();
    s.unpack_all(vec![lower, upper]).unwrap();
    let merged = s.0.path().join("merged");
    let work = s.0.path().join("work");
    let up = s.0.path().join("upper");
    for d in [&merged, &work, &up] {
        fs::create_dir_all(d).unwrap();
    }
    let options = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        s.fs(1).display(),
        s.fs(0).display(),
        up.display(),
        work.display()
    );
    let options = std::ffi::CString::new(options).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .unwrap();
    let seen = (
        merged.join("a/old").exists(),
        merged.join("a/new").exists(),
        merged.join("gone").exists(),
        fs::read_to_string(merged.join("lib/x")).ok(),
    );
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert_eq!(seen, (false, true, false, Some("through symlink".into())));
}

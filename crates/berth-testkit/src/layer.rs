//! Layer tars built entry by entry, with raw control over names (hostile ones included), and the
//! busybox root filesystem the test images are made of.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// An uncompressed layer tar under construction.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
    /// Directories already written (busybox's rootfs merges paths from several sources).
    dirs: BTreeSet<String>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder {
            tar: tar::Builder::new(Vec::new()),
            dirs: BTreeSet::new(),
        }
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let raw = &mut h.as_old_mut().name;
        assert!(name.len() < raw.len(), "test entry name too long: {name}");
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) {
        h.set_cksum();
        self.tar.append(&h, data).expect("tar entry");
    }

    /// A directory (and its parents, once each).
    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let name = name.trim_end_matches('/');
        let mut path = String::new();
        for part in name.split('/') {
            path = if path.is_empty() {
                part.to_owned()
            } else {
                format!("{path}/{part}")
            };
            if self.dirs.insert(path.clone()) {
                let m = if path == name { mode } else { 0o755 };
                let h = Self::header(&format!("{path}/"), tar::EntryType::Directory, m, 0);
                self.push(h, &[]);
            }
        }
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_with(name, data, 0o644, 0, 0)
    }

    pub fn file_with(mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data);
        self
    }

    fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        let raw = &mut h.as_old_mut().linkname;
        raw.fill(0);
        raw[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, &[]);
        self
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }

    /// A GNU long-name entry that claims `claimed` bytes of name but carries only `data` (an
    /// archive a parser reading the name whole would allocate `claimed` bytes for).
    pub fn long_name_header(mut self, claimed: u64, data: &[u8]) -> Self {
        let mut h = Self::header("././@LongLink", tar::EntryType::GNULongName, 0o644, claimed);
        h.set_cksum();
        self.tar.append(&h, data).expect("tar entry");
        self
    }

    /// A FIFO: a reader that opens it blocks until a writer comes.
    pub fn fifo(mut self, name: &str) -> Self {
        let h = Self::header(name, tar::EntryType::Fifo, 0o644, 0);
        self.push(h, &[]);
        self
    }

    /// A character device node of the node's (`major`, `minor`), open to all.
    pub fn char_device(mut self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(name, tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).expect("device major");
        h.set_device_minor(minor).expect("device minor");
        self.push(h, &[]);
        self
    }

    /// `.wh.<name>` in `dir`: deletes `name` of the layers below.
    pub fn whiteout(self, dir: &str, name: &str) -> Self {
        let path = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&path, b"")
    }

    /// `.wh..wh..opq` in `dir`: hides everything of `dir` in the layers below.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    /// A binary of the host at `path` in the layer, with the libraries it loads, and `mode`.
    pub fn binary(mut self, host: &Path, path: &str, mode: u32) -> Self {
        for lib in shared_libraries(host) {
            let data = std::fs::read(&lib).expect("library");
            let rel = lib.trim_start_matches('/');
            if let Some(parent) = Path::new(rel).parent() {
                self = self.dir(&parent.to_string_lossy(), 0o755);
            }
            self = self.file_with(rel, &data, 0o755, 0, 0);
        }
        if let Some(parent) = Path::new(path).parent() {
            self = self.dir(&parent.to_string_lossy(), 0o755);
        }
        let data = std::fs::read(host).expect("binary");
        self.file_with(path, &data, mode, 0, 0)
    }

    /// The uncompressed tar.
    pub fn tar(self) -> Vec<u8> {
        self.tar.into_inner().expect("tar")
    }

    /// A root filesystem of Debian's dynamically linked busybox, its libraries, an applet symlink
    /// for every applet, and /etc/passwd and /etc/group with a few users and groups.
    pub fn busybox() -> LayerBuilder {
        LayerBuilder::new()
            .with_busybox(Applets::Symlinks)
            .file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\n\
                  www-data:x:33:33:www-data:/var/www:/bin/sh\n\
                  berth:x:1000:1000:berth test user:/home/berth:/bin/sh\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            )
            .file(
                "etc/group",
                b"root:x:0:\naudio:x:29:berth\nwww-data:x:33:\nusers:x:100:berth,www-data\n\
                  berth:x:1000:\nnogroup:x:65534:\n",
            )
    }

    /// Debian's dynamically linked busybox as /bin/busybox with the libraries it loads, an entry
    /// in /bin for every applet, and the dirs of a root filesystem (no /etc files).
    pub fn with_busybox(self, applets: Applets) -> Self {
        let busybox = Path::new("/bin/busybox");
        let mut layer = self
            .dir("bin", 0o755)
            .dir("etc", 0o755)
            .dir("tmp", 0o1777)
            .dir("root", 0o700)
            .dir("home/berth", 0o755)
            .dir("proc", 0o555)
            .dir("sys", 0o555)
            .dir("dev", 0o755)
            .dir("var/www", 0o755);
        let binary = std::fs::read(busybox).expect("Debian's busybox package (/bin/busybox)");
        layer = layer.file_with("bin/busybox", &binary, 0o755, 0, 0);
        for lib in shared_libraries(busybox) {
            let data = std::fs::read(&lib).expect("library");
            let rel = lib.trim_start_matches('/');
            if let Some(parent) = Path::new(rel).parent() {
                layer = layer.dir(&parent.to_string_lossy(), 0o755);
            }
            layer = layer.file_with(rel, &data, 0o755, 0, 0);
        }
        for applet in applets_of(busybox) {
            if applet != "busybox" {
                let name = format!("bin/{applet}");
                layer = match applets {
                    Applets::Symlinks => layer.symlink(&name, "busybox"),
                    Applets::HardLinks => layer.hardlink(&name, "bin/busybox"),
                };
            }
        }
        layer
    }
}

/// How busybox's applets are named in a root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applets {
    /// `bin/ls -> busybox`, as the testkit's images have them.
    Symlinks,
    /// Hard links to `bin/busybox`, as the e2e test images have them.
    HardLinks,
}

/// The libraries `ldd` says a binary loads, by the paths the loader uses.
fn shared_libraries(binary: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(p.to_owned());
        }
    }
    libs
}

fn applets_of(binary: &Path) -> Vec<String> {
    let out = Command::new(binary)
        .arg("--list")
        .output()
        .expect("busybox --list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .collect()
}

/// Compresses a layer tar.
pub fn compress(tar: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            e.finish().expect("gzip")
        }
        Compression::Zstd => zstd::stream::encode_all(tar, 3).expect("zstd"),
    }
}

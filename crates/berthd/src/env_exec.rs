//! berth-env-exec (see `env-exec/main.rs`), the helper that gives a container environment values
//! that are not UTF-8: embedded in berthd, written out once, bound read-only into the containers
//! that need it (into their /dev, a tmpfs of runc's, so their rootfs is untouched) and run in
//! place of their process, which it then execs with the whole environment.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[cfg(env_exec)]
const BINARY: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/berth-env-exec")));
#[cfg(not(env_exec))]
const BINARY: Option<&[u8]> = None;

/// Where the helper is in a container that has it.
pub const CONTAINER_PATH: &str = "/dev/.berth-env-exec";

/// Whether this build of berthd has the helper (x86_64 Linux builds do).
pub fn available() -> bool {
    BINARY.is_some()
}

/// Writes the helper to `path` (mode 0555), unless it is there already as this berthd has it.
/// Blocking.
pub fn install(path: &Path) -> io::Result<()> {
    let binary = BINARY.ok_or_else(|| io::Error::other("this build has no berth-env-exec"))?;
    if std::fs::read(path).is_ok_and(|on_disk| on_disk == binary) {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("berth-env-exec needs a directory"))?;
    std::fs::create_dir_all(dir)?;
    let mut staged = tempfile_in(dir)?;
    staged.1.write_all(binary)?;
    staged
        .1
        .set_permissions(std::fs::Permissions::from_mode(0o555))?;
    staged.1.sync_all()?;
    std::fs::rename(&staged.0, path)
}

/// A new file beside the final one, so that the rename is atomic and a reader never sees half.
fn tempfile_in(dir: &Path) -> io::Result<(std::path::PathBuf, std::fs::File)> {
    let path = dir.join(format!(".berth-env-exec-{}", crate::ids::new_id()));
    let file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

/// The helper's first argument: `entries` in lowercase hex.
pub fn encode(entries: &[u8]) -> String {
    entries.iter().map(|b| format!("{b:02x}")).collect()
}

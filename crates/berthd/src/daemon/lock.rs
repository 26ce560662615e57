//! Lock files that keep a second daemon off the root, state dir and socket of a running one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another berthd{} holds {}; refusing to start beside it",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        path.display()
    )]
    Held { path: PathBuf, holder: Option<u32> },
}

/// Held locks; they are released when this is dropped or the process exits.
#[derive(Debug)]
pub struct Locks {
    _files: Vec<File>,
}

pub fn acquire(paths: &[PathBuf]) -> Result<Locks, LockError> {
    let mut held = Vec::new();
    for path in paths {
        held.push(acquire_one(path)?);
    }
    Ok(Locks { _files: held })
}

/// How long a lock whose holder named in the file is dead may stay held. A berthd killed while it
/// starts a process leaves the child holding copies of its descriptors, the lock's among them,
/// until the child's exec closes them: a moment, not a daemon.
const HOLDER_GONE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the lock; while the pid in the file is no running process, tries again for `wait`.
fn lock_within(file: &File, wait: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if flock(file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return true;
        }
        if holder_alive(file) || std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether the pid written in the lock file is a running process (a file without one is taken
/// to have a live holder).
fn holder_alive(file: &File) -> bool {
    let Some(pid) = holder_in(file) else {
        return true;
    };
    rustix::process::Pid::from_raw(pid as i32)
        .is_none_or(|pid| rustix::process::test_kill_process(pid).is_ok())
}

/// The pid the holder wrote in the lock file.
fn holder_in(mut file: &File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn acquire_one(path: &Path) -> Result<File, LockError> {
    let open_err = |source| LockError::Open {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(open_err)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(open_err)?;
    if !lock_within(&file, HOLDER_GONE_WAIT) {
        return Err(LockError::Held {
            path: path.to_path_buf(),
            holder: holder_in(&file),
        });
    }
    // The pid is only a hint for the error message above; the flock is what excludes.
    let write_pid = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())
    };
    write_pid(&mut file).map_err(open_err)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/berth.lock");
        let first = acquire(std::slice::from_ref(&path)).unwrap();
        match acquire(std::slice::from_ref(&path)) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        acquire(std::slice::from_ref(&path)).unwrap();
    }

    /// A lock still held after its holder died (by a child of it that had not yet exec'd) is
    /// waited for, not refused.
    #[test]
    fn a_lock_whose_holder_is_dead_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.lock");
        let straggler = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        flock(&straggler, FlockOperation::NonBlockingLockExclusive).unwrap();
        // No process has this pid (above the kernel's maximum).
        std::fs::write(&path, "4194305\n").unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(straggler);
        });
        acquire(&[path]).unwrap();
        released.join().unwrap();
    }
}

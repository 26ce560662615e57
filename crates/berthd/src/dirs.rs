//! Removing what berth made on disk, for removals that may run twice (a retry, a recovery).

use std::io;
use std::path::Path;

/// Removes `dir` and everything below it; a dir already gone is no error.
pub fn remove_all(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

//! Mounting snapshot directories as one overlay root, to look at an image as a container would.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// A read-write overlay of `lowers` (top first) on a temp dir; unmounted when dropped.
pub struct MergedRoot {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl MergedRoot {
    pub fn mount(lowers: &[PathBuf]) -> MergedRoot {
        let dir = tempfile::Builder::new()
            .prefix("berth-merged-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let (merged, upper, work) = (
            dir.path().join("m"),
            dir.path().join("u"),
            dir.path().join("w"),
        );
        for d in [&merged, &upper, &work] {
            std::fs::create_dir(d).expect("dir");
        }
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            upper.display(),
            work.display()
        );
        let options = CString::new(options).expect("options");
        rustix::mount::mount(
            "overlay",
            &merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(options.as_c_str()),
        )
        .expect("mount overlay");
        MergedRoot {
            path: merged,
            _dir: dir,
        }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }
}

impl Drop for MergedRoot {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(Path::new(&self.path), rustix::mount::UnmountFlags::DETACH);
    }
}

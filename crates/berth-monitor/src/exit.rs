//! The exit record, written so that berthd never reads half of it: write a temp file, fsync,
//! rename, fsync the directory.

use std::fs::File;
use std::io::Write;

use berth_monitor::proto::{EXIT_RECORD, ExitRecord};

pub fn write(record: &ExitRecord) -> std::io::Result<()> {
    let temp = format!("{EXIT_RECORD}.tmp");
    let mut file = File::create(&temp)?;
    file.write_all(record.to_text().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, EXIT_RECORD)?;
    File::open(".")?.sync_all()
}

//! A terminal for the process, made inside the container (from its own `/dev/ptmx`, so that the
//! process sees its terminal in its `/dev/pts`), as runc makes one: the master goes to the
//! console socket berthd listens on, the pty becomes the process's controlling terminal and its
//! stdio.

use std::io::IoSlice;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::pty::OpenptFlags;

pub fn attach(console: &UnixStream) -> Result<(), String> {
    let step = |what: &'static str| move |e: rustix::io::Errno| format!("terminal: {what}: {e}");
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags).map_err(step("opening /dev/ptmx"))?;
    rustix::pty::unlockpt(&master).map_err(step("unlockpt"))?;
    // The peer through the master itself: no path in the container's /dev/pts is trusted.
    let pty = rustix::pty::ioctl_tiocgptpeer(&master, flags).map_err(step("opening the pty"))?;
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err("terminal: no room for the master's descriptor".into());
    }
    rustix::net::sendmsg(
        console,
        &[IoSlice::new(b"console")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(step("sending the master"))?;
    drop(master);
    rustix::process::setsid().map_err(step("setsid"))?;
    rustix::process::ioctl_tiocsctty(&pty).map_err(step("making it the controlling terminal"))?;
    rustix::stdio::dup2_stdin(&pty).map_err(step("stdin"))?;
    rustix::stdio::dup2_stdout(&pty).map_err(step("stdout"))?;
    rustix::stdio::dup2_stderr(&pty).map_err(step("stderr"))?;
    Ok(())
}

//! berth-probe: a tiny checker put into test images, to assert from inside a container what a
//! shell cannot show: the real and effective user IDs, which a setuid bit changes.
//!
//! `berth-probe` prints `uid=N euid=M`; `berth-probe effective-uid` prints `Effective uid: M`, as
//! the NoNewPrivs image of the Kubernetes e2e tests does.

#![forbid(unsafe_code)]

// Printing is what it is for.
#[allow(clippy::print_stdout)]
fn main() {
    let uid = rustix::process::getuid().as_raw();
    let euid = rustix::process::geteuid().as_raw();
    if std::env::args().nth(1).as_deref() == Some("effective-uid") {
        println!("Effective uid: {euid}");
    } else {
        println!("uid={uid} euid={euid}");
    }
}

//! berth-probe: a tiny checker put into test images, to assert from inside a container what a
//! shell cannot show (here: the real and effective user IDs, which a setuid bit changes).

#![forbid(unsafe_code)]

// Printing is what it is for.
#[allow(clippy::print_stdout)]
fn main() {
    let uid = rustix::process::getuid().as_raw();
    let euid = rustix::process::geteuid().as_raw();
    println!("uid={uid} euid={euid}");
}

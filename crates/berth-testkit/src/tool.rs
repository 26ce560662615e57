//! The entry of the kit's command-line tools (`berth-bench`, `berth-conformance`): help, argument
//! errors with the usage, an async runtime, and Ctrl-C, which drops the run's future and with it
//! whatever it set up (daemons, registry, network).

#![allow(clippy::print_stdout)] // --help goes to stdout.

use std::future::Future;

/// Parses the arguments with `parse` and runs `run` to its end or to Ctrl-C; exits the process
/// with 2 on bad arguments and 1 when the run fails, printing the error as `name: error`.
pub fn main<O, T, F>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(Vec<String>) -> Result<O, String>,
    run: impl FnOnce(O) -> F,
) -> T
where
    F: Future<Output = Result<T, String>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{usage}");
        std::process::exit(0);
    }
    let options = parse(args).unwrap_or_else(|e| {
        eprintln!("{name}: {e}\n\n{usage}");
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("{name}: cannot start the async runtime: {e}");
            std::process::exit(1);
        });
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(options) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    outcome.unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    })
}

//! berthd: a Kubernetes CRI runtime daemon. See docs/architecture.md for the map.

use std::process::ExitCode;

use berthd::cli::{self, Command};
use berthd::{config, daemon, logging};

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("berthd: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("berthd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run | Command::PrintConfig => {}
    }
    let sources = config::Sources::new(cli.config_file.as_deref());
    let config = match config::load(&sources, &cli.overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berthd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.command == Command::PrintConfig {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    logging::init(config.log_level, cli.overrides.log_level.is_some());
    match daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("berthd: {e}");
            ExitCode::FAILURE
        }
    }
}

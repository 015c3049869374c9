//! `revent`: services built on revent. `revent echo` is the seed's echo service (the project's main
//! job); `revent hello` is libevent's hello-world sample; `revent resolve` looks names up with
//! revent-dns; `revent http` serves a directory with revent-http. `revent <command> --help` lists
//! each one's options.

mod args;
mod echo;
mod hello;
mod http;
mod logger;
mod resolve;
mod service;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = matches!(&cli.command, Command::Echo(a) if a.verbose);
    logger::init(verbose);
    let result = match cli.command {
        Command::Echo(a) => echo::run(&a),
        Command::Hello(a) => hello::run(a.socket_addr()),
        Command::Http(a) => http::run(&a),
        Command::Resolve(a) => match resolve::run(&a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revent: {e}");
            ExitCode::FAILURE
        }
    }
}

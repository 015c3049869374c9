//! `revent`: services built on revent. `revent echo` is the seed's echo service (the project's main
//! job); `revent hello` is libevent's hello-world sample.

mod args;
mod echo;
mod hello;

use std::process::ExitCode;

const USAGE: &str = "usage: revent <command> [options]

commands:
  echo    echo every byte back (the seed's service)
          --addr A            listen address (default 0.0.0.0)
          --port P            listen port (default 9999)
          --idle-timeout S    close connections idle for S seconds (default: never)
          --max-conns N       refuse connections beyond N at once (default: unlimited)
          --read-high BYTES   read high watermark per connection (default 1048576)
          --threads N         N event bases sharing the port with SO_REUSEPORT (default 1)
          -v                  a line per connection
  hello   answer \"Hello, World!\\n\" and close (libevent's hello-world sample)
          --addr A --port P   (default 0.0.0.0:9995)
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("echo") => args::Args::parse(&argv[1..], 9999).and_then(|a| echo::run(&a)),
        Some("hello") => args::Args::parse(&argv[1..], 9995).and_then(|a| hello::run(&a)),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown or missing command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revent: {e}");
            ExitCode::FAILURE
        }
    }
}

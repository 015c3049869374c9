//! `revent-bench`: revent against C libevent, raw epoll and tokio, side by side.

mod echo;

const USAGE: &str = "\
usage: revent-bench <subcommand> [options]
  echo      echo servers side by side: revent vs C libevent vs raw epoll vs tokio (echo --help)
  echo-load HOST PORT CONNS SIZE SECS   the closed-loop echo load generator
internal (spawned by the above): echo-server-tokio PORT";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match args.first().map(String::as_str) {
        Some(cmd @ ("echo" | "echo-load" | "echo-server-tokio")) => echo::dispatch(cmd, rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("revent-bench: {e}");
        std::process::exit(1);
    }
}

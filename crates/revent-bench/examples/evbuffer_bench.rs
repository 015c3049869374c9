//! Runs the evbuffer benchmark until main.rs wires `evbuffer::run` in:
//! `cargo run --release -p revent-bench --example evbuffer_bench -- [--rounds N]`.

#[path = "../src/evbuffer.rs"]
mod evbuffer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    evbuffer::run(&args);
}

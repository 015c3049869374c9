//! libevent's hello-world sample: answer "Hello, World!\n" to each connection, close once it is
//! written; on SIGINT, exit cleanly two seconds later.

use revent::{BevOptions, BufferEvent, EventBase, Listener, ListenerOptions, What};
use std::net::SocketAddr;
use std::time::Duration;

const MESSAGE: &[u8] = b"Hello, World!\n";

pub fn run(addr: SocketAddr) -> Result<(), String> {
    let mut base = EventBase::new().map_err(|e| e.to_string())?;
    let listener = Listener::bind(
        &mut base,
        addr,
        ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_FREE,
        -1,
        |base, fd, _peer| {
            let Ok(bev) = BufferEvent::socket(base, Some(fd), BevOptions::CLOSE_ON_FREE) else {
                return;
            };
            let _ = bev.set_write_cb(base, |base, bev| {
                if bev.output(base).map(|o| o.is_empty()).unwrap_or(true) {
                    println!("flushed answer");
                    let _ = bev.free(base);
                }
            });
            let _ = bev.set_event_cb(base, |base, bev, _| {
                let _ = bev.free(base);
            });
            let _ = bev.enable(base, What::WRITE);
            let _ = bev.disable(base, What::READ);
            let _ = bev.write(base, MESSAGE);
        },
    )
    .map_err(|e| format!("Could not create a listener on {addr}: {e}"))?;
    println!(
        "hello: listening on {}",
        listener.local_addr(&base).map_err(|e| e.to_string())?
    );
    let sig = base
        .new_signal(libc::SIGINT, |base, f| {
            println!("Caught an interrupt signal; exiting cleanly in two seconds.");
            let _ = base.del(f.id);
            let _ = base.loopexit(Some(Duration::from_secs(2)));
        })
        .map_err(|e| e.to_string())?;
    base.add(sig, None).map_err(|e| e.to_string())?;
    base.dispatch().map_err(|e| e.to_string())?;
    listener.free(&mut base).map_err(|e| e.to_string())?;
    println!("done");
    Ok(())
}

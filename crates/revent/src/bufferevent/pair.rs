//! Bufferevent pairs: two bufferevents joined in memory. What one writes, the other reads, with the
//! same watermark and callback rules as sockets; data moves chunk by chunk, without copying.

use super::{after_read, after_write, run_cb, BevFlags, BufferEvent, Cb, FlushMode, Kind};
use crate::base::EventBase;
use crate::buffer::Evbuffer;
use crate::error::Result;
use crate::event::What;

#[derive(Default)]
pub(crate) struct Pair {
    pub(crate) partner: Option<BufferEvent>,
}

fn partner_of(base: &EventBase, h: BufferEvent) -> Option<BufferEvent> {
    match &base.bevs.get(h).ok()?.kind {
        Kind::Pair(p) => p.partner,
        _ => None,
    }
}

pub(crate) fn link(base: &mut EventBase, a: BufferEvent, b: BufferEvent) {
    for (x, y) in [(a, b), (b, a)] {
        if let Ok(bev) = base.bevs.get_mut(x) {
            if let Kind::Pair(p) = &mut bev.kind {
                p.partner = Some(y);
            }
        }
    }
}

/// One side was freed: what it had written still reaches the other side (as far as that side
/// reads), then the other side sees end of file, as a socket's peer would.
pub(crate) fn unlink(base: &mut EventBase, p: Pair, output: &mut Evbuffer) {
    let Some(partner) = p.partner else { return };
    let Ok(bev) = base.bevs.get_mut(partner) else {
        return;
    };
    if let Kind::Pair(pp) = &mut bev.kind {
        pp.partner = None;
    }
    let mut moved = 0;
    if bev.enabled.contains(What::READ) && bev.read_suspended == 0 {
        let n = output.len().min(bev.read_budget());
        moved = output.remove_buffer(&mut bev.input, n).unwrap_or(0);
    }
    if moved > 0 {
        after_read(base, partner, moved);
    }
    super::report(base, partner, BevFlags::EOF | BevFlags::READING, None);
}

/// Moves data both ways as far as enable flags and watermarks allow.
pub(crate) fn sync(base: &mut EventBase, h: BufferEvent) {
    let Some(p) = partner_of(base, h) else { return };
    transfer(base, h, p, false);
    transfer(base, p, h, false);
}

/// Moves `src`'s output into `dst`'s input; returns the bytes moved.
fn transfer(base: &mut EventBase, src: BufferEvent, dst: BufferEvent, ignore_wm: bool) -> usize {
    let Some((s, d)) = base.bevs.pair_mut(src, dst) else {
        return 0;
    };
    if !ignore_wm
        && (!s.enabled.contains(What::WRITE)
            || !d.enabled.contains(What::READ)
            || d.read_suspended != 0)
    {
        return 0;
    }
    let mut n = s.output.len();
    if !ignore_wm {
        n = n.min(d.read_budget()).min(s.write_budget());
    }
    if n == 0 {
        return 0;
    }
    let moved = s.output.remove_buffer(&mut d.input, n).unwrap_or(0);
    if moved > 0 {
        after_read(base, dst, moved);
        after_write(base, src, moved, false);
    }
    moved
}

pub(crate) fn flush(
    base: &mut EventBase,
    h: BufferEvent,
    what: What,
    mode: FlushMode,
) -> Result<bool> {
    base.bevs.get(h)?;
    if mode == FlushMode::Normal {
        return Ok(false);
    }
    let Some(p) = partner_of(base, h) else {
        return Ok(false);
    };
    let mut moved = 0;
    if what.contains(What::READ) {
        moved += transfer(base, p, h, true);
    }
    if what.contains(What::WRITE) {
        moved += transfer(base, h, p, true);
    }
    if mode == FlushMode::Finished {
        run_cb(base, p, Cb::Event(BevFlags::EOF | BevFlags::READING), false);
    }
    Ok(moved > 0)
}

//! Bufferevent pairs: two bufferevents joined in memory. What one writes, the other reads, with the
//! same watermark and callback rules as sockets; data moves chunk by chunk, without copying. As in
//! libevent, a pair always defers its callbacks to the loop (`BevOptions::DEFER_CALLBACKS`), so no
//! callback of one side runs inside a call on the other.

use super::bev::{self, read_done, report, write_done, Bev, Cb, Cx};
use super::kind::Kind;
use super::timeout;
use super::{BevFlags, BufferEvent, FlushMode};
use crate::error::Result;
use crate::event::What;

#[derive(Default)]
pub(crate) struct Pair {
    pub(crate) partner: Option<BufferEvent>,
}

fn partner_of(b: &Bev) -> Option<BufferEvent> {
    match &b.kind {
        Kind::Pair(p) => p.partner,
        _ => None,
    }
}

pub(crate) fn link(cx: &mut Cx, a: BufferEvent, b: BufferEvent) {
    let st = &mut *cx.st;
    for (x, y) in [(a, b), (b, a)] {
        if let Ok(bev) = st.get_mut(x) {
            if let Kind::Pair(p) = &mut bev.kind {
                p.partner = Some(y);
            }
        }
    }
}

impl Pair {
    /// One side is being freed: what it had written still reaches the other side (as far as that
    /// side reads), then the other side sees end of file, as a socket's peer would. Both through
    /// the other side's deferred callbacks.
    pub(crate) fn destruct(self, cx: &mut Cx, b: &mut Bev) {
        let Some(partner) = self.partner else { return };
        bev::deferring(cx, |cx| {
            let Ok(other) = cx.st.get_mut(partner) else {
                return;
            };
            if let Kind::Pair(pp) = &mut other.kind {
                pp.partner = None;
            }
            let mut moved = 0;
            if other.wants_read() {
                let n = b.output.get().len().min(other.read_budget());
                moved = b.output().remove_buffer(other.input(), n).unwrap_or(0);
            }
            if moved > 0 {
                read_done(cx, partner, moved);
            }
            report(cx, partner, BevFlags::EOF | BevFlags::READING, None);
        });
    }
}

/// Moves data both ways as far as enable flags and watermarks allow.
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    let Some(p) = cx.st.get(h).ok().and_then(partner_of) else {
        return;
    };
    transfer(cx, h, p, false);
    transfer(cx, p, h, false);
    timeout::adj(cx, h, What::NONE);
}

/// Moves `src`'s output into `dst`'s input; returns the bytes moved.
fn transfer(cx: &mut Cx, src: BufferEvent, dst: BufferEvent, ignore_wm: bool) -> usize {
    let Some((s, d)) = cx.st.get2_mut(src, dst) else {
        return 0;
    };
    let mut n = s.output.get().len();
    if !ignore_wm {
        if !s.enabled.contains(What::WRITE) || !d.wants_read() {
            return 0;
        }
        n = n.min(d.read_budget()).min(s.write_budget());
    }
    if n == 0 {
        return 0;
    }
    let moved = s.output().remove_buffer(d.input(), n).unwrap_or(0);
    if moved > 0 {
        // Data moved: both timeouts start over (the writer's stops if its output is empty).
        timeout::adj(cx, dst, What::READ);
        timeout::adj(cx, src, What::WRITE);
        read_done(cx, dst, moved);
        write_done(cx, src, moved);
    }
    moved
}

/// An API call: callbacks it triggers are deferred (as they always are for pairs).
pub(crate) fn flush(cx: &mut Cx, h: BufferEvent, what: What, mode: FlushMode) -> Result<bool> {
    let Some(p) = partner_of(cx.st.get(h)?) else {
        return Ok(false);
    };
    if mode == FlushMode::Normal {
        return Ok(false);
    }
    bev::deferring(cx, |cx| {
        let mut moved = 0;
        if what.contains(What::READ) {
            moved += transfer(cx, p, h, true);
        }
        if what.contains(What::WRITE) {
            moved += transfer(cx, h, p, true);
        }
        if mode == FlushMode::Finished {
            bev::run_cb(cx, p, Cb::Event(BevFlags::EOF | BevFlags::READING));
        }
        Ok(moved > 0)
    })
}

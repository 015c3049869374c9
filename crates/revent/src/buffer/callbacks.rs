//! Change callbacks (libevent's `evbuffer_add_cb` family) and the owner's watch.
//!
//! Changes are recorded as they happen and delivered when the operation is done with the buffer: the
//! callbacks receive the buffer itself (`&mut Evbuffer`), so they may read it, or change it (those
//! changes are delivered in turn, once the current round is over). In deferred mode the changes are
//! summed until the buffer's owner runs them from the event loop.

use super::Evbuffer;
use crate::error::{Error, Result};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// What changed, as told to a callback (libevent's `struct evbuffer_cb_info`).
///
/// ```
/// use revent::buffer::{CallbackInfo, Evbuffer};
/// use std::sync::{Arc, Mutex};
/// let last = Arc::new(Mutex::new(None));
/// let l = last.clone();
/// let mut buf = Evbuffer::new();
/// buf.add(b"abc").unwrap();
/// buf.add_cb(move |_, info| *l.lock().unwrap() = Some(*info));
/// buf.drain(1).unwrap();
/// let want = CallbackInfo { orig_size: 3, n_added: 0, n_deleted: 1 };
/// assert_eq!(*last.lock().unwrap(), Some(want));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackInfo {
    /// The buffer's length before the change(s) reported here.
    pub orig_size: usize,
    /// Bytes added.
    pub n_added: usize,
    /// Bytes removed.
    pub n_deleted: usize,
}

/// Names a registered callback, for [`Evbuffer::remove_cb`].
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// let id = buf.add_cb(|_, _| panic!("disabled"));
/// buf.set_cb_enabled(id, false).unwrap();
/// buf.add(b"x").unwrap();
/// buf.remove_cb(id).unwrap();
/// assert!(buf.remove_cb(id).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// A change callback: the buffer and what changed.
///
/// ```
/// use revent::buffer::{ChangeCb, Evbuffer};
/// let log_size: Box<ChangeCb> = Box::new(|buf, info| println!("{} -> {}", info.orig_size, buf.len()));
/// let mut buf = Evbuffer::new();
/// buf.add_cb(log_size);
/// buf.add(b"hi").unwrap();
/// ```
pub type ChangeCb = dyn FnMut(&mut Evbuffer, &CallbackInfo) + Send;

struct Entry {
    id: u64,
    enabled: bool,
    /// Taken out while it runs.
    f: Option<Box<ChangeCb>>,
}

// `entries` first: the Evbuffer's layout puts it at the end of its second cache line.
#[derive(Default)]
#[repr(C)]
pub(super) struct Callbacks {
    entries: Vec<Entry>,
    next_id: u64,
    deferred: bool,
    delivering: bool,
    /// Changes not yet delivered.
    pending: Option<CallbackInfo>,
}

impl Callbacks {
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn add(&mut self, f: Box<ChangeCb>) -> CallbackId {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            enabled: true,
            f: Some(f),
        });
        CallbackId(id)
    }

    pub(super) fn remove(&mut self, id: CallbackId) -> Result<()> {
        let i = self.find(id.0)?;
        self.entries.remove(i);
        Ok(())
    }

    pub(super) fn set_enabled(&mut self, id: CallbackId, enabled: bool) -> Result<()> {
        let i = self.find(id.0)?;
        self.entries[i].enabled = enabled;
        Ok(())
    }

    fn find(&self, id: u64) -> Result<usize> {
        self.entries
            .iter()
            .position(|e| e.id == id)
            .ok_or(Error::InvalidArgument("no such buffer callback"))
    }

    pub(super) fn set_deferred(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    pub(super) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Records one operation's change; returns whether to deliver now.
    pub(super) fn record(&mut self, orig_size: usize, n_added: usize, n_deleted: usize) -> bool {
        if self.entries.is_empty() || (n_added == 0 && n_deleted == 0) {
            return false;
        }
        let p = self.pending.get_or_insert(CallbackInfo {
            orig_size,
            n_added: 0,
            n_deleted: 0,
        });
        p.n_added = p.n_added.saturating_add(n_added);
        p.n_deleted = p.n_deleted.saturating_add(n_deleted);
        !self.deferred && !self.delivering
    }

    /// The next enabled callback at index `*at` or later, taken out of its entry.
    fn take_next(&mut self, at: &mut usize) -> Option<(u64, Box<ChangeCb>)> {
        while let Some(e) = self.entries.get_mut(*at) {
            *at += 1;
            if e.enabled {
                if let Some(f) = e.f.take() {
                    return Some((e.id, f));
                }
            }
        }
        None
    }

    /// Puts a callback back after it ran, unless it was removed meanwhile; returns the index after it.
    fn put_back(&mut self, id: u64, f: Box<ChangeCb>, at: usize) -> usize {
        match self.entries.iter().position(|e| e.id == id) {
            Some(i) => {
                if self.entries[i].f.is_none() {
                    self.entries[i].f = Some(f);
                }
                i + 1
            }
            // Removed by itself or another callback: the entries after it moved down by one.
            None => at.saturating_sub(1),
        }
    }
}

/// The owner's watch on a buffer: told of the first change after each acknowledgement.
pub(super) struct Watch {
    pub(super) notify: Box<dyn Fn() + Send>,
    pub(super) notified: bool,
}

impl Evbuffer {
    /// Delivers pending changes to the callbacks, round after round while callbacks make changes.
    pub(super) fn deliver_callbacks(&mut self) {
        self.cbs.delivering = true;
        while let Some(info) = self.cbs.pending.take() {
            let mut at = 0;
            while let Some((id, mut f)) = self.cbs.take_next(&mut at) {
                let r = catch_unwind(AssertUnwindSafe(|| f(self, &info)));
                at = self.cbs.put_back(id, f, at);
                if let Err(payload) = r {
                    self.cbs.delivering = false;
                    resume_unwind(payload);
                }
            }
        }
        self.cbs.delivering = false;
    }

    /// The slow half of `changed`: the watch, then the callbacks.
    #[cold]
    pub(super) fn changed_slow(&mut self, orig_size: usize, n_added: usize, n_deleted: usize) {
        if n_added == 0 && n_deleted == 0 {
            return;
        }
        if let Some(w) = &mut self.watch {
            if !w.notified {
                w.notified = true;
                (w.notify)();
            }
        }
        if self.cbs.record(orig_size, n_added, n_deleted) {
            self.deliver_callbacks();
        }
    }

    // ---- the owner's side ----

    /// Lets the buffer's owner (a bufferevent) hear of changes made through any path, a foreign
    /// pointer included: `notify` runs at the first change after each [`watch_seen`](Self::watch_seen).
    pub(crate) fn set_watch(&mut self, notify: Box<dyn Fn() + Send>) {
        self.watch = Some(Watch {
            notify,
            notified: false,
        });
    }

    /// The owner is about to look at the buffer (or just did): changes up to now need no notice.
    #[inline]
    pub(crate) fn watch_seen(&mut self) {
        if let Some(w) = &mut self.watch {
            w.notified = false;
        }
    }

    /// Runs `f`, a change the owner makes itself (its socket I/O), with no notice to the owner, who
    /// knows of it; the watch is left as it was. Only for a buffer without change callbacks: one of
    /// those could change the buffer in the middle of `f`, and that change the owner must hear of.
    #[inline]
    pub(crate) fn by_owner<R>(&mut self, f: impl FnOnce(&mut Evbuffer) -> R) -> R {
        let quiet = match &mut self.watch {
            Some(w) if !w.notified && self.cbs.is_empty() => {
                w.notified = true;
                true
            }
            _ => false,
        };
        let r = f(self);
        if quiet {
            self.watch_seen();
        }
        r
    }

    /// The owner already knows a change is coming (it handed out `&mut` itself): no notice needed
    /// until the next [`watch_seen`](Self::watch_seen).
    #[inline]
    pub(crate) fn watch_expect(&mut self) {
        if let Some(w) = &mut self.watch {
            w.notified = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Evbuffer;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A buffer whose watch counts its notices.
    fn watched() -> (Evbuffer, Arc<AtomicUsize>) {
        let notices = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&notices);
        let mut b = Evbuffer::new();
        b.set_watch(Box::new(move || {
            n.fetch_add(1, Ordering::Relaxed);
        }));
        (b, notices)
    }

    #[test]
    fn the_owners_own_change_sends_no_notice_and_leaves_the_watch_armed() {
        let (mut b, notices) = watched();
        b.by_owner(|b| b.add(b"from the socket")).unwrap();
        assert_eq!(notices.load(Ordering::Relaxed), 0);
        // A foreign change after it is noticed, once until the owner looks again.
        b.add(b"through a pointer").unwrap();
        b.add(b"again").unwrap();
        assert_eq!(notices.load(Ordering::Relaxed), 1);
        b.watch_seen();
        b.drain(3).unwrap();
        assert_eq!(notices.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn with_change_callbacks_the_owners_change_is_noticed() {
        // A change callback may change the buffer in the middle of the owner's change: the owner
        // must hear of it, so nothing is kept quiet then.
        let (mut b, notices) = watched();
        b.add_cb(|buf, info| {
            if info.n_added > 0 && buf.len() == 1 {
                buf.add(b"more").unwrap();
            }
        });
        b.by_owner(|b| b.add(b"x")).unwrap();
        assert_eq!(notices.load(Ordering::Relaxed), 1);
        assert_eq!(b.len(), 5);
    }
}

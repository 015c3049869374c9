//! Change callbacks (libevent's `evbuffer_add_cb` family).

use crate::error::{Error, Result};

/// What changed, as told to a callback (libevent's `struct evbuffer_cb_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackInfo {
    /// The buffer's length before the change(s) reported here.
    pub orig_size: usize,
    /// Bytes added.
    pub n_added: usize,
    /// Bytes removed.
    pub n_deleted: usize,
}

/// Names a registered callback, for [`Evbuffer::remove_cb`](super::Evbuffer::remove_cb).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

type Cb = Box<dyn FnMut(&CallbackInfo) + Send>;

struct Entry {
    id: u64,
    enabled: bool,
    f: Cb,
}

#[derive(Default)]
pub(super) struct Callbacks {
    entries: Vec<Entry>,
    next_id: u64,
    deferred: bool,
    pending: Option<CallbackInfo>,
}

impl Callbacks {
    pub(super) fn add(&mut self, f: Cb) -> CallbackId {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            enabled: true,
            f,
        });
        CallbackId(id)
    }

    pub(super) fn remove(&mut self, id: CallbackId) -> Result<()> {
        let i = self.find(id)?;
        self.entries.remove(i);
        Ok(())
    }

    pub(super) fn set_enabled(&mut self, id: CallbackId, enabled: bool) -> Result<()> {
        let i = self.find(id)?;
        self.entries[i].enabled = enabled;
        Ok(())
    }

    fn find(&self, id: CallbackId) -> Result<usize> {
        self.entries
            .iter()
            .position(|e| e.id == id.0)
            .ok_or(Error::InvalidArgument("no such buffer callback"))
    }

    pub(super) fn set_deferred(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    /// Reports one operation's change. Inline fast path: nothing to do without callbacks.
    #[inline]
    pub(super) fn notify(&mut self, orig_size: usize, n_added: usize, n_deleted: usize) {
        if self.entries.is_empty() || (n_added == 0 && n_deleted == 0) {
            return;
        }
        self.notify_slow(orig_size, n_added, n_deleted);
    }

    #[cold]
    fn notify_slow(&mut self, orig_size: usize, n_added: usize, n_deleted: usize) {
        if self.deferred {
            let p = self.pending.get_or_insert(CallbackInfo {
                orig_size,
                n_added: 0,
                n_deleted: 0,
            });
            p.n_added = p.n_added.saturating_add(n_added);
            p.n_deleted = p.n_deleted.saturating_add(n_deleted);
            return;
        }
        let info = CallbackInfo {
            orig_size,
            n_added,
            n_deleted,
        };
        self.deliver(&info);
    }

    pub(super) fn run_deferred(&mut self) {
        if let Some(info) = self.pending.take() {
            self.deliver(&info);
        }
    }

    fn deliver(&mut self, info: &CallbackInfo) {
        for e in self.entries.iter_mut().filter(|e| e.enabled) {
            (e.f)(info);
        }
    }
}

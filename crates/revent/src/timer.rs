//! Timers: a 4-ary min-heap whose entries know their index, plus libevent's common timeouts.
//!
//! Every timer is identified by a `key` (the event's slot index in the base). A timer lives either in
//! the heap directly, or in a *common-timeout queue*: a FIFO of timers that all share one duration.
//! Because every timer in such a queue was added with the same duration, appending keeps the queue
//! sorted, so adding costs O(1); only the queue's head sits in the heap. This is what makes 100,000
//! idle-connection timeouts cheap.
//!
//! Ties between equal deadlines break by insertion order (a sequence number), so timers added in one
//! iteration with one duration fire in the order they were added.
//!
//! A queue's heap entry is refreshed lazily: removing the queue's head (the common case: an idle
//! timeout reset by activity) only unlinks it, leaving the entry at the old, earlier key. Such an
//! entry is never later than the true head, so it cannot delay a timer; when it reaches the top of
//! the heap it is corrected (or dropped, for an empty queue) before anything fires.

const NONE: u32 = u32::MAX;
/// Heap tags with this bit set name a common-timeout queue rather than a single timer.
const QUEUE_BIT: u32 = 1 << 31;

/// One heap entry: 16 bytes, so four children share a cache line.
#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: u64,
    seq: u32,
    /// A timer key, or `QUEUE_BIT | queue index`.
    tag: u32,
}

impl Entry {
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        // Sequence numbers wrap; among live timers they differ by far less than 2^31.
        self.deadline < other.deadline
            || (self.deadline == other.deadline && (self.seq.wrapping_sub(other.seq) as i32) < 0)
    }
}

/// Per-key state.
#[derive(Clone, Copy, Debug)]
struct Node {
    deadline: u64,
    seq: u32,
    /// Heap position when in the heap directly; unused when queued.
    pos: u32,
    /// Queue links (when queued).
    prev: u32,
    next: u32,
    /// `NONE` when in the heap directly; else the queue index.
    queue: u32,
    armed: bool,
}

const EMPTY_NODE: Node = Node {
    deadline: 0,
    seq: 0,
    pos: NONE,
    prev: NONE,
    next: NONE,
    queue: NONE,
    armed: false,
};

#[derive(Clone, Copy, Debug)]
struct Queue {
    duration: u64,
    head: u32,
    tail: u32,
    /// Position of this queue's entry in the heap, `NONE` while empty.
    pos: u32,
}

/// The set of armed timers of one event base.
#[derive(Default, Debug)]
pub(crate) struct Timers {
    nodes: Vec<Node>,
    heap: Vec<Entry>,
    queues: Vec<Queue>,
    seq: u32,
    len: usize,
}

/// At most this many common durations per base (libevent's limit).
pub(crate) const MAX_COMMON: usize = 256;

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers::default()
    }

    /// Number of armed timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Registers `duration` (ns) as a common timeout and returns its queue index. Registering a
    /// duration twice returns the same queue.
    pub(crate) fn add_common(&mut self, duration: u64) -> Option<usize> {
        if let Some(i) = self.common_queue(duration) {
            return Some(i);
        }
        if self.queues.len() >= MAX_COMMON {
            return None;
        }
        self.queues.push(Queue {
            duration,
            head: NONE,
            tail: NONE,
            pos: NONE,
        });
        Some(self.queues.len() - 1)
    }

    /// The common queue for `duration`, if one was registered.
    #[inline]
    pub(crate) fn common_queue(&self, duration: u64) -> Option<usize> {
        self.queues.iter().position(|q| q.duration == duration)
    }

    /// Whether `key` is armed, and its deadline.
    #[cfg(test)]
    pub(crate) fn deadline(&self, key: u32) -> Option<u64> {
        match self.nodes.get(key as usize) {
            Some(n) if n.armed => Some(n.deadline),
            _ => None,
        }
    }

    /// Arms `key` to fire at `deadline`; `queue` names a common queue whose duration produced it.
    /// The key must not be armed already.
    pub(crate) fn insert(&mut self, key: u32, deadline: u64, queue: Option<usize>) {
        let k = key as usize;
        if k >= self.nodes.len() {
            self.nodes.resize(k + 1, EMPTY_NODE);
        }
        debug_assert!(!self.nodes[k].armed, "timer armed twice");
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.len += 1;
        match queue {
            None => {
                self.nodes[k] = Node {
                    deadline,
                    seq,
                    armed: true,
                    ..EMPTY_NODE
                };
                let pos = self.heap.len();
                self.heap.push(Entry {
                    deadline,
                    seq,
                    tag: key,
                });
                self.sift_up(pos);
            }
            Some(q) => {
                self.nodes[k] = Node {
                    deadline,
                    seq,
                    queue: q as u32,
                    armed: true,
                    ..EMPTY_NODE
                };
                self.queue_insert(q, key);
            }
        }
    }

    /// Disarms `key`; returns whether it was armed.
    pub(crate) fn remove(&mut self, key: u32) -> bool {
        let Some(node) = self.nodes.get(key as usize).copied() else {
            return false;
        };
        if !node.armed {
            return false;
        }
        self.len -= 1;
        self.nodes[key as usize].armed = false;
        if node.queue == NONE {
            self.heap_remove(node.pos as usize);
        } else {
            self.queue_unlink(node.queue as usize, key);
        }
        true
    }

    /// The earliest deadline, if any timer is armed.
    #[inline]
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        self.settle_top();
        self.heap.first().map(|e| e.deadline)
    }

    /// Brings a stale queue entry at the top of the heap up to date, until the top is exact.
    #[inline]
    fn settle_top(&mut self) {
        while let Some(top) = self.heap.first() {
            if top.tag & QUEUE_BIT == 0 || !self.refresh_top_queue((top.tag & !QUEUE_BIT) as usize)
            {
                return;
            }
        }
    }

    /// Disarms and returns the earliest timer whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<u32> {
        self.settle_top();
        let top = *self.heap.first()?;
        if top.deadline > now {
            return None;
        }
        let key = if top.tag & QUEUE_BIT != 0 {
            self.queues[(top.tag & !QUEUE_BIT) as usize].head
        } else {
            top.tag
        };
        self.remove(key);
        Some(key)
    }

    // ---- common queues ----

    /// Inserts `key` into queue `q` in deadline order. Almost always this appends at the tail (one
    /// duration, a clock that only moves forward); a re-armed persistent timer whose deadline was
    /// computed from its previous one may belong a little earlier, so scan back from the tail.
    fn queue_insert(&mut self, q: usize, key: u32) {
        let node = self.nodes[key as usize];
        let mut after = self.queues[q].tail;
        while after != NONE {
            let a = self.nodes[after as usize];
            if a.deadline <= node.deadline {
                break;
            }
            after = a.prev;
        }
        let next = if after == NONE {
            self.queues[q].head
        } else {
            self.nodes[after as usize].next
        };
        self.nodes[key as usize].prev = after;
        self.nodes[key as usize].next = next;
        if after == NONE {
            self.queues[q].head = key;
        } else {
            self.nodes[after as usize].next = key;
        }
        if next == NONE {
            self.queues[q].tail = key;
        } else {
            self.nodes[next as usize].prev = key;
        }
        if self.queues[q].head == key {
            self.queue_head_changed(q);
        }
    }

    /// Unlinks `key` from queue `q`. The queue's heap entry is left as it is (see the module docs).
    fn queue_unlink(&mut self, q: usize, key: u32) {
        let Node { prev, next, .. } = self.nodes[key as usize];
        if prev == NONE {
            self.queues[q].head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NONE {
            self.queues[q].tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// A new head was linked into queue `q`: make sure the queue's heap entry is no later than it.
    fn queue_head_changed(&mut self, q: usize) {
        let h = self.nodes[self.queues[q].head as usize];
        let entry = Entry {
            deadline: h.deadline,
            seq: h.seq,
            tag: QUEUE_BIT | q as u32,
        };
        let pos = self.queues[q].pos;
        if pos == NONE {
            let p = self.heap.len();
            self.heap.push(entry);
            self.sift_up(p);
        } else if entry.before(&self.heap[pos as usize]) {
            self.heap[pos as usize] = entry;
            self.sift_up(pos as usize);
        }
    }

    /// Corrects the queue entry at the top of the heap to the queue's true head (or drops it for an
    /// empty queue). Returns false if nothing needed correcting.
    fn refresh_top_queue(&mut self, q: usize) -> bool {
        let head = self.queues[q].head;
        if head == NONE {
            self.heap_remove(0);
            return true;
        }
        let h = self.nodes[head as usize];
        let top = &mut self.heap[0];
        if top.deadline == h.deadline && top.seq == h.seq {
            return false;
        }
        top.deadline = h.deadline;
        top.seq = h.seq;
        self.sift_down(0);
        true
    }

    // ---- heap ----

    #[inline]
    fn set_pos(&mut self, tag: u32, pos: usize) {
        if tag & QUEUE_BIT != 0 {
            self.queues[(tag & !QUEUE_BIT) as usize].pos = pos as u32;
        } else {
            self.nodes[tag as usize].pos = pos as u32;
        }
    }

    fn heap_remove(&mut self, pos: usize) {
        let removed = self.heap[pos].tag;
        self.set_pos(removed, NONE as usize);
        let last = self.heap.pop().expect("heap_remove on an empty heap");
        if pos < self.heap.len() {
            self.heap[pos] = last;
            self.set_pos(last.tag, pos);
            // The moved entry may belong above or below its new place.
            let p = self.sift_up(pos);
            if p == pos {
                self.sift_down(pos);
            }
        }
    }

    /// Moves the entry at `pos` up to its place; returns where it ended.
    fn sift_up(&mut self, mut pos: usize) -> usize {
        let e = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / 4;
            if !e.before(&self.heap[parent]) {
                break;
            }
            self.heap[pos] = self.heap[parent];
            self.set_pos(self.heap[pos].tag, pos);
            pos = parent;
        }
        self.heap[pos] = e;
        self.set_pos(e.tag, pos);
        pos
    }

    fn sift_down(&mut self, mut pos: usize) {
        let e = self.heap[pos];
        let n = self.heap.len();
        loop {
            let first = pos * 4 + 1;
            if first >= n {
                break;
            }
            let last = (first + 4).min(n);
            let mut best = first;
            for c in first + 1..last {
                if self.heap[c].before(&self.heap[best]) {
                    best = c;
                }
            }
            if !self.heap[best].before(&e) {
                break;
            }
            self.heap[pos] = self.heap[best];
            self.set_pos(self.heap[pos].tag, pos);
            pos = best;
        }
        self.heap[pos] = e;
        self.set_pos(e.tag, pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let mut t = Timers::new();
        t.insert(3, 30, None);
        t.insert(1, 10, None);
        t.insert(2, 10, None);
        t.insert(0, 5, None);
        assert_eq!(t.next_deadline(), Some(5));
        let mut got = vec![];
        while let Some(k) = t.pop_expired(100) {
            got.push(k);
        }
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn common_queue_holds_one_heap_entry() {
        let mut t = Timers::new();
        let q = t.add_common(100).unwrap();
        assert_eq!(t.add_common(100), Some(q));
        for k in 0..10u32 {
            t.insert(k, 100 + k as u64, Some(q));
        }
        assert_eq!(t.heap.len(), 1);
        assert!(t.remove(0));
        assert!(!t.remove(0));
        assert_eq!(t.next_deadline(), Some(101));
        assert_eq!(t.pop_expired(104), Some(1));
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn not_expired_stays() {
        let mut t = Timers::new();
        t.insert(7, 50, None);
        assert_eq!(t.pop_expired(49), None);
        assert_eq!(t.deadline(7), Some(50));
        assert_eq!(t.pop_expired(50), Some(7));
        assert_eq!(t.deadline(7), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add {
            key: u32,
            delay: u64,
            common: Option<usize>,
        },
        Remove {
            key: u32,
        },
        Advance {
            by: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..40, 0u64..100, prop::option::of(0usize..3))
                .prop_map(|(key, delay, common)| Op::Add { key, delay, common }),
            2 => (0u32..40).prop_map(|key| Op::Remove { key }),
            2 => (0u64..60).prop_map(|by| Op::Advance { by }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 3 } else { 256 },
            ..ProptestConfig::default()
        })]

        /// Every armed timer fires exactly once, in (deadline, insertion) order, none lost; removed
        /// timers never fire. The model is a map ordered by (deadline, insertion sequence).
        #[test]
        fn timers_match_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 60 } else { 200 })) {
            let durations = [7u64, 20, 45];
            let mut t = Timers::new();
            let queues: Vec<usize> = durations.iter().map(|d| t.add_common(*d).unwrap()).collect();
            let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
            let mut where_: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            let mut now = 0u64;
            let mut seq = 0u64;
            let run = |t: &mut Timers, model: &mut BTreeMap<(u64, u64), u32>,
                           where_: &mut BTreeMap<u32, (u64, u64)>, now: u64| {
                while let Some(k) = t.pop_expired(now) {
                    let (&pos, &mk) = model.iter().next().expect("fired a timer the model lacks");
                    prop_assert!(pos.0 <= now);
                    prop_assert_eq!(k, mk);
                    model.remove(&pos);
                    where_.remove(&k);
                }
                if let Some((&(d, _), _)) = model.iter().next() {
                    prop_assert!(d > now, "timer at {} not fired at {}", d, now);
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Add { key, delay, common } => {
                        if let Some(pos) = where_.remove(&key) {
                            model.remove(&pos);
                            prop_assert!(t.remove(key));
                        }
                        let (deadline, q) = match common {
                            Some(i) => (now + durations[i], Some(queues[i])),
                            None => (now + delay, None),
                        };
                        t.insert(key, deadline, q);
                        model.insert((deadline, seq), key);
                        where_.insert(key, (deadline, seq));
                        seq += 1;
                    }
                    Op::Remove { key } => {
                        let was = where_.remove(&key);
                        if let Some(pos) = was {
                            model.remove(&pos);
                        }
                        prop_assert_eq!(t.remove(key), was.is_some());
                    }
                    Op::Advance { by } => {
                        now += by;
                        run(&mut t, &mut model, &mut where_, now)?;
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.next_deadline(), model.keys().next().map(|p| p.0));
            }
            now += 1000;
            run(&mut t, &mut model, &mut where_, now)?;
            prop_assert!(model.is_empty());
            prop_assert_eq!(t.len(), 0);
        }
    }
}

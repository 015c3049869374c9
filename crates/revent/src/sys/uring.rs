//! The one unsafe step of the io_uring backend: pushing a submission queue entry.

use io_uring::{opcode, squeue, types, IoUring};

/// A request the io_uring backend makes. Neither kind carries a pointer: nothing has to outlive
/// the submission, which is what makes [`push`] sound.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sqe {
    /// Watch `fd` for `mask` (poll bits), one-shot or multishot; completions carry `user_data`.
    PollAdd {
        fd: i32,
        mask: u32,
        multi: bool,
        user_data: u64,
    },
    /// Cancel the poll request whose user_data is `target`; its own completion carries `user_data`.
    PollRemove { target: u64, user_data: u64 },
}

impl Sqe {
    fn entry(self) -> squeue::Entry {
        match self {
            Sqe::PollAdd {
                fd,
                mask,
                multi,
                user_data,
            } => opcode::PollAdd::new(types::Fd(fd), mask)
                .multi(multi)
                .build()
                .user_data(user_data),
            Sqe::PollRemove { target, user_data } => {
                opcode::PollRemove::new(target).build().user_data(user_data)
            }
        }
    }
}

/// Queues `sqe` on `ring`'s submission queue; `false` if the queue is full (the caller submits and
/// tries again).
pub(crate) fn push(ring: &mut IoUring, sqe: Sqe) -> bool {
    let entry = sqe.entry();
    // SAFETY: `push` is unsafe because the kernel may read buffers an entry points to after this
    // returns. POLL_ADD and POLL_REMOVE entries point to nothing (an fd, a mask, user_data values),
    // so there is nothing whose lifetime could end too early.
    unsafe { ring.submission().push(&entry).is_ok() }
}

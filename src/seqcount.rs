//! [`SeqCount`]: a sequence counter (Linux's `seqcount_t`) that lets a
//! reader take a consistent cut of a session — several variables, the
//! revision and the event log's tail as of one instant — without taking the
//! lock that writers hold.
//!
//! Writers are serialised by the session's write mutex (the counter has no
//! lock of its own). Each change of the session is one *write section*:
//! [`SeqCount::write`] makes the count odd before the first visible store and
//! even again after the last. A reader notes the count, reads, and checks that
//! the count is unchanged and was even: then no write section overlapped its
//! reads, and what it read is the state between two writes. A reader that
//! keeps overlapping writes gives up after a few tries (it never spins
//! unboundedly) and the caller takes the write mutex instead.
//!
//! # Orderings (Boehm, "Can seqlocks get along with programming language
//! memory models?", 2012)
//!
//! * Writer: `store(odd, Relaxed)`, `fence(Release)`, the section's stores,
//!   `store(even, Release)`.
//! * Reader: `load(Acquire)` → `s1`, the reads, `fence(Acquire)`,
//!   `load(Relaxed)` → `s2`; valid iff `s1 == s2` and `s1` is even.
//!
//! If a read saw any store of a section, the writer's `fence(Release)` after
//! its odd store synchronises with the reader's `fence(Acquire)`, so `s2`
//! sees the odd count or later: the try is discarded. If `s1` saw the even
//! count that ends a section, the `Release`/`Acquire` pair makes every store
//! of that section visible to the reads. The reads themselves are atomic
//! loads or lock-protected (never torn); a discarded try only drops the
//! `Arc`s it cloned. loom checks this protocol (`loom_seqcount` in
//! `src/loom_tests.rs`).

use crate::sync::{AtomicU64, Ordering, fence};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct SeqCount {
    seq: AtomicU64,
}

/// An open write section; closing it (on drop) publishes the section.
#[must_use = "the section closes when this guard is dropped"]
pub(crate) struct WriteSection<'a> {
    count: &'a SeqCount,
    odd: u64,
}

impl SeqCount {
    /// Opens a write section. The caller holds the lock that serialises
    /// writers, and opens the section before its first store that a reader
    /// could see.
    pub(crate) fn write(&self) -> WriteSection<'_> {
        // Only writers store, and they are serialised: a relaxed load sees
        // the last writer's value.
        let odd = self.seq.load(Ordering::Relaxed) + 1;
        self.seq.store(odd, Ordering::Relaxed);
        // Orders the odd count before every store of the section.
        fence(Ordering::Release);
        WriteSection { count: self, odd }
    }

    /// Runs `read` until one run overlapped no write section, at most
    /// `tries` times. `None` if every run overlapped one (the caller then
    /// reads under the writers' lock).
    pub(crate) fn read<R>(&self, tries: u32, mut read: impl FnMut() -> R) -> Option<R> {
        for attempt in 0..tries {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let r = read();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return Some(r);
                }
            }
            for _ in 0..(1u32 << attempt.min(6)) {
                std::hint::spin_loop();
            }
        }
        None
    }
}

impl Drop for WriteSection<'_> {
    fn drop(&mut self) {
        self.count.seq.store(self.odd + 1, Ordering::Release);
    }
}

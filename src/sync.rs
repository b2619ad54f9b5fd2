//! The synchronisation primitives the crate is built on, in one place so that
//! the loom model tests (`RUSTFLAGS="--cfg loom"`) can swap every lock and
//! atomic for loom's instrumented versions, as tokio does.
//!
//! Outside loom: `parking_lot` locks (small, no poisoning). Under loom:
//! loom's `Mutex` and `RwLock` behind the same API. The publication of a
//! variable's state is built on these in `publish.rs`.

pub(crate) use std::sync::Arc;
use std::task::Waker;

#[cfg(not(loom))]
mod imp {
    pub(crate) use parking_lot::{Mutex, MutexGuard, RwLock};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::MutexGuard;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

    /// `parking_lot`-shaped wrapper over loom's mutex.
    #[derive(Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(loom::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    /// `parking_lot`-shaped wrapper over loom's rwlock.
    #[derive(Default)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);
    impl<T> RwLock<T> {
        pub(crate) fn new(v: T) -> Self {
            RwLock(loom::sync::RwLock::new(v))
        }
        pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0.read().unwrap()
        }
        pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap()
        }
    }
}

pub(crate) use imp::*;

/// A task's waker, registered and woken without a lock: `atomic-waker`'s
/// (the algorithm of `futures`' `AtomicWaker`), or loom's model of it.
#[derive(Default)]
pub(crate) struct AtomicWaker(
    #[cfg(not(loom))] atomic_waker::AtomicWaker,
    #[cfg(loom)] loom::future::AtomicWaker,
);

impl AtomicWaker {
    /// Makes `waker` the one to wake (a no-op if the registered one would
    /// wake the same task). A `wake` racing with it wakes `waker`.
    pub(crate) fn register(&self, waker: &Waker) {
        #[cfg(not(loom))]
        self.0.register(waker);
        #[cfg(loom)]
        self.0.register_by_ref(waker);
    }

    /// Wakes the registered waker, if any, and unregisters it.
    pub(crate) fn wake(&self) {
        self.0.wake();
    }

    /// Unregisters the waker and hands it back.
    pub(crate) fn take(&self) -> Option<Waker> {
        #[cfg(not(loom))]
        return self.0.take();
        #[cfg(loom)]
        return self.0.take_waker();
    }
}

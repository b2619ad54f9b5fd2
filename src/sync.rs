//! The synchronisation primitives the crate is built on, in one place so that
//! the loom model tests (`RUSTFLAGS="--cfg loom"`) can swap every lock and
//! atomic for loom's instrumented versions, as tokio does.
//!
//! Outside loom: `parking_lot` locks (small, no poisoning) and `arc_swap` for
//! the lock-free current value of a variable. Under loom: loom's `Mutex` and
//! `RwLock` behind the same API, and an [`ArcCell`] made of a loom `Mutex`.

pub(crate) use std::sync::Arc;

#[cfg(not(loom))]
mod imp {
    pub(crate) use parking_lot::{Mutex, MutexGuard, RwLock};
    use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

    /// A shared, atomically replaceable `Arc<T>`; loads take no lock.
    pub(crate) struct ArcCell<T>(arc_swap::ArcSwap<T>);

    impl<T> ArcCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            ArcCell(arc_swap::ArcSwap::new(value))
        }
        pub(crate) fn load_full(&self) -> Arc<T> {
            self.0.load_full()
        }
        /// Runs `f` on the current value without touching its reference count.
        pub(crate) fn with<R>(&self, f: impl FnOnce(&Arc<T>) -> R) -> R {
            f(&self.0.load())
        }
        pub(crate) fn store(&self, value: Arc<T>) {
            self.0.store(value)
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::MutexGuard;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
    use std::sync::Arc;

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

    pub(crate) struct ArcCell<T>(loom::sync::Mutex<Arc<T>>);
    impl<T> ArcCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            ArcCell(loom::sync::Mutex::new(value))
        }
        pub(crate) fn load_full(&self) -> Arc<T> {
            self.0.lock().unwrap().clone()
        }
        pub(crate) fn with<R>(&self, f: impl FnOnce(&Arc<T>) -> R) -> R {
            f(&self.load_full())
        }
        pub(crate) fn store(&self, value: Arc<T>) {
            *self.0.lock().unwrap() = value;
        }
    }
}

pub(crate) use imp::*;

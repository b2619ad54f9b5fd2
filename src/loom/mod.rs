//! loom models of varwatch's concurrency protocols, one file per protocol:
//!
//! * [`wakeup`]: subscribe / notify / unsubscribe (a watch's
//!   register-then-check against a writer's append-then-wake; closing);
//! * [`cut`]: write sections and consistent cuts (the session's `SeqCount`,
//!   and a resyncing watch that must hand out cuts);
//! * [`publish`]: a variable's cell (the stamp a remembering reader
//!   compares, the swap a writer makes, records held while reused).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_` (see
//! `.ci/run` for the preemption bound). Every lock and atomic of the store
//! is loom's (see `sync.rs`), so loom explores the interleavings of the
//! threads of each model. A lost wake-up shows as a deadlock of
//! `block_on`; a wrong snapshot, a torn cut or a stale read as a failed
//! assert.

use std::future::poll_fn;

use crate::{SessionOptions, SessionStore, VarDef, VarType, Watch};

mod cut;
mod publish;
mod wakeup;

/// The next event of `w`, blocking the model's thread until there is one.
fn next(w: &mut Watch) -> Option<crate::WatchEvent> {
    loom::future::block_on(poll_fn(|cx| w.poll_recv(cx)))
}

/// A store with session `s` holding integer `x` = 1.
fn store_with_x() -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 1))
        .unwrap();
    store
}

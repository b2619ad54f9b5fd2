//! A watch opened with [`WatchOptions::resume_from`]: its first group is
//! what the watcher is missing, not the initial states. One function for
//! every store (the local store's `local/mod.rs`, the etcd store's
//! `etcd/watch.rs`; a remote store passes the resume to its server, which
//! runs one of these).
//!
//! The watch registers and reads its snapshot atomically, as any other;
//! then, per variable, the catch-up rule (`catch_up.rs`) turns "the watcher
//! has version *s*" and "the snapshot holds version *v*" into the group's
//! events. Variables the watcher names but the snapshot does not have are
//! deleted: the store says at which version if it remembers.
//!
//! [`WatchOptions::resume_from`]: crate::WatchOptions::resume_from

use super::catch_up::{Held, Mode, Now, catch_up};
use super::options::Resume;
use super::{EventKind, WatchEvent};
use crate::ident::is_var_id;
use crate::record::Record;
use crate::sync::Arc;

/// A deletion a store remembers: the variable's id, name and the
/// deletion's version.
pub(crate) type Tombstone = (Arc<str>, Arc<str>, u64);

/// The first group of a watch resumed from `resume`, whose snapshot at
/// `revision` is `snapshot` (the state of each variable it follows).
/// `tombstone` finds a deleted variable by id or name. Deletions first, then
/// the states, all labelled with `revision`.
pub(crate) fn first_group(
    resume: &Resume,
    snapshot: &[Arc<Record>],
    mode: Mode,
    whole_session: bool,
    revision: u64,
    tombstone: impl Fn(&str) -> Option<Tombstone>,
) -> Vec<WatchEvent> {
    let mut states = Vec::new();
    for record in snapshot {
        let seen = resume
            .versions
            .get(&*record.var.id)
            .or_else(|| resume.versions.get(&*record.var.name));
        let held = seen.map_or(Held::Unknown, |&v| Held::after(v));
        if let Some(plan) = catch_up(mode, whole_session, held, Now::of(record)) {
            states.extend(plan.events(record, revision));
        }
    }
    // What the watcher has that the snapshot does not: deleted since.
    let known = |key: &str| snapshot.iter().any(|r| &*r.var.id == key || &*r.var.name == key);
    let mut gone: Vec<(&String, u64)> = resume
        .versions
        .iter()
        .filter(|(key, _)| !known(key))
        .map(|(key, &seen)| (key, seen))
        .collect();
    gone.sort();
    let mut out = Vec::with_capacity(gone.len() + states.len());
    for (key, seen) in gone {
        let (id, name, deleted_at) = tombstone(key).unwrap_or_else(|| {
            // Deleted too long ago to remember (or never existed): the end
            // is all that can be said.
            let (id, name) = if is_var_id(key) {
                (key.as_str(), "")
            } else {
                ("", key.as_str())
            };
            (Arc::from(id), Arc::from(name), seen.saturating_add(1))
        });
        let deletion = WatchEvent::bare(EventKind::Deleted, &id, &name, deleted_at, revision);
        if let Some(plan) = catch_up(mode, whole_session, Held::after(seen), Now::Deleted(deleted_at)) {
            out.extend(plan.events(deletion.record(), revision));
        }
    }
    out.extend(states);
    out
}

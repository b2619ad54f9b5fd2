//! Opening one remote watch on the server: the local [`Watch`] registered
//! with its snapshot, and what the client must be sent before
//! `sync_complete` (the snapshot, or on resume only what is newer).

use std::collections::HashSet;
use std::sync::Arc;

use super::WatchTarget;
use super::protocol::{Subscribe, SyncComplete};
use crate::session::Session;
use crate::watch::catch_up::{Held, Mode, Now, catch_up as rule};
use crate::{Error, ErrorCode, EventKind, Result, SessionStore, Watch, WatchEvent, WatchOptions};

/// A subscribed remote watch, before its stream starts.
pub(crate) struct Opened {
    /// `None` when everything the client watched is gone.
    pub(crate) watch: Option<Watch>,
    /// What the client must receive before `sync_complete`: one group.
    pub(crate) snapshot: Vec<WatchEvent>,
    /// The snapshot's revision and the session's incarnation.
    pub(crate) sync: SyncComplete,
}

/// Opens the local watch for `sub` and computes what the client must be
/// sent before `sync_complete`. Errors (unknown session, unknown variables
/// not explained by a resume) are returned before anything is registered.
///
/// On resume (`sub.resume` names what the client has, by id):
/// * a variable with a newer version comes as `Changed`, after a `Lagged`
///   marker if versions were skipped;
/// * one deleted meanwhile comes as `Deleted` at its deletion version, after
///   a `Lagged` marker for the versions skipped before it (deletions come
///   first, so that a variable registered again under the same name follows
///   its predecessor's end);
/// * one the client never saw (registered meanwhile, in a whole-session
///   watch) comes as `Initial` at its current version, after a `Lagged`
///   marker for the versions before it;
/// * if the session is another incarnation than the client's, the answer is
///   `SessionClosed`.
pub(crate) fn open(store: &SessionStore, sub: Subscribe) -> Result<Opened> {
    let mut opts = WatchOptions::new().include_initial(true);
    if sub.capacity > 0 {
        opts = opts.capacity(sub.capacity);
    }
    if sub.coalesce {
        opts = opts.coalesce();
    }
    if let Some(interval) = sub.throttle {
        opts = opts.throttle(interval);
    }
    let resume = &sub.resume;
    let resuming = !resume.is_empty() || sub.session_incarnation.is_some();
    // A coalescing watch never sends `Lagged`: what a resume passed over is
    // counted in `skipped` instead. Each variable by the catch-up rule.
    let mode = if sub.coalesce || sub.throttle.is_some() {
        Mode::Coalesce
    } else {
        Mode::Resync
    };
    let whole = sub.target == WatchTarget::Session;
    let catch_up = |held: Held, e: &WatchEvent, revision: u64| -> Vec<WatchEvent> {
        let now = if e.kind() == EventKind::Deleted {
            Now::Deleted(e.version())
        } else {
            Now::Live(e.version())
        };
        rule(mode, whole, held, now).map_or_else(Vec::new, |plan| plan.events(e.record(), revision).collect())
    };
    // One lookup: the incarnation, ids and tombstones all come from it.
    let session = store.session_handle(&sub.session)?;
    let watch = match &sub.target {
        WatchTarget::Session => Some(store.watch_session(&sub.session, opts)?),
        WatchTarget::Variables(idents) => {
            if idents.is_empty() {
                return Err(Error::InvalidOption(
                    "a watch needs at least one variable, or the whole session".into(),
                ));
            }
            if resuming {
                resume_variables(store, &session, &sub.session, idents, opts)?
            } else {
                Some(store.watch(&sub.session, idents, opts)?)
            }
        }
    };
    let incarnation = session.incarnation;
    if watch
        .as_ref()
        .is_some_and(|w| w.session_incarnation() != incarnation)
    {
        // The session was deleted and created again while this ran.
        return Err(Error::Remote {
            code: ErrorCode::Unavailable,
            message: format!(
                "session `{}` was replaced during the subscription; try again",
                sub.session
            ),
        });
    }
    if sub.session_incarnation.is_some_and(|i| i != incarnation) {
        // The session the client followed is gone; this one is another.
        return Ok(Opened {
            watch: None,
            snapshot: vec![WatchEvent::bare(EventKind::SessionClosed, "", "", 0, 0)],
            sync: SyncComplete {
                revision: 0,
                session_incarnation: incarnation,
            },
        });
    }
    let mut deletions = Vec::new();
    let mut snapshot = Vec::new();
    let mut current = HashSet::new();
    let mut watch = watch;
    let revision = match watch.as_mut() {
        Some(w) => {
            // The subscription's first group: every event of the resume is
            // labelled with its revision, so that the client receives it as
            // one cut. Anything later stays in the watch and follows
            // `sync_complete`.
            let (revision, initial) = w.take_initial();
            for e in initial {
                current.insert(e.variable_id().to_string());
                // A coalescing watch's first cut may already hold a deletion.
                let deleted = e.kind() == EventKind::Deleted;
                match resume.get(e.variable_id()) {
                    // Deleted before the client ever had it (a coalescing
                    // watch's first cut): nothing to tell.
                    None if deleted => {}
                    None if !resuming => {
                        if sub.include_initial {
                            snapshot.push(e);
                        }
                    }
                    None => {
                        // New to the client: registered while it was away.
                        snapshot.extend(catch_up(Held::Unknown, &e, revision));
                    }
                    // The client has it, or the state is new to it: a change
                    // (with its own old value, source and metadata).
                    Some(&seen) => snapshot.extend(catch_up(Held::after(seen), &e, revision)),
                }
            }
            revision
        }
        None => session.revision(),
    };
    let gone: Vec<(&String, u64)> = resume
        .iter()
        .filter(|(id, _)| !current.contains(*id))
        .map(|(id, &seen)| (id, seen))
        .collect();
    let tombs = session.tombstones(gone.iter().map(|(id, _)| id.as_str()));
    for ((id, seen), tomb) in gone.into_iter().zip(tombs) {
        let (name, deleted_at) = match tomb {
            Some((name, version)) => (name, version),
            // Deleted too long ago to remember (or never existed): the end
            // is all that can be said.
            None => (Arc::from(""), seen.saturating_add(1)),
        };
        let deletion = WatchEvent::bare(EventKind::Deleted, id, &name, deleted_at, revision);
        deletions.extend(catch_up(Held::after(seen), &deletion, revision));
    }
    deletions.append(&mut snapshot);
    Ok(Opened {
        watch,
        snapshot: deletions,
        sync: SyncComplete {
            revision,
            session_incarnation: incarnation,
        },
    })
}

/// Watches the variables a resuming client names by id. Ids are looked up
/// strictly (a name that happens to look like an id is never taken for
/// one); those gone are left out (the caller reports them deleted). If a
/// deletion races the watch, or the watch resolved to anything but these
/// ids, look again (bounded).
fn resume_variables(
    store: &SessionStore,
    session: &Session,
    id: &str,
    ids: &[String],
    opts: WatchOptions,
) -> Result<Option<Watch>> {
    for _ in 0..8 {
        let present: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|i| session.has_id(i))
            .collect();
        if present.is_empty() {
            return Ok(None);
        }
        match store.watch(id, &present, opts.clone()) {
            Ok(w) if w.tracked_ids().all(|t| present.contains(&t)) => return Ok(Some(w)),
            Ok(_) | Err(Error::VariablesNotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Remote {
        code: ErrorCode::Unavailable,
        message: format!("session `{id}` keeps changing under the resume; try again"),
    })
}

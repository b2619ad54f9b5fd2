//! Opening one remote watch on the server, on any store: the store's
//! [`Watch`] registered with its snapshot (or, on resume, with what the
//! client is missing: `watch/resume.rs`), and what the client must be sent
//! before `sync_complete`.

use super::WatchTarget;
use super::protocol::{Subscribe, SyncComplete};
use crate::{AsyncVarStore, Error, Result, Watch, WatchEvent, WatchOptions};

/// A subscribed remote watch, before its stream starts.
pub(crate) struct Opened {
    pub(crate) watch: Watch,
    /// What the client must receive before `sync_complete`: one group.
    pub(crate) snapshot: Vec<WatchEvent>,
    /// The snapshot's revision and the session's incarnation.
    pub(crate) sync: SyncComplete,
}

/// The options of the store's watch for `sub`: the client's initial states
/// or resume, capacity, coalescing and throttle (the filter and the
/// overflow policy are the client's own, on its side).
fn options(sub: &Subscribe) -> WatchOptions {
    let mut opts = WatchOptions::new().include_initial(sub.include_initial);
    if sub.capacity > 0 {
        opts = opts.capacity(sub.capacity);
    }
    if sub.coalesce {
        opts = opts.coalesce();
    }
    if let Some(interval) = sub.throttle {
        opts = opts.throttle(interval);
    }
    if !sub.resume.is_empty() || sub.session_incarnation.is_some() {
        opts = opts.resume_from(sub.resume.iter().map(|(k, &v)| (k.clone(), v)));
    }
    if let Some(i) = sub.session_incarnation {
        opts = opts.within_incarnation(i);
    }
    opts
}

/// Opens the store's watch for `sub` and takes its first group. Errors
/// (unknown session, unknown variables not explained by a resume, bad
/// options) are returned before anything is registered.
pub(crate) async fn open<S: AsyncVarStore>(store: &S, sub: Subscribe) -> Result<Opened> {
    if matches!(&sub.target, WatchTarget::Variables(v) if v.is_empty()) {
        return Err(Error::InvalidOption(
            "a watch needs at least one variable, or the whole session".into(),
        ));
    }
    let opts = options(&sub);
    let mut watch = store.open_watch(&sub.session, sub.target, opts).await?;
    // The subscription's first group: every event of it is labelled with
    // its revision, so that the client receives it as one cut. Anything
    // later stays in the watch and follows `sync_complete`.
    let (revision, snapshot) = watch.take_initial();
    let sync = SyncComplete {
        revision,
        session_incarnation: watch.session_incarnation(),
    };
    Ok(Opened {
        watch,
        snapshot,
        sync,
    })
}

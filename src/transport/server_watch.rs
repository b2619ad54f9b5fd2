//! The server side of a remote watch, for every transport.
//!
//! One task per stream owns a local [`Watch`] and selects over: the client's
//! messages (heartbeats are echoed, acks recorded; any message moves the
//! silence deadline), the watch's events (sent in batches: one message
//! carries every event ready, up to a count and a byte budget), its own
//! heartbeat tick, and the service closing. When the task ends, for whatever
//! reason, the local watch is dropped and its registration with it. The
//! outgoing queue is bounded: a client that stops reading makes the local
//! watch fall behind and resync (a writer never waits), and a client that
//! stops sending is dropped at its heartbeat timeout, even while the task is
//! waiting for room in the queue.

use std::collections::HashSet;
use std::future::{Future, poll_fn};

use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, interval, sleep_until, timeout_at};

use super::WatchTarget;
use super::protocol::{ClientMessage, ServerMessage, Subscribe};
use super::service::{Limits, value_bytes};
use crate::{Error, ErrorCode, EventKind, Result, SessionStore, Watch, WatchEvent, WatchOptions};

/// A subscribed remote watch, before its stream starts.
pub(crate) struct Opened {
    /// `None` when everything the client watched is gone.
    watch: Option<Watch>,
    /// What the client must receive before `sync_complete`.
    snapshot: Vec<WatchEvent>,
    /// The session revision of the snapshot.
    revision: u64,
}

/// Opens the local watch for `sub` and computes what the client must be
/// sent before `sync_complete`. Errors (unknown session, unknown variables
/// not explained by a resume) are returned before anything is registered.
pub(crate) fn open(store: &SessionStore, sub: Subscribe) -> Result<Opened> {
    let mut opts = WatchOptions::new().include_initial(true);
    if sub.capacity > 0 {
        opts = opts.capacity(sub.capacity);
    }
    let resume = &sub.resume;
    let watch = match &sub.target {
        WatchTarget::Session => Some(store.watch_session(&sub.session, opts)?),
        WatchTarget::Variables(idents) => {
            // On resume, identifiers that are gone are reported as deleted,
            // not as an error; the rest is watched.
            let mut present = Vec::new();
            for ident in idents {
                match store.get(&sub.session, ident) {
                    Ok(_) => present.push(ident.as_str()),
                    Err(Error::VariableNotFound { .. }) if resume.contains_key(ident) => {}
                    Err(e) => return Err(e),
                }
            }
            if present.is_empty() {
                if idents.is_empty() {
                    return Err(Error::InvalidOption(
                        "a watch needs at least one variable, or the whole session".into(),
                    ));
                }
                None
            } else {
                // A variable deleted between the check and here is an error
                // the client can retry; nothing was registered.
                Some(store.watch(&sub.session, present, opts)?)
            }
        }
    };
    let mut snapshot = Vec::new();
    let mut current = HashSet::new();
    let mut revision = 0;
    let mut watch = watch;
    if let Some(w) = watch.as_mut() {
        // The initial events are all queued already (taken at subscription).
        let n = w.stats().queue_depth as usize;
        for _ in 0..n {
            let Ok(e) = w.try_recv() else { break };
            if e.kind() != EventKind::Initial {
                // A change that happened since: it follows in order.
                snapshot.push(e);
                continue;
            }
            current.insert(e.variable_id().to_string());
            revision = revision.max(e.revision());
            match resume.get(e.variable_id()) {
                None if sub.include_initial || !resume.is_empty() => snapshot.push(e),
                None => {}
                Some(&seen) if e.version() <= seen => {} // the client has it
                Some(&seen) => {
                    if e.version() > seen + 1 {
                        let lag = EventKind::Lagged {
                            first: seen + 1,
                            last: e.version() - 1,
                        };
                        snapshot.push(WatchEvent::from_parts(lag, e.record().clone(), 0));
                    }
                    snapshot.push(e.as_changed());
                }
            }
        }
    }
    for (id, &seen) in resume {
        if !current.contains(id) {
            snapshot.push(WatchEvent::bare(EventKind::Deleted, id, "", seen + 1, revision));
        }
    }
    Ok(Opened {
        watch,
        snapshot,
        revision,
    })
}

fn ended(code: ErrorCode, message: String) -> Error {
    Error::Remote { code, message }
}

/// Runs one watch stream until the client leaves, falls silent, the watch
/// ends, or `closing` resolves. Returns when everything it held is released.
pub(crate) async fn run<I>(
    opened: Opened,
    mut inbound: I,
    tx: mpsc::Sender<Result<ServerMessage>>,
    limits: Limits,
    closing: impl Future<Output = ()> + Send,
) where
    I: Stream<Item = ClientMessage> + Send + Unpin,
{
    let silent = || {
        Err(ended(
            ErrorCode::DeadlineExceeded,
            format!(
                "no message from the client for {:?}; closing the watch",
                limits.heartbeat_timeout
            ),
        ))
    };
    let mut deadline = Instant::now() + limits.heartbeat_timeout;
    // Sends one message, but gives up at the silence deadline: a client that
    // neither reads nor heartbeats must not pin the registration.
    macro_rules! send {
        ($msg:expr) => {
            match timeout_at(deadline, tx.send(Ok($msg))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return, // the transport dropped the stream
                Err(_) => {
                    let _ = tx.try_send(silent());
                    return;
                }
            }
        };
    }
    send!(ServerMessage {
        events: opened.snapshot,
        sync_complete: Some(opened.revision),
        heartbeat: None,
    });
    let Some(mut w) = opened.watch else {
        return; // everything watched was gone: the snapshot said so
    };
    let mut tick = interval(limits.heartbeat_interval);
    tick.reset();
    let mut beat = 0u64;
    let mut closing = std::pin::pin!(closing);
    loop {
        tokio::select! {
            msg = poll_fn(|cx| Pin::new(&mut inbound).poll_next(cx)) => {
                // The client closed its side, or the connection broke.
                let Some(msg) = msg else { return };
                deadline = Instant::now() + limits.heartbeat_timeout;
                match msg {
                    ClientMessage::Heartbeat(h) => send!(ServerMessage { heartbeat: Some(h), ..Default::default() }),
                    ClientMessage::Ack(revision) => w.acknowledge(revision),
                }
            }
            _ = sleep_until(deadline) => {
                let _ = tx.try_send(silent());
                return;
            }
            _ = tick.tick() => {
                beat += 1;
                send!(ServerMessage { heartbeat: Some(beat), ..Default::default() });
            }
            first = poll_fn(|cx| Pin::new(&mut w).poll_next(cx)) => {
                let Some(first) = first else { return };
                // Batch what is ready: one message, not one per event, within
                // a count and a byte budget.
                let mut bytes = first.value().map_or(0, value_bytes);
                let mut events = vec![first];
                while events.len() < limits.max_events_per_message && bytes < limits.max_message_value_bytes {
                    match w.try_recv() {
                        Ok(e) => {
                            bytes += e.value().map_or(0, value_bytes);
                            events.push(e);
                        }
                        Err(_) => break,
                    }
                }
                send!(ServerMessage { events, ..Default::default() });
            }
            _ = tx.closed() => return,
            _ = &mut closing => {
                let _ = tx.try_send(Err(ended(ErrorCode::Unavailable, "the server is shutting down".into())));
                return;
            }
        }
    }
}

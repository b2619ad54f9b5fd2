//! The server side of a remote watch (the `Watch` bidirectional stream).
//!
//! One task per stream owns a local [`Watch`] and selects over: the client's
//! messages (heartbeats are answered; any message resets the silence
//! deadline), the watch's events (sent in batches: one message carries every
//! event ready, up to a limit), its own heartbeat tick, and the client going
//! away. When the task ends, for whatever reason, the local watch is dropped
//! and its registration with it. The outgoing queue is bounded: a client that
//! stops reading makes the local watch fall behind and resync (it never
//! blocks a writer), and a client that stops sending is dropped at its
//! heartbeat timeout.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, interval, sleep_until};
use tonic::{Status, Streaming};

use super::convert::{metadata_to, status, time, value_to};
use super::proto::{self, watch_request};
use crate::{EventKind, SessionStore, Watch, WatchEvent, WatchOptions};

/// Limits and timings of remote watches.
#[derive(Clone, Debug)]
pub(crate) struct WatchConfig {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) max_variables: usize,
    pub(crate) max_events_per_message: usize,
    /// Becomes true when the server shuts down.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
}

/// The server's side of one remote watch, as handed to tonic.
pub struct ResponseStream(mpsc::Receiver<Result<proto::WatchResponse, Status>>);

impl ResponseStream {
    pub(crate) fn new(rx: mpsc::Receiver<Result<proto::WatchResponse, Status>>) -> Self {
        ResponseStream(rx)
    }
}

impl Stream for ResponseStream {
    type Item = Result<proto::WatchResponse, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn event_to(e: &WatchEvent) -> proto::WatchEvent {
    use proto::EventKind as K;
    let (kind, lag) = match e.kind() {
        EventKind::Initial => (K::Initial, (0, 0)),
        EventKind::Changed => (K::Changed, (0, 0)),
        EventKind::Deleted => (K::Deleted, (0, 0)),
        EventKind::Lagged { first, last } => (K::Lagged, (first, last)),
        EventKind::SessionClosed => (K::SessionClosed, (0, 0)),
        EventKind::Disconnected => (K::Unspecified, (0, 0)), // client-side only
    };
    proto::WatchEvent {
        kind: kind as i32,
        variable_id: e.variable_id().to_string(),
        variable_name: e.variable_name().to_string(),
        version: e.version(),
        revision: e.revision(),
        value: e.value().map(value_to),
        old_value: e.old_value().map(value_to),
        source: e.source().map(str::to_string),
        metadata: e.metadata().map(metadata_to).unwrap_or_default(),
        timestamp: Some(time(e.timestamp())),
        lag_first: lag.0,
        lag_last: lag.1,
        skipped: e.skipped(),
    }
}

fn deleted_while_away(id: &str, seen: u64) -> proto::WatchEvent {
    proto::WatchEvent {
        kind: proto::EventKind::Deleted as i32,
        variable_id: id.to_string(),
        version: seen + 1,
        ..Default::default()
    }
}

/// Opens the local watch for `sub` and computes what the client must be
/// sent before `SyncComplete`. Errors (unknown session, unknown variables
/// not explained by a resume) are returned before the stream starts.
pub(crate) fn open(store: &SessionStore, sub: proto::Subscribe, cfg: &WatchConfig) -> Result<Opened, Status> {
    if sub.variables.len() > cfg.max_variables {
        return Err(Status::resource_exhausted(format!(
            "{} variables in one watch; the server's limit is {}",
            sub.variables.len(),
            cfg.max_variables
        )));
    }
    let mut opts = WatchOptions::new().include_initial(true);
    if sub.capacity > 0 {
        opts = opts.capacity(sub.capacity as usize);
    }
    let resume = &sub.resume_versions;
    let mut snapshot = Vec::new();
    let watch = if sub.whole_session {
        Some(store.watch_session(&sub.session, opts).map_err(status)?)
    } else {
        // On resume, identifiers that are gone are reported as deleted, not
        // as an error; the rest is watched.
        let mut present = Vec::new();
        for ident in &sub.variables {
            match store.get(&sub.session, ident) {
                Ok(_) => present.push(ident.as_str()),
                Err(crate::Error::VariableNotFound { .. }) if resume.contains_key(ident) => {}
                Err(e) => return Err(status(e)),
            }
        }
        if present.is_empty() {
            if sub.variables.is_empty() {
                return Err(Status::invalid_argument(
                    "a watch needs variables or whole_session",
                ));
            }
            None
        } else {
            // A variable deleted between the check and here is an error the
            // client can retry; nothing was registered.
            Some(store.watch(&sub.session, present, opts).map_err(status)?)
        }
    };
    let mut current = HashSet::new();
    let mut revision = 0;
    let mut watch = watch;
    if let Some(w) = watch.as_mut() {
        // The initial events are all there already (taken at subscription).
        let n = w.stats().queue_depth as usize;
        for _ in 0..n {
            let Ok(e) = w.try_recv() else { break };
            if e.kind() != EventKind::Initial {
                // A change that happened since: leave it for the stream.
                snapshot.push(event_to(&e));
                continue;
            }
            current.insert(e.variable_id().to_string());
            revision = revision.max(e.revision());
            match resume.get(e.variable_id()) {
                None if sub.include_initial || !resume.is_empty() => snapshot.push(event_to(&e)),
                None => {}
                Some(&seen) if e.version() <= seen => {} // the client has it
                Some(&seen) => {
                    if e.version() > seen + 1 {
                        let mut lag = event_to(&e);
                        lag.kind = proto::EventKind::Lagged as i32;
                        (lag.lag_first, lag.lag_last) = (seen + 1, e.version() - 1);
                        lag.version = e.version() - 1;
                        lag.value = None;
                        snapshot.push(lag);
                    }
                    snapshot.push(event_to(&e.as_changed()));
                }
            }
        }
    }
    for (id, &seen) in resume {
        if !current.contains(id) {
            snapshot.push(deleted_while_away(id, seen));
        }
    }
    Ok(Opened {
        watch,
        snapshot,
        revision,
    })
}

/// A subscribed remote watch, before its stream starts.
pub(crate) struct Opened {
    /// `None` when everything the client watched is gone.
    watch: Option<Watch>,
    /// What the client must receive before `SyncComplete`.
    snapshot: Vec<proto::WatchEvent>,
    /// The session revision of the snapshot.
    revision: u64,
}

/// Resolves once the server starts shutting down (never, if it is dropped
/// without doing so).
async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs one remote watch until the client leaves, falls silent, or the watch
/// ends. Returns when everything it held is released.
pub(crate) async fn run(
    opened: Opened,
    mut inbound: Streaming<proto::WatchRequest>,
    tx: mpsc::Sender<Result<proto::WatchResponse, Status>>,
    mut cfg: WatchConfig,
) {
    let sync = proto::WatchResponse {
        events: opened.snapshot,
        sync_complete: Some(proto::SyncComplete {
            revision: opened.revision,
        }),
        heartbeat: None,
    };
    if tx.send(Ok(sync)).await.is_err() {
        return;
    }
    let Some(mut w) = opened.watch else {
        return; // everything watched was gone: the snapshot said so
    };
    let mut deadline = Instant::now() + cfg.heartbeat_timeout;
    let mut tick = interval(cfg.heartbeat_interval);
    tick.reset();
    let mut beat = 0u64;
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(m)) => {
                    deadline = Instant::now() + cfg.heartbeat_timeout;
                                        match m.kind {
                        Some(watch_request::Kind::Heartbeat(h)) => {
                            let echo = proto::WatchResponse { heartbeat: Some(h), ..Default::default() };
                            if tx.send(Ok(echo)).await.is_err() {
                                return;
                            }
                        }
                        Some(watch_request::Kind::Ack(a)) => w.acknowledge(a.revision),
                        _ => {}
                    }
                }
                // The client closed its side, or the connection broke.
                Ok(None) | Err(_) => return,
            },
            _ = sleep_until(deadline) => {
                let _ = tx.try_send(Err(Status::deadline_exceeded(format!(
                    "no message from the client for {:?}; closing the watch",
                    cfg.heartbeat_timeout
                ))));
                return;
            }
            _ = tick.tick() => {
                beat += 1;
                let hb = proto::WatchResponse {
                    heartbeat: Some(proto::Heartbeat { sequence: beat }),
                    ..Default::default()
                };
                if tx.send(Ok(hb)).await.is_err() {
                    return;
                }
            }
            first = poll_fn(|cx| Pin::new(&mut w).poll_next(cx)) => {
                let Some(first) = first else { return };
                // Batch what is ready: one message, not one per event.
                let mut events = vec![event_to(&first)];
                while events.len() < cfg.max_events_per_message {
                    match w.try_recv() {
                        Ok(e) => events.push(event_to(&e)),
                        Err(_) => break,
                    }
                }
                let resp = proto::WatchResponse { events, ..Default::default() };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
                        _ = tx.closed() => return,
                        _ = shutting_down(&mut cfg.closing) => {
                let _ = tx.try_send(Err(Status::unavailable("the server is shutting down")));
                return;
            }
        }
    }
}

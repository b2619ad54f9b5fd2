//! [`EtcdWatch`]: one etcd watch of a session's directory, as a hub or a
//! lone follower (`hub.rs`) reads it — opened on the preferred member,
//! its fragments put back together, and checked for life.
//!
//! * **Fragments.** A watch that catches up far behind gets up to a
//!   thousand revisions per response from etcd, which can be larger than
//!   any message limit. So the watch asks etcd to fragment its responses
//!   (etcd ≥ 3.4: no fragment over etcd's own request limit) and the
//!   fragments are joined here before anything is decoded: a revision is
//!   never seen in part. A response the client still cannot decode (one
//!   value over [`EtcdConfig::max_message_bytes`]) is
//!   [`Broken::Unservable`]: the follower re-reads the session instead
//!   (`Lagged`, then the state), rather than retrying for ever.
//! * **Life.** A frozen member keeps its connection and sends nothing.
//!   After [`EtcdConfig::attempt_timeout`] of silence the watch asks etcd
//!   for a progress report; with no message for another one, the member is
//!   left ([`Conn::move_off`]) and the watch is [`Broken::Silent`]: it is
//!   opened again on the next member, from where it was. etcd 3.4 answers
//!   such a request at once with its current revision even while the
//!   watch is catching up (and its answer may overtake events), so the
//!   answer only proves the member alive; it never counts as progress.
//!
//! [`EtcdConfig::max_message_bytes`]: super::EtcdConfig::max_message_bytes
//! [`EtcdConfig::attempt_timeout`]: super::EtcdConfig::attempt_timeout

use std::sync::Arc;

use etcd_client::{WatchOptions, WatchRequestSender, WatchResponse, WatchResponseStream};
use tokio::time::{Instant, sleep_until};

use super::conn::{Conn, Failed};

/// Why an etcd watch stopped.
#[derive(Debug)]
pub(super) enum Broken {
    /// The stream failed or ended (the member went away, etcd closed it).
    Lost,
    /// The member went silent and was left.
    Silent,
    /// A response too large to decode: the history cannot be followed,
    /// only re-read.
    Unservable,
}

/// One etcd watch (see the module docs).
pub(super) struct EtcdWatch {
    conn: Arc<Conn>,
    member: usize,
    requests: WatchRequestSender,
    responses: WatchResponseStream,
    /// Fragments received of a response not yet complete.
    partial: Option<WatchResponse>,
    /// When the watch is next checked for life.
    check_at: Instant,
    /// A progress request is out, unanswered.
    probing: bool,
}

/// The options of every etcd watch of a session's directory from etcd
/// revision `from`.
fn options(from: i64) -> WatchOptions {
    WatchOptions::new()
        .with_prefix()
        .with_progress_notify()
        .with_fragment()
        .with_start_revision(from)
}

impl EtcdWatch {
    /// Opens a watch of `dir` from etcd revision `from` on the preferred
    /// member, within the attempt deadline.
    pub(super) async fn open(conn: &Arc<Conn>, dir: &str, from: i64) -> Result<EtcdWatch, Failed> {
        let (member, client) = conn.preferred().await?;
        let mut wc = client
            .watch_client()
            .max_decoding_message_size(conn.max_message_bytes);
        let opened = tokio::time::timeout(conn.attempt_timeout, wc.watch(dir, Some(options(from)))).await;
        let stream = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let failed = conn.classify(e);
                if matches!(failed, Failed::Lost { .. }) {
                    conn.move_off(member);
                }
                return Err(failed);
            }
            Err(_) => {
                conn.move_off(member);
                return Err(Failed::Lost {
                    error: crate::Error::Transport {
                        addr: conn.url(member).to_string(),
                        reason: "etcd did not open a watch within the attempt timeout".into(),
                        source: None,
                    },
                    sent: true,
                });
            }
        };
        let (requests, responses) = stream.split();
        Ok(EtcdWatch {
            conn: conn.clone(),
            member,
            requests,
            responses,
            partial: None,
            check_at: Instant::now() + conn.attempt_timeout,
            probing: false,
        })
    }

    /// Something arrived: the member is alive.
    fn heard(&mut self) {
        self.probing = false;
        self.check_at = Instant::now() + self.conn.attempt_timeout;
    }

    /// The next whole response: events (all of a response's fragments),
    /// a creation, a cancellation, or a progress notification of etcd's
    /// own (not an answer to a probe: those are taken here).
    pub(super) async fn next(&mut self) -> Result<WatchResponse, Broken> {
        loop {
            tokio::select! {
                m = self.responses.message() => match m {
                    Ok(Some(resp)) => {
                        self.heard();
                        if resp.0.watch_id < 0 && resp.0.events.is_empty() && !resp.0.created && !resp.0.canceled {
                            continue; // the answer to a probe: alive, nothing more
                        }
                        let more = resp.0.fragment;
                        let whole = match self.partial.take() {
                            Some(mut head) => {
                                head.0.events.extend(resp.0.events);
                                head.0.fragment = more;
                                head
                            }
                            None => resp,
                        };
                        if more {
                            self.partial = Some(whole);
                            continue;
                        }
                        return Ok(whole);
                    }
                    Ok(None) => return Err(Broken::Lost),
                    Err(e) => {
                        return Err(match self.conn.classify(e) {
                            Failed::Refused(crate::Error::LimitExceeded { .. }) => Broken::Unservable,
                            _ => Broken::Lost,
                        });
                    }
                },
                () = sleep_until(self.check_at) => {
                    if self.probing {
                        self.conn.move_off(self.member);
                        return Err(Broken::Silent);
                    }
                    self.probing = true;
                    self.check_at = Instant::now() + self.conn.attempt_timeout;
                    if self.requests.request_progress().await.is_err() {
                        return Err(Broken::Lost);
                    }
                }
            }
        }
    }
}

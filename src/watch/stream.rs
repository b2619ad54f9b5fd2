//! Async receive, on any executor: [`Watch::poll_recv`],
//! [`Watch::recv_async`], and [`WatchStream`], the watch as a
//! [`futures_core::Stream`].
//!
//! A `Watch` is an [`Iterator`] (blocking) and deliberately not a `Stream`
//! itself: with both, `watch.next()` is ambiguous as soon as
//! `futures::StreamExt` is in scope. Async code calls `recv_async().await`,
//! or converts once with [`Watch::into_stream`]. So the blocking `next` can
//! never be awaited by mistake:
//!
//! ```compile_fail
//! # async fn demo(mut watch: varwatch::Watch) {
//! use futures_util::StreamExt;
//! let e = watch.next().await; // error: `Option<WatchEvent>` is not a future
//! # }
//! ```

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{Step, Watch, WatchEvent};
use crate::timer::TimerEntry;

impl Watch {
    /// Polls for the next event: `Ready(None)` once the watch has ended.
    /// When it returns `Pending`, the task is woken by the next write to
    /// what the watch follows (or, for a throttled watch, when its interval
    /// has passed).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        // Register-then-check, inside `step` (see `blocking.rs`).
        match self.step(Some(cx.waker())) {
            Step::Event(e) => Poll::Ready(Some(e)),
            Step::Ended => Poll::Ready(None),
            Step::Empty(due) => {
                match (due, self.rare.as_deref_mut()) {
                    (Some(due), Some(r)) => match &r.timer {
                        Some(t) if t.at() == due && t.set_waker(cx.waker()) => {}
                        // A new deadline replaces (and so cancels) the old entry.
                        _ => r.timer = Some(TimerEntry::new(due, cx.waker().clone())),
                    },
                    (Some(due), None) => self.rare().timer = Some(TimerEntry::new(due, cx.waker().clone())),
                    (None, Some(r)) => r.timer = None,
                    (None, None) => {}
                }
                Poll::Pending
            }
        }
    }

    /// Waits for the next event; `None` once the watch has ended.
    ///
    /// ```
    /// # async fn demo(mut watch: varwatch::Watch) {
    /// while let Some(event) = watch.recv_async().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub async fn recv_async(&mut self) -> Option<WatchEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The watch as a [`Stream`] (for `StreamExt` combinators); get it back
    /// with [`WatchStream::into_inner`].
    pub fn into_stream(self) -> WatchStream {
        WatchStream(self)
    }
}

/// A [`Watch`] as a [`Stream`] of events, from [`Watch::into_stream`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct WatchStream(Watch);

impl WatchStream {
    /// The watch (for its statistics, say).
    pub fn get_ref(&self) -> &Watch {
        &self.0
    }

    /// The watch back.
    pub fn into_inner(self) -> Watch {
        self.0
    }
}

impl Stream for WatchStream {
    type Item = WatchEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.get_mut().0.poll_recv(cx)
    }
}

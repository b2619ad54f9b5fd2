//! Blocking receive on top of a watch's `poll_recv`, for watches whose
//! events arrive from a runtime's tasks ([`RemoteWatch`], and the etcd
//! store's `EtcdWatch`): the receiving thread parks, and the waker it
//! registers unparks it.
//!
//! [`RemoteWatch`]: super::RemoteWatch

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};
use std::time::Instant;

use crate::{RecvTimeoutError, TryRecvError};

/// Wakes a parked receiving thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A watch's blocking receiver: the waker of the thread that last received
/// (made once per thread, not per receive).
#[derive(Default)]
pub(crate) struct Parker {
    waker: Option<(ThreadId, Waker)>,
}

impl Parker {
    fn waker(&mut self) -> Waker {
        let me = thread::current();
        match &self.waker {
            Some((id, w)) if *id == me.id() => w.clone(),
            _ => {
                let w = Waker::from(Arc::new(ThreadWaker(me.clone())));
                self.waker = Some((me.id(), w.clone()));
                w
            }
        }
    }

    /// Polls with `poll` until it has an event, the watch ends, or
    /// `deadline` (if any) passes, parking the thread in between.
    pub(crate) fn recv_until<T>(
        &mut self,
        deadline: Option<Instant>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<Option<T>>,
    ) -> Result<T, RecvTimeoutError> {
        let waker = self.waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            match poll(&mut cx) {
                Poll::Ready(Some(e)) => return Ok(e),
                Poll::Ready(None) => return Err(RecvTimeoutError::Closed),
                Poll::Pending => {}
            }
            match deadline {
                None => thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    thread::park_timeout(d - now);
                }
            }
        }
    }
}

/// One poll, without a waker: an event if one is ready.
pub(crate) fn try_recv<T>(poll: impl FnOnce(&mut Context<'_>) -> Poll<Option<T>>) -> Result<T, TryRecvError> {
    match poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Some(e)) => Ok(e),
        Poll::Ready(None) => Err(TryRecvError::Closed),
        Poll::Pending => Err(TryRecvError::Empty),
    }
}

//! How a fed watch wakes an asyncio event loop without a thread per watch
//! and without taking the interpreter lock on the client's runtime: a
//! waker puts its token in the client's ready list and, if the list was
//! empty, writes one byte to a socket the loop reads (`loop.add_reader`).
//! The loop's callback takes the whole list and resolves the futures
//! waiting on those tokens.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::task::Wake;

use parking_lot::Mutex;

/// The ready list and the socket pair that signals it.
pub(crate) struct Notifier {
    ready: Mutex<Vec<u64>>,
    tx: UnixStream,
    rx: UnixStream,
}

impl Notifier {
    pub(crate) fn new() -> std::io::Result<Notifier> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Notifier {
            ready: Mutex::new(Vec::new()),
            tx,
            rx,
        })
    }

    /// The descriptor the event loop reads.
    pub(crate) fn fd(&self) -> i32 {
        self.rx.as_raw_fd()
    }

    /// `token` is ready: listed, and the loop woken if the list was empty.
    pub(crate) fn post(&self, token: u64) {
        let mut ready = self.ready.lock();
        let first = ready.is_empty();
        ready.push(token);
        drop(ready);
        if first {
            // A full socket already holds a wake-up: nothing is lost.
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// Every token posted since the last call (the socket drained first, so
    /// that a post after the take wakes the loop again).
    pub(crate) fn take(&self) -> Vec<u64> {
        let mut buf = [0u8; 256];
        loop {
            match (&self.rx).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: drained
            }
        }
        std::mem::take(&mut *self.ready.lock())
    }
}

/// A waker that posts `token` to its notifier.
pub(crate) struct TokenWaker {
    pub(crate) token: u64,
    pub(crate) notifier: Arc<Notifier>,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.notifier.post(self.token);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notifier.post(self.token);
    }
}

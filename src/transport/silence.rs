//! [`Silence`]: how long a peer has said nothing, for both ends of a watch
//! stream.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

/// `now + d`, or a far future if that does not fit in an `Instant`.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A silence timer that is cheap to restart: hearing something only
/// records the time; the timer is re-armed when it fires early. (Re-arming
/// a tokio timer on every message would cost a timer-wheel update per
/// message.)
pub(crate) struct Silence {
    timeout: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Silence {
    pub(crate) fn new(timeout: Duration) -> Silence {
        Silence {
            timeout,
            last: Instant::now(),
            sleep: Box::pin(sleep_until(after(timeout))),
        }
    }

    /// Something was heard: the silence starts again now.
    pub(crate) fn heard(&mut self) {
        self.last = Instant::now();
    }

    /// Resolves once nothing has been heard for the timeout.
    pub(crate) async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let due = self
                .last
                .checked_add(self.timeout)
                .unwrap_or_else(|| after(self.timeout));
            if Instant::now() >= due {
                return;
            }
            self.sleep.as_mut().reset(due);
        }
    }
}

//! Diagnostics through `tracing` (feature `tracing`): debug-level events for
//! connections, watch creates and cancels, resyncs, timeouts and refused
//! tokens. Without the feature [`debug!`] expands to nothing: no cost, not
//! even the evaluation of its arguments.

/// `tracing::debug!` with the feature, nothing without it.
macro_rules! debug {
    ($($t:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::debug!($($t)*);
        }
    };
}

pub(crate) use debug;

/// `tracing::warn!` with the feature, nothing without it.
#[allow(unused_macros)]
macro_rules! warning {
    ($($t:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::warn!($($t)*);
        }
    };
}

#[allow(unused_imports)]
pub(crate) use warning;

/// `tracing::info!` with the feature, nothing without it.
#[allow(unused_macros)]
macro_rules! info {
    ($($t:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::info!($($t)*);
        }
    };
}

#[allow(unused_imports)]
pub(crate) use info;

/// `fut`, run inside a span naming the connection it serves (`conn{id=7}`),
/// so that every event it logs carries the id; with feature `tracing` only,
/// and only for a connection that has an id.
#[cfg(feature = "transport")]
pub(crate) fn in_connection<F: std::future::Future>(
    conn: Option<u64>,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument;
        let span = match conn {
            Some(id) => tracing::debug_span!("conn", id),
            None => tracing::Span::current(),
        };
        fut.instrument(span)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = conn;
        fut
    }
}

/// `fut`, run inside the current span (a task spawned for a connection's
/// work keeps its id).
#[cfg(feature = "transport")]
pub(crate) fn in_current_span<F: std::future::Future>(
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument;
        fut.in_current_span()
    }
    #[cfg(not(feature = "tracing"))]
    fut
}

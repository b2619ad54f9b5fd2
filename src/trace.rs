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

//! `varwatch._native`: the Python package's binding of the Rust client
//! (`RemoteStore` and its watches). One implementation of the client side
//! of the protocol — groups, resume, sharing, catch-up, acks, heartbeats,
//! reconnects — for Rust and Python alike; the Python package
//! (`python/varwatch`) is a thin, typed layer over this module.
//!
//! | file | what it holds |
//! |---|---|
//! | `client.rs` | `NativeClient`: the operation table from Python, blocking and async |
//! | `watch.rs` | `NativeWatch` and `Event` |
//! | `convert.rs` | values, definitions and answers between Python and Rust |
//! | `errors.rs` | the library's errors as the package's exceptions, with their fields |
//! | `notify.rs` | how watches and operations wake an asyncio loop |

use pyo3::prelude::*;

mod client;
mod convert;
mod errors;
mod notify;
mod watch;
mod watch_set;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::NativeClient>()?;
    m.add_class::<watch::NativeWatch>()?;
    m.add_class::<watch_set::NativeWatchSet>()?;
    m.add_class::<watch::Event>()?;
    m.add_function(wrap_pyfunction!(client::catch_up, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! Helpers the benchmark binaries share (included with `#[path]`).
#![allow(dead_code)] // each bench uses its own subset

use std::path::PathBuf;

/// Where the benches write their JSON lines for `scripts/bench_report.py`:
/// `$VARWATCH_BENCH_OUT` if set, else `varwatch-bench/` in cargo's target
/// directory, found from this executable's path
/// (`<target>/<profile>/deps/<bench>`), so that `CARGO_TARGET_DIR` is
/// honoured and nothing is written into the source tree.
pub fn out_dir() -> PathBuf {
    let dir = match std::env::var_os("VARWATCH_BENCH_OUT") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
            .unwrap_or_else(std::env::temp_dir)
            .join("varwatch-bench"),
    };
    std::fs::create_dir_all(&dir).expect("create the benchmark output directory");
    dir
}

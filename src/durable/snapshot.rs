//! Snapshots and compaction: the journal's segments are replaced by one
//! snapshot of the live state, so that disk use follows the state, not its
//! history.
//!
//! 1. The journal starts a new segment *n* (every later entry goes there).
//! 2. Each session is read under its write lock (one at a time: writers of
//!    the others go on) into the model, with the id counter.
//! 3. The model, marked "replay from segment *n*", is written to a
//!    temporary file, synced, renamed to `snapshot-<n>.bin`, and the
//!    directory synced.
//! 4. Segments before *n* and older snapshots are removed.
//!
//! Entries in segment *n* that the snapshot already holds (a session read
//! after its change) are skipped on replay (`model.rs`). A crash anywhere
//! leaves either the old snapshot and all the segments after it, or the
//! new one: recovery reads the newest snapshot and what follows it.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::frame;
use super::journal::{storage, sync_dir};
use super::model::{Model, encode};
use super::recover::snapshot_name;
use crate::Error;

/// Writes `model` as the snapshot of `dir` replaying from
/// `model.start_segment`, then removes what it replaces.
pub(crate) fn write(dir: &Path, model: &Model) -> Result<(), Error> {
    let n = model.start_segment;
    let payload = encode(model);
    if payload.len() > frame::MAX_PAYLOAD {
        return Err(storage(
            dir,
            format!(
                "the state ({} bytes) is larger than a snapshot may be",
                payload.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(payload.len() + frame::HEADER);
    frame::encode_block(&payload, &mut bytes);
    let tmp = dir.join(format!("{}.tmp", snapshot_name(n)));
    let path = dir.join(snapshot_name(n));
    let written = fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&bytes)?;
        f.sync_all()
    });
    written.map_err(|e| storage(dir, format!("cannot write {}: {e}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(|e| storage(dir, format!("cannot rename {}: {e}", tmp.display())))?;
    sync_dir(dir)?;
    remove_before(dir, n);
    Ok(())
}

/// Removes the segments and snapshots that the snapshot of segment `n`
/// replaces (best effort: what stays is ignored by recovery).
fn remove_before(dir: &Path, n: u64) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let old = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .and_then(|d| d.parse::<u64>().ok())
                .is_some_and(|m| m < n)
        };
        if old("journal-", ".log") || old("snapshot-", ".bin") || name.ends_with(".bin.tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
}

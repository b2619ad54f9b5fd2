//! Opening a store's directory: the last snapshot, then every journal
//! segment after it, folded into a [`Model`] (`model.rs`).
//!
//! * The newest snapshot is the one read; one that does not check out
//!   (bad frame or CRC, or not a snapshot) is an error naming the file —
//!   never a silent fall back to an older state.
//! * Every segment from the snapshot's on is read in order. A torn tail
//!   of the *last* segment (a write a crash interrupted, see `frame.rs`)
//!   is cut off and reported; a torn or damaged block anywhere else, or
//!   damage in the last segment (a whole block after a bad one), is an
//!   error naming the file and the offset.
//! * Older segments and snapshots (left by a compaction that was
//!   interrupted) are ignored, then removed by the next compaction.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;

use super::frame::{self, Tail};
use super::journal::storage;
use super::model::{Block, Model};
use crate::Error;

/// What opening found, for the log and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The snapshot read (its segment number), if any.
    pub snapshot: Option<u64>,
    /// Journal segments read after it.
    pub segments: usize,
    /// Journal entries applied.
    pub entries: u64,
    /// A torn tail cut off: the file and the bytes dropped.
    pub torn: Option<(PathBuf, u64)>,
}

/// The files of a store directory, by number.
struct Files {
    snapshots: Vec<u64>,
    segments: Vec<u64>,
}

fn number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

fn list(dir: &Path) -> Result<Files, Error> {
    let mut files = Files {
        snapshots: Vec::new(),
        segments: Vec::new(),
    };
    let entries = fs::read_dir(dir).map_err(|e| storage(dir, format!("cannot read the directory: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| storage(dir, format!("cannot read the directory: {e}")))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = number(name, "snapshot-", ".bin") {
            files.snapshots.push(n);
        } else if let Some(n) = number(name, "journal-", ".log") {
            files.segments.push(n);
        }
    }
    files.snapshots.sort_unstable();
    files.segments.sort_unstable();
    Ok(files)
}

/// The file name of the snapshot whose replay starts at segment `n`.
pub(crate) fn snapshot_name(n: u64) -> String {
    format!("snapshot-{n:016}.bin")
}

fn damaged(path: &Path, at: usize, what: &str) -> Error {
    storage(
        path.parent().unwrap_or(path),
        format!(
            "{} is damaged at byte offset {at}: {what} (restore the directory from a backup, or move the file away to open what precedes it)",
            path.display()
        ),
    )
}

/// Reads the store in `dir`: its state, the number the next segment
/// takes, and what was found.
pub(crate) fn recover(dir: &Path) -> Result<(Model, u64, Recovery), Error> {
    let files = list(dir)?;
    let mut report = Recovery::default();
    let mut model = Model::default();
    let mut start = 0;
    if let Some(&n) = files.snapshots.last() {
        let path = dir.join(snapshot_name(n));
        let bytes =
            fs::read(&path).map_err(|e| storage(dir, format!("cannot read {}: {e}", path.display())))?;
        let read = frame::read(&bytes);
        match (read.blocks.as_slice(), &read.tail) {
            ([block], Tail::Clean) => {
                model = Model::decode(&bytes[block.clone()])
                    .map_err(|e| damaged(&path, block.start, &format!("not a snapshot ({e})")))?;
            }
            _ => return Err(damaged(&path, read.end, "not one whole snapshot")),
        }
        start = model.start_segment.max(n);
        report.snapshot = Some(n);
    }
    let segments: Vec<u64> = files.segments.iter().copied().filter(|&s| s >= start).collect();
    for (i, &n) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let path = dir.join(super::journal::segment_name(n));
        let bytes =
            fs::read(&path).map_err(|e| storage(dir, format!("cannot read {}: {e}", path.display())))?;
        let read = frame::read(&bytes);
        match read.tail {
            Tail::Clean => {}
            Tail::Torn(len) if last => {
                // The write a crash interrupted: cut it off.
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| storage(dir, format!("cannot open {}: {e}", path.display())))?;
                f.set_len(read.end as u64)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| {
                        storage(
                            dir,
                            format!("cannot cut the torn tail of {}: {e}", path.display()),
                        )
                    })?;
                report.torn = Some((path.clone(), len as u64));
            }
            Tail::Torn(_) => {
                return Err(damaged(
                    &path,
                    read.end,
                    "it ends in the middle of a block, and later segments follow",
                ));
            }
            Tail::Damaged { at, next_good } => {
                return Err(damaged(
                    &path,
                    at,
                    &format!("a bad block with a whole block after it (at {next_good})"),
                ));
            }
        }
        for block in &read.blocks {
            let b = Block::decode(&bytes[block.clone()]).map_err(|e| {
                damaged(
                    &path,
                    block.start,
                    &format!("a block that is not a journal batch ({e})"),
                )
            })?;
            for e in b.entries {
                model.apply(e);
                report.entries += 1;
            }
        }
        report.segments += 1;
    }
    let next = files
        .segments
        .last()
        .copied()
        .unwrap_or(0)
        .max(start.saturating_sub(1))
        + 1;
    Ok((model, next, report))
}

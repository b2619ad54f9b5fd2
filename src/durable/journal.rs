//! [`Journal`]: the append-only log every accepted change goes to before
//! anyone is told of it, with group commit.
//!
//! # Group commit
//!
//! A writer adds its entry to the pending batch under the journal's lock,
//! then (with [`Durability::Always`]) waits until the batch holding it is
//! on disk. A writer that finds no batch in flight and the syncer idle
//! becomes the leader: it takes every pending entry — its own and those of
//! writers that came meanwhile — writes them as one block and syncs the
//! file once, outside the lock; writers that arrive during the sync form
//! the next batch. So sixteen writers of sixteen sessions share one sync
//! per batch instead of paying one each. (Writers of one session are
//! serialised by the session's write lock anyway.)
//!
//! A leader whose own entry is durable returns to its caller at once; if
//! others wrote meanwhile, it hands the next batch to the journal's
//! *syncer* thread, which goes on syncing batch after batch while entries
//! keep coming and sleeps when none are pending. A lone writer therefore
//! never waits for another thread to be scheduled (it leads its own
//! sync), and under load the next sync starts the moment the last one
//! ends, not when a woken waiter gets a core: measured, electing the next
//! leader among the woken waiters left a gap of 55–125 µs between syncs on
//! the 2-core VM, and 16 writers reached 4–5× one writer; with the syncer
//! they share syncs as they should (`benches/durable.rs`).
//!
//! With [`Durability::Interval`] and [`Durability::Never`] a writer's entry
//! is in the file when its write returns (the operating system has it: a
//! killed process loses nothing), not synced: batches are written the same
//! way, one at a time, but without the sync. `Interval` syncs from a
//! background thread every interval, `Never` leaves it to the operating
//! system. A lost machine loses at most the last interval. Accesses and
//! expiries (entries nobody waits for) are written at once when nothing
//! else is under way, else with the batch under way or the next.
//!
//! `sync` and `roll` (a snapshot's) take the journal for themselves: no
//! new batch starts while one waits, so steady writers cannot starve them.
//!
//! Entries of one session reach the file in the order of their revisions:
//! a session's writer holds the session's write lock while it commits, and
//! its commit returns only once its entry is written (or, for an entry
//! that does not wait, it is pending, and pending entries are written in
//! the order they came).
//!
//! # Failure
//!
//! A write or sync that fails leaves the file's state unknown: the entries
//! of that batch may or may not be on disk. Their writers get
//! [`Error::OutcomeUnknown`] (the change is not applied in memory, but may
//! reappear after a restart), and the journal refuses every later write
//! with [`Error::Storage`] until the store is opened again — the rule
//! PostgreSQL adopted after learning that a failed `fsync` cannot be
//! retried.
//!
//! # Files
//!
//! `journal-<n>.log` segments; a new segment starts at every open and every
//! snapshot (`snapshot.rs`), so a file is only ever appended to by one life
//! of one process.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::Durability;
use super::frame;
use super::model::{Block, Entry, encode};
use crate::Error;

/// The file name of segment `n`.
pub(crate) fn segment_name(n: u64) -> String {
    format!("journal-{n:016}.log")
}

/// What is pending and what is synced.
struct State {
    /// Entries added and not yet written.
    pending: Vec<Entry>,
    /// Tickets: the last one handed out, and the last one synced.
    issued: u64,
    durable: u64,
    /// The last ticket written to the file (synced or not). Batches are
    /// written one at a time (`in_flight` is at most 1 while anyone
    /// writes), so every ticket at or below it is in the file, in order.
    written: u64,
    /// Batches being written (a leader's, or immediate writes).
    in_flight: usize,
    /// The file being appended to, and its number.
    file: Arc<File>,
    segment: u64,
    /// Bytes written since the last snapshot.
    since_snapshot: u64,
    /// Set when a write or sync failed: every later write is refused.
    failed: Option<String>,
    /// The syncer thread owns the next batches (no writer leads).
    syncer_busy: bool,
    /// The journal was dropped: the syncer ends.
    closing: bool,
    /// Writers waiting on entries in `pending`, and on the batch last
    /// taken (the syncer waits, briefly, for as many to come back).
    pending_waiters: usize,
    last_waiters: usize,
    /// How long the last sync took.
    last_sync: Duration,
    /// The syncer waits on `work` for writers to come back.
    syncer_gathering: bool,
    /// `sync` and `roll` callers waiting for the journal to themselves: no
    /// new batch starts while one waits (else steady writers would keep
    /// the syncer busy and starve them).
    exclusive: usize,
    /// Counters: commits recorded, syncs made.
    commits: u64,
    syncs: u64,
}

/// The journal of a durable store (see the module docs): the handle the
/// store holds. Its state is shared with the syncer thread.
pub(crate) struct Journal {
    shared: Arc<Shared>,
}

/// What the writers and the syncer share. `state` guards everything that
/// changes; `written` is signalled when a batch is written (or failed),
/// `work` when the syncer is handed batches or the journal closes.
struct Shared {
    dir: PathBuf,
    durability: Durability,
    state: Mutex<State>,
    written: Condvar,
    work: Condvar,
}

impl Drop for Journal {
    fn drop(&mut self) {
        // What waits for no sync (accesses, expiries) goes to disk now.
        let _ = self.shared.sync();
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Opens segment `n` of `dir` for appending (created empty).
fn create_segment(dir: &Path, n: u64) -> Result<File, Error> {
    let path = dir.join(segment_name(n));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| storage(dir, io_error(&path, "cannot create", &e)))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes the directory's entries durable (a new or renamed file).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| storage(dir, io_error(dir, "cannot sync the directory", &e)))
}

/// An error of the store's files in `dir`.
pub(crate) fn storage(dir: &Path, reason: String) -> Error {
    Error::Storage {
        path: dir.display().to_string(),
        reason,
    }
}

/// The error of a write whose batch failed to reach the disk.
fn unknown(dir: &Path, reason: &str) -> Error {
    Error::OutcomeUnknown {
        session: String::new(),
        operation: String::new(),
        reason: format!(
            "the journal in {} could not be written ({reason}): the change was not applied, but may reappear after a restart; the store refuses writes until it is opened again",
            dir.display()
        ),
    }
}

impl Journal {
    /// A journal appending to a new segment `segment` of `dir` (with
    /// [`Durability::Always`], and its syncer thread).
    pub(crate) fn create(dir: &Path, segment: u64, durability: Durability) -> Result<Journal, Error> {
        let file = create_segment(dir, segment)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability,
            state: Mutex::new(State {
                pending: Vec::new(),
                issued: 0,
                durable: 0,
                written: 0,
                in_flight: 0,
                file: Arc::new(file),
                segment,
                since_snapshot: 0,
                failed: None,
                syncer_busy: false,
                closing: false,
                pending_waiters: 0,
                last_waiters: 0,
                last_sync: Duration::ZERO,
                syncer_gathering: false,
                exclusive: 0,
                commits: 0,
                syncs: 0,
            }),
            written: Condvar::new(),
            work: Condvar::new(),
        });
        if durability == Durability::Always {
            let syncer = shared.clone();
            std::thread::Builder::new()
                .name("varwatch-journal-syncer".into())
                .spawn(move || syncer.run_syncer())
                .map_err(|e| storage(dir, format!("cannot start the journal's syncer thread: {e}")))?;
        }
        Ok(Journal { shared })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// See [`Shared::commit`].
    pub(crate) fn commit(&self, entries: Vec<Entry>, wait: bool) -> Result<(), Error> {
        self.shared.commit(entries, wait)
    }

    /// See [`Shared::sync`].
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.shared.sync()
    }

    /// See [`Shared::roll`].
    pub(crate) fn roll(&self) -> Result<u64, Error> {
        self.shared.roll()
    }

    /// Bytes written since the last snapshot.
    pub(crate) fn since_snapshot(&self) -> u64 {
        self.shared.lock().since_snapshot
    }

    /// (commits, syncs) since the journal was created.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.commits, st.syncs)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `entries` (in order, in one batch). With `wait`, returns once it is as durable as the
    /// journal's policy makes it; without (accesses, expiries: they may be
    /// lost), once it is queued for the next write.
    pub(crate) fn commit(&self, entries: Vec<Entry>, wait: bool) -> Result<(), Error> {
        let mut st = self.lock();
        if let Some(reason) = &st.failed {
            return Err(storage(
                &self.dir,
                format!("the journal failed earlier ({reason}); nothing was changed: open the store again"),
            ));
        }
        st.pending.extend(entries);
        st.commits += 1;
        if wait && self.durability == Durability::Always {
            st.pending_waiters += 1;
            if st.syncer_gathering && st.pending_waiters >= st.last_waiters {
                self.work.notify_one();
            }
        }
        st.issued += 1;
        let ticket = st.issued;
        match self.durability {
            Durability::Always if wait => self.wait_durable(st, ticket),
            // An access or expiry: written now if nothing else is under way
            // (a killed process loses nothing); otherwise the batch under
            // way, the syncer or the `sync`/`roll` that holds the journal
            // takes it along (see `release`). Never left pending.
            Durability::Always => {
                if st.in_flight == 0 && !st.syncer_busy && st.exclusive == 0 {
                    self.flush(st, false).map(drop)
                } else {
                    Ok(())
                }
            }
            // Written before the write returns (a killed process loses
            // nothing), not synced.
            Durability::Interval(_) | Durability::Never => self.wait_written(st, ticket),
        }
    }

    /// Waits until `ticket` is synced, leading a batch if none is in
    /// flight and the syncer is idle; a leader that leaves entries pending
    /// hands them to the syncer.
    fn wait_durable<'a>(&'a self, mut st: MutexGuard<'a, State>, ticket: u64) -> Result<(), Error> {
        loop {
            if st.durable >= ticket {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(unknown(&self.dir, reason));
            }
            if st.in_flight == 0 && !st.syncer_busy && st.exclusive == 0 {
                st = self.flush(st, true)?;
                if st.durable >= ticket && !st.pending.is_empty() {
                    st.syncer_busy = true;
                    self.work.notify_one();
                }
                continue;
            }
            st = self.written.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until `ticket` is written to the file (not synced), writing a
    /// batch itself when none is in flight: writes are one at a time, so a
    /// writer never returns before an entry of its own that another
    /// writer's batch took is in the file, and entries reach the file in
    /// the order they came.
    fn wait_written<'a>(&'a self, mut st: MutexGuard<'a, State>, ticket: u64) -> Result<(), Error> {
        loop {
            if st.written >= ticket {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(unknown(&self.dir, reason));
            }
            if st.in_flight == 0 && st.exclusive == 0 {
                st = self.flush(st, false)?;
                continue;
            }
            st = self.written.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The syncer thread: when handed batches, syncs one after another
    /// while entries are pending, then goes idle; ends when the journal is
    /// dropped.
    fn run_syncer(&self) {
        let mut st = self.lock();
        loop {
            while !st.syncer_busy && !st.closing {
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.closing {
                return;
            }
            // No writer leads while `syncer_busy`; `sync` and `roll` may
            // have a batch in flight: let it land first.
            while st.in_flight > 0 {
                st = self.written.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            loop {
                // Also with nothing pending: the writers just released
                // are coming back, and if the syncer went idle now the
                // first of them would lead a batch of one.
                st = self.gather(st);
                if st.pending.is_empty() || st.failed.is_some() || st.exclusive > 0 {
                    break;
                }
                st = match self.flush(st, true) {
                    Ok(st) => st,
                    // The failure is recorded in the state: its writers
                    // see it.
                    Err(_) => self.lock(),
                };
            }
            st.syncer_busy = false;
            // A writer whose entry came after the last check may now lead.
            self.written.notify_all();
        }
    }

    /// Writes every pending entry as one block (and syncs the file with
    /// `sync`) outside the lock; returns the lock again.
    fn flush<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        sync: bool,
    ) -> Result<MutexGuard<'a, State>, Error> {
        if st.pending.is_empty() && !sync {
            return Ok(st);
        }
        let entries = std::mem::take(&mut st.pending);
        st.last_waiters = std::mem::take(&mut st.pending_waiters);
        let last = st.issued;
        st.in_flight += 1;
        let file = st.file.clone();
        drop(st);
        let mut bytes = Vec::new();
        let mut result = Ok(());
        if !entries.is_empty() {
            let payload = encode(&Block { entries });
            if payload.len() > frame::MAX_PAYLOAD {
                result = Err("a batch larger than a block may be".to_string());
            } else {
                frame::encode_block(&payload, &mut bytes);
                result = (&*file).write_all(&bytes).map_err(|e| e.to_string());
            }
        }
        let started = std::time::Instant::now();
        if sync && result.is_ok() {
            result = file.sync_data().map_err(|e| e.to_string());
        }
        let mut st = self.lock();
        if sync {
            st.last_sync = started.elapsed();
        }
        st.in_flight -= 1;
        self.written.notify_all();
        match result {
            Ok(()) => {
                st.since_snapshot += bytes.len() as u64;
                st.written = st.written.max(last);
                if sync {
                    st.durable = st.durable.max(last);
                    st.syncs += 1;
                }
                Ok(st)
            }
            Err(reason) => {
                st.failed = Some(reason.clone());
                Err(unknown(&self.dir, &reason))
            }
        }
    }

    /// Before the syncer's next batch: the writers the last batch released
    /// are on their way back with their next entries; waiting for them
    /// (at most a quarter of the last sync, at most 250 µs) lets one sync
    /// carry all of them, where starting at once would carry only those
    /// that came during the last sync — half of the writers, measured: 16
    /// writers made batches of 8 and reached 4.9× one writer, gathering
    /// makes it batches of about 16. Only the syncer waits, and only
    /// under load (it runs only when writers came during a sync); a lone
    /// writer leads its own sync and never waits here.
    fn gather<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.last_waiters <= 1 {
            return st;
        }
        let deadline = std::time::Instant::now() + (st.last_sync / 4).min(Duration::from_micros(250));
        st.syncer_gathering = true;
        while st.pending_waiters < st.last_waiters && !st.closing && st.exclusive == 0 {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .work
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.syncer_gathering = false;
        st
    }

    /// Takes the journal for `sync` or `roll`: no new batch starts, and
    /// once none is in flight and the syncer is idle, returns; a batch taken
    /// now is the only one, and the tickets it marks durable are exactly
    /// those written before it. Must be followed by [`release`](Self::release).
    fn quiet<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.exclusive += 1;
        // A gathering syncer stops gathering.
        self.work.notify_all();
        while st.in_flight > 0 || st.syncer_busy {
            st = self.written.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st
    }

    /// Gives the journal back after [`quiet`](Self::quiet): waiting writers
    /// may lead again, and what came meanwhile goes to the syncer.
    fn release(&self, mut st: MutexGuard<'_, State>) {
        st.exclusive -= 1;
        if st.exclusive == 0
            && !st.pending.is_empty()
            && self.durability == Durability::Always
            && !st.syncer_busy
            && st.failed.is_none()
        {
            st.syncer_busy = true;
            self.work.notify_one();
        }
        self.written.notify_all();
    }

    /// Writes what is pending and syncs the file (the `Interval` thread,
    /// and a clean close).
    fn sync(&self) -> Result<(), Error> {
        let st = self.quiet(self.lock());
        if st.failed.is_some() {
            self.release(st);
            return Ok(());
        }
        match self.flush(st, true) {
            Ok(st) => {
                self.release(st);
                Ok(())
            }
            Err(e) => {
                self.release(self.lock());
                Err(e)
            }
        }
    }

    /// Starts the next segment (a snapshot follows): later entries go
    /// there. Returns its number.
    fn roll(&self) -> Result<u64, Error> {
        let st = self.quiet(self.lock());
        let mut st = match self.flush(st, true) {
            Ok(st) => st,
            Err(e) => {
                self.release(self.lock());
                return Err(e);
            }
        };
        // Wait out batches in flight: they hold the old file.
        while st.in_flight > 0 {
            st = self.written.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let n = st.segment + 1;
        match create_segment(&self.dir, n) {
            Ok(file) => {
                st.file = Arc::new(file);
                st.segment = n;
                st.since_snapshot = 0;
                self.release(st);
                Ok(n)
            }
            Err(e) => {
                self.release(st);
                Err(e)
            }
        }
    }
}

/// Syncs `journal` every `every`, until it is dropped.
pub(crate) fn start_interval_sync(journal: &Arc<Journal>, every: Duration) {
    let weak = Arc::downgrade(journal);
    let _ = std::thread::Builder::new()
        .name("varwatch-journal-sync".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(j) = weak.upgrade() else { return };
                let _ = j.sync();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::model::{Change, Nothing};
    use prost::Message;

    /// Every entry of every segment of `dir`, in file order.
    fn entries(dir: &Path) -> Vec<Entry> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("journal-"))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let bytes = std::fs::read(dir.join(n)).unwrap();
            let read = frame::read(&bytes);
            assert_eq!(read.tail, frame::Tail::Clean);
            for r in read.blocks {
                out.extend(Block::decode(&bytes[r]).unwrap().entries);
            }
        }
        out
    }

    fn temp(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("varwatch-journal-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An access (an entry that waits for nothing) is written at once,
    /// not left pending until some later write comes.
    #[test]
    fn an_entry_that_waits_for_nothing_is_written_at_once() {
        let dir = temp("nowait");
        let journal = Journal::create(&dir, 1, Durability::Always).unwrap();
        journal.commit(vec![entry(0, 7)], false).unwrap();
        assert_eq!(entries(&dir), [entry(0, 7)]);
        drop(journal);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Writers that never pause do not starve `roll` (a compaction) or
    /// `sync`: each waits for the batch under way, not for a quiet moment.
    /// Counted, not timed: twenty of each must be done before any writer has
    /// made 2 000 commits (they need a few batches; starved, they waited
    /// for the writers to stop).
    #[test]
    fn steady_writers_do_not_starve_roll_or_sync() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        const CAP: u64 = 2_000;
        let dir = temp("starve");
        let journal = Arc::new(Journal::create(&dir, 1, Durability::Always).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let starved = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (journal, done, starved) = (journal.clone(), done.clone(), starved.clone());
                std::thread::spawn(move || {
                    let mut k = 0;
                    while !done.load(SeqCst) {
                        k += 1;
                        if k == CAP {
                            starved.store(true, SeqCst);
                            break;
                        }
                        journal.commit(vec![entry(w, k)], true).unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..20 {
            journal.roll().unwrap();
            journal.sync().unwrap();
        }
        let starved_before = starved.load(SeqCst);
        done.store(true, SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        assert!(!starved_before, "roll and sync waited for the writers to stop");
        drop(journal);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn entry(writer: usize, k: u64) -> Entry {
        Entry {
            session: format!("w{writer}"),
            incarnation: k,
            change: Some(Change::Delete(Nothing {})),
        }
    }

    /// Writers of every policy, waiting and not, with rolls beside them:
    /// nothing deadlocks, every entry is written once, each writer's in
    /// its order, a waiting commit's entry is written before it returns,
    /// and (with `Always`) syncs are shared.
    #[test]
    fn group_commit_writes_every_entry_once_and_in_each_writers_order() {
        for durability in [
            Durability::Always,
            Durability::Interval(Duration::from_millis(1)),
            Durability::Never,
        ] {
            let dir = std::env::temp_dir().join(format!(
                "varwatch-journal-test-{}-{:?}",
                std::process::id(),
                durability
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let journal = Arc::new(Journal::create(&dir, 1, durability).unwrap());
            if let Durability::Interval(every) = durability {
                start_interval_sync(&journal, every);
            }
            const WRITERS: usize = 8;
            const EACH: u64 = 300;
            std::thread::scope(|s| {
                for w in 0..WRITERS {
                    let journal = &journal;
                    s.spawn(move || {
                        for k in 0..EACH {
                            // Every fifth is an access-like entry that
                            // waits for nothing.
                            journal.commit(vec![entry(w, k)], k % 5 != 4).unwrap();
                        }
                    });
                }
                let journal = &journal;
                s.spawn(move || {
                    for _ in 0..5 {
                        std::thread::sleep(Duration::from_millis(3));
                        journal.roll().unwrap();
                    }
                });
            });
            let (commits, syncs) = journal.counts();
            assert_eq!(commits, WRITERS as u64 * EACH);
            // A waiting commit returned: its entry is in a file already.
            let before_drop = entries(&dir);
            for w in 0..WRITERS {
                let last_waiting = (0..EACH).rev().find(|k| k % 5 != 4).unwrap();
                assert!(
                    before_drop.contains(&entry(w, last_waiting)),
                    "{durability:?}: writer {w}'s last waiting entry is not written"
                );
            }
            if durability == Durability::Always {
                assert!(syncs < commits, "{syncs} syncs for {commits} commits");
            }
            drop(journal);
            let all = entries(&dir);
            assert_eq!(all.len(), WRITERS * EACH as usize, "{durability:?}");
            for w in 0..WRITERS {
                let mine: Vec<u64> = all
                    .iter()
                    .filter(|e| e.session == format!("w{w}"))
                    .map(|e| e.incarnation)
                    .collect();
                assert_eq!(mine, (0..EACH).collect::<Vec<_>>(), "{durability:?}: writer {w}");
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

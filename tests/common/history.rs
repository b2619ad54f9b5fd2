//! A history checker: replays what the writers really did (revision by
//! revision) and checks a watch's recorded events against it.
//!
//! The rules checked, for every watch:
//!
//! * **Values are true.** Every `Initial` and `Changed` carries the value its
//!   variable really had at that version.
//! * **Per-variable contiguity.** After a variable's first event, each of its
//!   versions is accounted for exactly once and in order: delivered, named by
//!   a `Lagged` marker that starts right after the last version seen, or (in
//!   coalescing and throttled watches) counted in `skipped`.
//! * **Revisions never go backwards**, and every event of one revision comes
//!   before any event of a later one (a batch is never split by another).
//! * **Every delivered multi-variable state existed.** At each point where the
//!   history moves from one revision to the next (a *group boundary*), the
//!   state the watcher holds — the last version it has of each variable it
//!   follows, and for a whole-session watch the set of variables — is
//!   exactly the session's state at that revision.
//!
//! The last group of a history is checked for values and contiguity only:
//! the consumer may have stopped in the middle of it.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use varwatch::VarStore;
use varwatch::{EventKind, UpdateOptions, Value, VarDef, VarType, WatchEvent};

/// What the writers did: for each revision, the variables it changed
/// (`Some(version)`) or deleted (`None`), and every value ever written.
#[derive(Default)]
pub struct Truth {
    /// `changes[r]`: the changes made at revision `r` (index 0 is empty).
    changes: Vec<Vec<(String, Option<u64>)>>,
    values: HashMap<(String, u64), i64>,
}

impl Truth {
    /// Records the changes of `revision` (revisions are recorded in order,
    /// possibly with gaps for revisions that changed nothing recorded here).
    pub fn record(&mut self, revision: u64, changes: Vec<(String, Option<u64>, Option<i64>)>) {
        let r = revision as usize;
        if self.changes.len() <= r {
            self.changes.resize_with(r + 1, Vec::new);
        }
        for (name, version, value) in changes {
            if let (Some(v), Some(x)) = (version, value) {
                self.values.insert((name.clone(), v), x);
            }
            self.changes[r].push((name, version));
        }
    }

    pub fn revisions(&self) -> u64 {
        self.changes.len().saturating_sub(1) as u64
    }

    /// A cursor over the session's states, revision by revision.
    fn replay(&self) -> Replay<'_> {
        Replay {
            truth: self,
            at: 0,
            state: BTreeMap::new(),
        }
    }
}

/// The session's state at one revision, moved forward on demand.
struct Replay<'a> {
    truth: &'a Truth,
    at: u64,
    state: BTreeMap<String, u64>,
}

impl Replay<'_> {
    fn advance_to(&mut self, revision: u64) -> &BTreeMap<String, u64> {
        assert!(
            revision >= self.at,
            "internal: replay moved backwards ({} -> {revision})",
            self.at
        );
        while self.at < revision {
            self.at += 1;
            if let Some(changes) = self.truth.changes.get(self.at as usize) {
                for (name, version) in changes {
                    match version {
                        Some(v) => {
                            self.state.insert(name.clone(), *v);
                        }
                        None => {
                            self.state.remove(name);
                        }
                    }
                }
            }
        }
        &self.state
    }
}

/// How the watch that produced a history was set up.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    /// `None`: the whole session; otherwise the names watched.
    pub names: Option<Vec<String>>,
    /// Coalescing or throttled: versions may be passed over, counted in
    /// `skipped`, and `Lagged` never appears.
    pub coalescing: bool,
    /// Whether the watch overflowed at least once (lossless watches only:
    /// `Lagged` may appear only then).
    pub overflowed: bool,
}

/// Checks one history; panics with a description of the first violation.
/// Returns how many group boundaries were checked against the truth.
pub fn check(events: &[WatchEvent], spec: &WatchSpec, truth: &Truth) -> usize {
    let mut replay = truth.replay();
    // The watcher's state: variable -> last version accounted for.
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    // Variables a named watch still follows (deleted ones leave).
    let mut following: Option<Vec<String>> = spec.names.clone();
    let mut label: Option<u64> = None;
    let mut boundaries = 0;
    let ctx = |i: usize| {
        let from = i.saturating_sub(4);
        let to = (i + 3).min(events.len());
        format!(
            "event {i} of {} ({spec:?}); around it: {:#?}",
            events.len(),
            &events[from..to]
        )
    };
    for (i, e) in events.iter().enumerate() {
        if e.kind() == EventKind::SessionClosed {
            assert_eq!(i + 1, events.len(), "events after SessionClosed: {}", ctx(i));
            break;
        }
        let rev = e.revision();
        if let Some(prev) = label {
            assert!(
                rev >= prev,
                "revision went backwards: {prev} then {rev}: {}",
                ctx(i)
            );
            if rev > prev {
                // A group boundary: what the watcher holds must be the
                // session's state at revision `prev`.
                let state = replay.advance_to(prev);
                check_cut(&held, following.as_deref(), state, prev, &|| ctx(i));
                boundaries += 1;
            }
        }
        label = Some(rev);
        let name = e.variable_name().to_string();
        let prev_version = held.get(&name).copied();
        match e.kind() {
            EventKind::Initial => {
                assert!(prev_version.is_none(), "second Initial for `{name}`: {}", ctx(i));
                check_value(e, truth, &|| ctx(i));
                if spec.coalescing {
                    // A coalesced initial state may pass over versions of a
                    // variable registered after the watch started.
                    assert!(e.skipped() <= e.version(), "skipped too many: {}", ctx(i));
                }
                held.insert(name, e.version());
            }
            EventKind::Changed => {
                let prev = prev_version.unwrap_or_else(|| panic!("Changed before Initial: {}", ctx(i)));
                check_value(e, truth, &|| ctx(i));
                if spec.coalescing {
                    assert!(e.version() > prev, "version did not increase: {}", ctx(i));
                    assert_eq!(
                        e.skipped(),
                        e.version() - prev - 1,
                        "skip count does not match the versions passed over: {}",
                        ctx(i)
                    );
                } else {
                    assert_eq!(e.version(), prev + 1, "gap or duplicate: {}", ctx(i));
                    assert_eq!(e.skipped(), 0, "skipped in a lossless watch: {}", ctx(i));
                }
                held.insert(name, e.version());
            }
            EventKind::Lagged { first, last } => {
                assert!(!spec.coalescing, "Lagged in a coalescing watch: {}", ctx(i));
                assert!(
                    spec.overflowed,
                    "Lagged in a watch that never overflowed: {}",
                    ctx(i)
                );
                match prev_version {
                    Some(prev) => {
                        assert_eq!(first, prev + 1, "marker does not start after {prev}: {}", ctx(i))
                    }
                    None => {
                        // A variable first met in a resync: its earlier versions.
                        assert!(spec.names.is_none(), "marker for an unknown variable: {}", ctx(i));
                        assert_eq!(first, 0, "marker for a new variable must start at 0: {}", ctx(i));
                    }
                }
                assert!(last >= first, "empty marker: {}", ctx(i));
                // The variable's state (or its deletion) follows in this group.
                // The variable's state (or its deletion) follows in this
                // group, unless the history ends inside the group.
                let group_complete = events[i + 1..].iter().any(|x| x.revision() != rev);
                if group_complete {
                    let next = events[i + 1..]
                        .iter()
                        .take_while(|x| x.revision() == rev)
                        .find(|x| x.variable_name() == name)
                        .unwrap_or_else(|| panic!("marker not followed by a state: {}", ctx(i)));
                    assert_eq!(next.version(), last + 1, "state after the marker: {}", ctx(i));
                }
                // What follows is at `last + 1`: as if `last` had been seen.
                // (A new variable stays unknown until its `Initial`.)
                if prev_version.is_some() {
                    held.insert(name, last);
                }
            }
            EventKind::Deleted => {
                if let Some(prev) = prev_version {
                    if spec.coalescing {
                        assert!(e.version() > prev, "deletion not after {prev}: {}", ctx(i));
                    } else {
                        assert_eq!(
                            e.version(),
                            prev + 1,
                            "deletion not right after {prev}: {}",
                            ctx(i)
                        );
                    }
                } else {
                    panic!("Deleted for a variable never seen: {}", ctx(i));
                }
                held.remove(&name);
                if let Some(f) = following.as_mut() {
                    f.retain(|n| *n != name);
                }
            }
            k => panic!("unexpected {k:?}: {}", ctx(i)),
        }
    }
    boundaries
}

fn check_value(e: &WatchEvent, truth: &Truth, ctx: &dyn Fn() -> String) {
    let got = e.value().and_then(|v| v.as_i64());
    let want = truth
        .values
        .get(&(e.variable_name().to_string(), e.version()))
        .copied();
    if got != want {
        let near: Vec<(u64, i64)> = (e.version().saturating_sub(3)..=e.version() + 3)
            .filter_map(|v| {
                truth
                    .values
                    .get(&(e.variable_name().to_string(), v))
                    .map(|x| (v, *x))
            })
            .collect();
        panic!(
            "value of `{}` at version {} is {got:?}, not what was written ({want:?}; written near it: {near:?}): {}",
            e.variable_name(),
            e.version(),
            ctx()
        );
    }
}

fn check_cut(
    held: &BTreeMap<String, u64>,
    following: Option<&[String]>,
    state: &BTreeMap<String, u64>,
    revision: u64,
    ctx: &dyn Fn() -> String,
) {
    let expected: BTreeMap<&String, u64> = match following {
        None => state.iter().map(|(n, v)| (n, *v)).collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| state.get(n).map(|v| (n, *v)))
            .collect(),
    };
    let got: BTreeMap<&String, u64> = held.iter().map(|(n, v)| (n, *v)).collect();
    assert_eq!(
        got,
        expected,
        "the watcher holds a state that never existed at revision {revision}: {}",
        ctx()
    );
}

// ----- the writers' side -------------------------------------------------------

/// Writers on session `s` whose ground truth is recorded: every write goes
/// through one lock so that the revision it got (read back while holding
/// the lock) and its changes are recorded in the order the store applied
/// them. Watchers are not serialised in any way.
pub struct Workload<S> {
    stores: Vec<S>,
    truth: Arc<Mutex<Truth>>,
    writers: Vec<thread::JoinHandle<()>>,
    /// Set once every writer is done.
    pub done: Arc<AtomicBool>,
}

/// The name of the `i`th static variable.
pub fn static_name(i: usize) -> String {
    format!("v{i}")
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn record<S: VarStore>(
    store: &S,
    truth: &Mutex<Truth>,
    f: impl FnOnce(&S) -> Vec<(String, Option<u64>, Option<i64>)>,
) {
    let mut truth = truth.lock().unwrap();
    let changes = f(store);
    if !changes.is_empty() {
        let revision = store.session("s").unwrap().revision;
        truth.record(revision, changes);
    }
}

impl<S: VarStore + Clone + Send + 'static> Workload<S> {
    /// Registers `statics` integer variables (`v0`, `v1`, …) in session `s`
    /// (which must exist), then starts `writers` threads of `writes` writes
    /// each: single updates, atomic batches of 2 to 4 variables, and now and
    /// then a registration or a deletion of a variable of their own. With
    /// `pause_every`, each writer sleeps a millisecond every that many
    /// writes (so that the run lasts while watchers do other things).
    pub fn start(
        store: &S,
        statics: usize,
        writers: u64,
        writes: usize,
        pause_every: Option<usize>,
    ) -> Workload<S> {
        Self::start_on(std::slice::from_ref(store), statics, writers, writes, pause_every)
    }

    /// As [`start`](Self::start), writer `t` writing through `stores[t %
    /// stores.len()]` (several clients of one store).
    pub fn start_on(
        stores: &[S],
        statics: usize,
        writers: u64,
        writes: usize,
        pause_every: Option<usize>,
    ) -> Workload<S> {
        let store = &stores[0];
        let truth = Arc::new(Mutex::new(Truth::default()));
        for i in 0..statics {
            record(store, &truth, |s| {
                s.register("s", VarDef::new(static_name(i), VarType::Integer, 0))
                    .unwrap();
                vec![(static_name(i), Some(0), Some(0))]
            });
        }
        let unique = Arc::new(AtomicU64::new(1));
        let dynamic = Arc::new(AtomicU64::new(0));
        let writers = (0..writers)
            .map(|t| {
                let (store, truth, unique, dynamic) = (
                    stores[t as usize % stores.len()].clone(),
                    truth.clone(),
                    unique.clone(),
                    dynamic.clone(),
                );
                thread::spawn(move || {
                    let mut rng = Rng(0xA076_1D64_78BD_642F ^ (t + 1));
                    let next = || unique.fetch_add(1, Ordering::Relaxed) as i64;
                    let mut mine: Vec<String> = Vec::new();
                    for w in 1..=writes {
                        if pause_every.is_some_and(|p| w % p == 0) {
                            thread::sleep(std::time::Duration::from_millis(1));
                        }
                        let roll = rng.below(100);
                        if roll < 3 && mine.len() < 3 {
                            let n = format!("d{}", dynamic.fetch_add(1, Ordering::Relaxed));
                            let v = next();
                            record(&store, &truth, |s| {
                                s.register("s", VarDef::new(n.as_str(), VarType::Integer, v))
                                    .unwrap();
                                vec![(n.clone(), Some(0), Some(v))]
                            });
                            mine.push(n);
                        } else if roll < 5 && !mine.is_empty() {
                            let n = mine.swap_remove(rng.below(mine.len()));
                            record(&store, &truth, |s| {
                                s.delete_variable("s", &n).unwrap();
                                vec![(n.clone(), None, None)]
                            });
                        } else if roll < 35 {
                            let mut pool: Vec<String> = (0..statics)
                                .map(static_name)
                                .chain(mine.iter().cloned())
                                .collect();
                            let k = (2 + rng.below(3)).min(pool.len());
                            for j in 0..k {
                                let r = j + rng.below(pool.len() - j);
                                pool.swap(j, r);
                            }
                            let items: Vec<(String, Value)> = pool[..k]
                                .iter()
                                .map(|n| (n.clone(), Value::Integer(next())))
                                .collect();
                            record(&store, &truth, |s| {
                                let versions = s
                                    .update_atomic("s", items.clone(), &UpdateOptions::new())
                                    .unwrap();
                                items
                                    .iter()
                                    .zip(versions)
                                    .map(|((n, v), ver)| (n.clone(), Some(ver), v.as_i64()))
                                    .collect()
                            });
                        } else {
                            let n = if !mine.is_empty() && rng.below(4) == 0 {
                                mine[rng.below(mine.len())].clone()
                            } else {
                                static_name(rng.below(statics))
                            };
                            let v = next();
                            record(&store, &truth, |s| {
                                let ver = s.update("s", &n, v).unwrap();
                                vec![(n.clone(), Some(ver), Some(v))]
                            });
                        }
                    }
                })
            })
            .collect();
        Workload {
            stores: stores.to_vec(),
            truth,
            writers,
            done: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits for the writers, sets `done`, and returns what they did.
    pub fn finish(self) -> Truth {
        for w in self.writers {
            w.join().unwrap();
        }
        self.done.store(true, Ordering::Release);
        drop(self.stores);
        Arc::try_unwrap(self.truth)
            .unwrap_or_else(|_| panic!("the truth is still shared"))
            .into_inner()
            .unwrap()
    }
}

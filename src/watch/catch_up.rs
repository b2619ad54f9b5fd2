//! The catch-up rule: what a watcher that is behind is told about one
//! variable, given what it holds and the variable's state in a consistent
//! cut. One pure function, called by every path that moves a watcher past
//! versions it did not receive one by one:
//!
//! * a local lossless watch that overflowed its capacity (`local/reader.rs`);
//! * every receive of a local coalescing or throttled watch
//!   (`local/coalesce.rs`);
//! * a resume, on any store: a remote client reconnecting with the versions
//!   it has, or a watch opened with [`WatchOptions::resume`]
//!   (`local/resume.rs`, the etcd store's);
//! * a fed watch (remote, etcd) whose buffer overflowed, and every receive
//!   of a fed coalescing watch (`feed.rs`);
//! * an etcd watch that etcd compacted past (`etcd/follow.rs`).
//!
//! The Python package binds the Rust client, so it runs this code too; the
//! cases are exported as test vectors (`tests/vectors/catch_up.json`) that
//! both test suites replay.
//!
//! # The rule
//!
//! Per variable, the watcher either has every version below some `next`
//! ([`Held::Next`]; `initial_owed` when the event owed for `next` is its
//! first, an `Initial`), or has never met the variable ([`Held::Unknown`]: a
//! whole-session watch finds a variable registered while it was behind). The
//! cut has the variable live at version `v`, or deleted at version `v` (one
//! past its last value's version), or not at all (never met and gone: nothing
//! to say).
//!
//! If `v < next` nothing is new. Otherwise, by [`Mode`]:
//!
//! | mode | live at `v` | deleted at `v` |
//! |---|---|---|
//! | `Resync` | `Lagged { next, v-1 }` if `v > next`, then `Changed` (`Initial` if owed or never met) | `Lagged { next, v-1 }` if `v > next`, then `Deleted` |
//! | `Close` | `Lagged { next, v }` | `Lagged { next, v-1 }` if `v > next`, then `Deleted` |
//! | `Coalesce` | `Changed` (`Initial` if owed or never met) with `skipped = v - next` | `Deleted` with `skipped = v - next` |
//!
//! A never-met variable counts from `next = 0`. One exception: a
//! whole-session coalescing watch whose `Initial` of a variable was still
//! owed when the variable was deleted says nothing (at the cut's revision the
//! variable does not exist, and the watcher never held it); a watch that
//! named the variable is told.
//!
//! Afterwards the watcher holds `Next { next: v + 1 }`, or nothing (the
//! variable is deleted).

use super::{EventKind, WatchEvent};
use crate::record::{Record, RecordKind};
use crate::sync::Arc;

/// How a watcher catches up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Lossless: [`EventKind::Lagged`] for the versions skipped, then the
    /// state (the default overflow policy, and every resume).
    Resync,
    /// Lossless with [`OverflowPolicy::Close`](crate::OverflowPolicy::Close):
    /// `Lagged` for everything skipped, the state included; a deletion is
    /// still delivered as itself. The watch ends afterwards.
    Close,
    /// Coalescing: the latest state, with
    /// [`WatchEvent::skipped`](crate::WatchEvent::skipped) counting the
    /// versions passed over.
    Coalesce,
}

/// What the watcher holds of one variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Never met.
    Unknown,
    /// Every version below `next` is accounted for (delivered, or counted as
    /// skipped); with `initial_owed`, the next event is its first, an
    /// `Initial`.
    Next { next: u64, initial_owed: bool },
}

impl Held {
    /// Holds everything up to and including `version`.
    pub(crate) fn after(version: u64) -> Held {
        Held::Next {
            next: version.saturating_add(1),
            initial_owed: false,
        }
    }
}

/// The variable in the cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Now {
    /// Live at this version.
    Live(u64),
    /// Deleted; the deletion's version (one past the last value's).
    Deleted(u64),
}

impl Now {
    /// A variable's state as a record holds it.
    pub(crate) fn of(record: &Record) -> Now {
        match record.kind {
            RecordKind::Deleted => Now::Deleted(record.version),
            _ => Now::Live(record.version),
        }
    }
}

/// What to deliver about one variable, in order: the marker, then the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `Lagged { first, last }`, if versions were skipped.
    pub(crate) lagged: Option<(u64, u64)>,
    /// The state's event (`Initial`, `Changed` or `Deleted`) and its
    /// `skipped` count, if one is delivered.
    pub(crate) event: Option<(EventKind, u64)>,
    /// What the watcher holds afterwards (`None`: the variable is gone).
    pub(crate) held: Option<Held>,
}

impl Plan {
    /// The plan's events about `record` (the variable's state in the cut),
    /// labelled with the cut's `revision`: the marker, then the state.
    pub(crate) fn events(&self, record: &Arc<Record>, revision: u64) -> impl Iterator<Item = WatchEvent> {
        let marker = self.lagged.map(|(first, last)| {
            WatchEvent::from_parts(EventKind::Lagged { first, last }, record.clone(), 0).at_revision(revision)
        });
        let state = self.event.map(|(kind, skipped)| {
            WatchEvent::from_parts(kind, record.clone(), skipped).at_revision(revision)
        });
        marker.into_iter().chain(state)
    }
}

/// The rule (see the module docs). `None`: nothing is new, the watcher's
/// hold is unchanged.
pub(crate) fn catch_up(mode: Mode, whole_session: bool, held: Held, now: Now) -> Option<Plan> {
    let (next, owed) = match held {
        Held::Unknown => match now {
            // Met and gone while the watcher was away: nothing to say.
            Now::Deleted(_) => return None,
            Now::Live(_) => (0, true),
        },
        Held::Next { next, initial_owed } => (next, initial_owed),
    };
    let v = match now {
        Now::Live(v) | Now::Deleted(v) => v,
    };
    if v < next {
        return None;
    }
    let fresh = if owed {
        EventKind::Initial
    } else {
        EventKind::Changed
    };
    // Versions `next..=last` skipped, as a marker (none if the range is empty).
    let range = |last: Option<u64>| last.filter(|&l| l >= next).map(|l| (next, l));
    let plan = match (mode, now) {
        (Mode::Coalesce, Now::Deleted(_)) if owed && whole_session && held != Held::Unknown => Plan {
            lagged: None,
            event: None,
            held: None,
        },
        (Mode::Coalesce, Now::Deleted(_)) => Plan {
            lagged: None,
            event: Some((EventKind::Deleted, v - next)),
            held: None,
        },
        (Mode::Coalesce, Now::Live(_)) => Plan {
            lagged: None,
            event: Some((fresh, v - next)),
            held: Some(Held::after(v)),
        },
        (Mode::Resync | Mode::Close, Now::Deleted(_)) => Plan {
            lagged: range(v.checked_sub(1)),
            event: Some((EventKind::Deleted, 0)),
            held: None,
        },
        (Mode::Resync, Now::Live(_)) => Plan {
            lagged: range(v.checked_sub(1)),
            event: Some((fresh, 0)),
            held: Some(Held::after(v)),
        },
        (Mode::Close, Now::Live(_)) => Plan {
            lagged: range(Some(v)),
            event: None,
            held: Some(Held::after(v)),
        },
    };
    Some(plan)
}

/// The rule with its inputs and outputs spelled as the test vectors spell
/// them (`tests/vectors/catch_up.json`): for the Python package's tests.
/// Returns `(lagged, (event kind, skipped), next)` (`next` `None`: gone), or
/// `None` when nothing is new.
#[allow(clippy::type_complexity)]
pub fn vector(
    mode: &str,
    whole_session: bool,
    held: &str,
    next: u64,
    now: &str,
    version: u64,
) -> Result<Option<(Option<(u64, u64)>, Option<(String, u64)>, Option<u64>)>, String> {
    let mode = match mode {
        "resync" => Mode::Resync,
        "close" => Mode::Close,
        "coalesce" => Mode::Coalesce,
        m => return Err(format!("mode {m:?}")),
    };
    let held = match held {
        "unknown" => Held::Unknown,
        "next" => Held::Next {
            next,
            initial_owed: false,
        },
        "owed" => Held::Next {
            next,
            initial_owed: true,
        },
        h => return Err(format!("held {h:?}")),
    };
    let now = match now {
        "live" => Now::Live(version),
        "deleted" => Now::Deleted(version),
        n => return Err(format!("now {n:?}")),
    };
    Ok(catch_up(mode, whole_session, held, now).map(|p| {
        let event = p.event.map(|(kind, skipped)| {
            let name = match kind {
                EventKind::Initial => "initial",
                EventKind::Changed => "changed",
                _ => "deleted",
            };
            (name.to_string(), skipped)
        });
        let after = p.held.map(|h| match h {
            Held::Next { next, .. } => next,
            Held::Unknown => 0,
        });
        (p.lagged, event, after)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The test vectors shared with the Python package's tests
    /// (`tests/vectors/catch_up.json`): each case is checked here.
    #[test]
    fn the_shared_test_vectors_hold() {
        let text = include_str!("../../tests/vectors/catch_up.json");
        let cases = vectors::parse(text).expect("the vector file parses");
        assert!(cases.len() >= 30, "only {} cases", cases.len());
        for case in cases {
            let got = catch_up(case.mode, case.whole, case.held, case.now);
            assert_eq!(got, case.expect, "case `{}`", case.name);
        }
    }

    /// An oracle written independently of the rule: which versions are
    /// delivered, skipped, or marked, version by version.
    fn oracle(mode: Mode, whole: bool, held: Held, now: Now) -> Option<Plan> {
        let (next, owed, met) = match held {
            Held::Unknown => (0, true, false),
            Held::Next { next, initial_owed } => (next, initial_owed, true),
        };
        let (v, deleted) = match now {
            Now::Live(v) => (v, false),
            Now::Deleted(v) => (v, true),
        };
        if (!met && deleted) || v < next {
            return None;
        }
        // The versions missed, `next..v`, as a range and a count (the
        // values reach u64::MAX: no enumeration).
        let missed = (v > next).then(|| (next, v - 1));
        let count = v - next;
        let kind = if deleted {
            EventKind::Deleted
        } else if owed {
            EventKind::Initial
        } else {
            EventKind::Changed
        };
        let held_after = if deleted { None } else { Some(Held::after(v)) };
        Some(match mode {
            Mode::Coalesce if deleted && owed && whole && met => Plan {
                lagged: None,
                event: None,
                held: None,
            },
            Mode::Coalesce => Plan {
                lagged: None,
                event: Some((kind, count)),
                held: held_after,
            },
            Mode::Resync => Plan {
                lagged: missed,
                event: Some((kind, 0)),
                held: held_after,
            },
            Mode::Close if deleted => Plan {
                lagged: missed,
                event: Some((kind, 0)),
                held: None,
            },
            // Everything up to the state itself.
            Mode::Close => Plan {
                lagged: Some((next, v)),
                event: None,
                held: held_after,
            },
        })
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Resync), Just(Mode::Close), Just(Mode::Coalesce)]
    }

    fn held() -> impl Strategy<Value = Held> {
        prop_oneof![
            Just(Held::Unknown),
            (0u64..6, any::<bool>()).prop_map(|(next, initial_owed)| Held::Next { next, initial_owed }),
            (u64::MAX - 3..=u64::MAX).prop_map(|next| Held::Next {
                next,
                initial_owed: false
            }),
        ]
    }

    fn now() -> impl Strategy<Value = Now> {
        prop_oneof![
            (0u64..8).prop_map(Now::Live),
            (0u64..8).prop_map(Now::Deleted),
            (u64::MAX - 3..=u64::MAX).prop_map(Now::Live),
        ]
    }

    proptest! {
        /// Every combination agrees with the oracle, and the accounting is
        /// exact: the versions marked, skipped and delivered are exactly
        /// `next..=v`, each once.
        #[test]
        fn the_rule_matches_an_independent_oracle(mode in mode(), whole in any::<bool>(), held in held(), now in now()) {
            let got = catch_up(mode, whole, held, now);
            prop_assert_eq!(got, oracle(mode, whole, held, now));
            if let (Some(p), Held::Next { next, .. }) = (got, held) {
                let v = match now { Now::Live(v) | Now::Deleted(v) => v };
                // In u128: the span reaches 2^64.
                let marked = p.lagged.map_or(0, |(f, l)| u128::from(l - f) + 1);
                let skipped = u128::from(p.event.map_or(0, |(_, s)| s));
                let delivered = u128::from(matches!(p.event, Some((k, _)) if k != EventKind::Deleted));
                let deletion = matches!(now, Now::Deleted(_));
                if p.event.is_some() || p.lagged.is_some() {
                    // Live: next..=v is marked, skipped or delivered.
                    // Deleted: next..v is marked or skipped.
                    let span = u128::from(v - next) + u128::from(!deletion);
                    prop_assert_eq!(marked + skipped + delivered, span);
                }
                if let Some((first, _)) = p.lagged {
                    prop_assert_eq!(first, next);
                }
            }
        }
    }

    /// The vector file's format: a small hand-written JSON reader, so that
    /// the test needs no JSON dependency.
    pub(super) mod vectors {
        use super::*;

        pub(crate) struct Case {
            pub(crate) name: String,
            pub(crate) mode: Mode,
            pub(crate) whole: bool,
            pub(crate) held: Held,
            pub(crate) now: Now,
            pub(crate) expect: Option<Plan>,
        }

        /// One case per line of the `cases` array, each an object of flat
        /// fields (see the file's own description).
        pub(crate) fn parse(text: &str) -> Result<Vec<Case>, String> {
            let mut out = Vec::new();
            for line in text.lines().map(str::trim) {
                if !line.starts_with("{\"name\"") {
                    continue;
                }
                out.push(case(line)?);
            }
            Ok(out)
        }

        fn field<'a>(line: &'a str, key: &str) -> Result<&'a str, String> {
            let pat = format!("\"{key}\": ");
            let at = line.find(&pat).ok_or_else(|| format!("no `{key}` in {line}"))? + pat.len();
            let rest = &line[at..];
            let end = if let Some(quoted) = rest.strip_prefix('"') {
                quoted.find('"').map(|i| i + 2)
            } else if rest.starts_with('[') {
                rest.find(']').map(|i| i + 1)
            } else {
                rest.find([',', '}'])
            }
            .ok_or_else(|| format!("unterminated `{key}`"))?;
            Ok(rest[..end].trim_matches('"'))
        }

        fn num(s: &str) -> Result<u64, String> {
            s.trim().parse().map_err(|e| format!("{s}: {e}"))
        }

        fn pair(s: &str) -> Result<Option<(u64, u64)>, String> {
            if s == "null" {
                return Ok(None);
            }
            let inner = s.trim_start_matches('[').trim_end_matches(']');
            let (a, b) = inner.split_once(',').ok_or("a pair")?;
            Ok(Some((num(a)?, num(b)?)))
        }

        fn case(line: &str) -> Result<Case, String> {
            let mode = match field(line, "mode")? {
                "resync" => Mode::Resync,
                "close" => Mode::Close,
                "coalesce" => Mode::Coalesce,
                m => return Err(format!("mode {m}")),
            };
            let held = match field(line, "held")? {
                "unknown" => Held::Unknown,
                "next" => Held::Next {
                    next: num(field(line, "next")?)?,
                    initial_owed: false,
                },
                "owed" => Held::Next {
                    next: num(field(line, "next")?)?,
                    initial_owed: true,
                },
                h => return Err(format!("held {h}")),
            };
            let v = num(field(line, "version")?)?;
            let now = match field(line, "now")? {
                "live" => Now::Live(v),
                "deleted" => Now::Deleted(v),
                n => return Err(format!("now {n}")),
            };
            let expect = match field(line, "event")? {
                "none" => None,
                e => {
                    let event = match e {
                        "-" => None,
                        k => Some((
                            match k {
                                "initial" => EventKind::Initial,
                                "changed" => EventKind::Changed,
                                "deleted" => EventKind::Deleted,
                                k => return Err(format!("event {k}")),
                            },
                            num(field(line, "skipped")?)?,
                        )),
                    };
                    Some(Plan {
                        lagged: pair(field(line, "lagged")?)?,
                        event,
                        held: match field(line, "after")? {
                            "gone" => None,
                            a => Some(Held::after(num(a)?.saturating_sub(1))),
                        },
                    })
                }
            };
            Ok(Case {
                name: field(line, "name")?.to_string(),
                mode,
                whole: field(line, "whole")? == "true",
                held,
                now,
                expect,
            })
        }
    }
}

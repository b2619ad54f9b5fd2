//! A consistent cut of what a watch follows: the state of each tracked
//! variable, and for a whole-session watch the variables it has not met
//! yet, all as of one revision (`Session::read_cut`). Both the resync of a
//! lossless watch and every delivery of a coalescing one start from it.

use smallvec::SmallVec;

use super::LocalWatch;
use crate::record::{Record, RecordKind, VarCell};
use crate::sync::Arc;

/// The session as one watch sees it at one revision.
pub(super) struct Cut {
    pub(super) revision: u64,
    /// The log's tail at the cut: every record at or after it is newer.
    pub(super) tail: u64,
    pub(super) closed: bool,
    /// The state of each tracked variable, in `tracked` order.
    pub(super) states: SmallVec<[Arc<Record>; 2]>,
    /// Whole-session watches: live variables not tracked yet, in slot order.
    pub(super) new: Vec<(Arc<VarCell>, Arc<Record>)>,
}

impl LocalWatch {
    pub(super) fn read_cut(&self) -> Cut {
        self.session.read_cut(|| Cut {
            revision: self.session.revision(),
            tail: self.session.log.tail(),
            closed: self.session.is_closed(),
            states: self.tracked.iter().map(|t| t.cell.current.load_full()).collect(),
            new: if self.whole_session {
                self.session
                    .cells()
                    .into_iter()
                    .filter(|c| self.tracked_index(c.meta.slot).is_err())
                    .map(|c| {
                        let state = c.current.load_full();
                        (c, state)
                    })
                    .filter(|(_, s)| s.kind != RecordKind::Deleted)
                    .collect()
            } else {
                Vec::new()
            },
        })
    }
}

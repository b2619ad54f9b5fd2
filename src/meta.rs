//! A variable's immutable facts ([`VarMeta`]), shared by all its records,
//! and the metadata type of sessions, variables and changes. Apart from the
//! record model (`record.rs`) so that what watches list about what they
//! follow (`observer.rs`) can name a variable without depending on cells.

use std::time::SystemTime;

use crate::sync::Arc;
use crate::value::{Constraints, VarType};

/// Free-form string metadata of sessions, variables and changes.
pub type Metadata = std::collections::BTreeMap<String, String>;

/// A variable's registration number within its session (never reused; 64
/// bits so that no amount of register/delete churn can wrap it).
pub(crate) type Slot = u64;

/// Immutable facts about a variable, shared by all its records.
pub(crate) struct VarMeta {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) var_type: VarType,
    pub(crate) constraints: Constraints,
    pub(crate) metadata: Arc<Metadata>,
    pub(crate) created_at: SystemTime,
    /// Registration order within the session; watches keep their tracked
    /// variables sorted by it.
    pub(crate) slot: Slot,
}

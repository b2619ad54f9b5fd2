//! The public types of sessions and variables: [`Variable`] (a snapshot of
//! one), [`VarDef`] (what registers one), [`UpdateOptions`],
//! [`SessionInfo`], [`SessionOptions`], [`GetMany`] (a cut of several),
//! and the rules for names.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::record::Record;
use crate::sync::Arc;
use crate::value::{Constraints, Value, VarType};

pub use crate::meta::Metadata;

/// The result of [`SessionStore::get_many`](crate::SessionStore::get_many): one consistent cut of the
/// session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GetMany {
    /// `(identifier as given, variable)` for each one found, in request order.
    pub found: Vec<(String, Variable)>,
    /// The identifiers not found, in request order.
    pub missing: Vec<String>,
    /// The session revision of the cut: every variable found is in its
    /// state at this revision.
    pub revision: u64,
}

/// The result of [`VarStore::list_variables`](crate::VarStore::list_variables):
/// variables of one session as one consistent cut. Derefs to a slice of
/// [`Variable`]s (`len`, `iter`, indexing) and iterates as one.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VarList {
    /// The variables, in registration order.
    pub variables: Vec<Variable>,
    /// The session revision of the cut: every variable is in its state at
    /// this revision (a watch opened from it misses nothing after it).
    pub revision: u64,
}

impl VarList {
    /// A list of `variables` as of `revision`.
    pub fn new(variables: Vec<Variable>, revision: u64) -> VarList {
        VarList { variables, revision }
    }
}

impl std::ops::Deref for VarList {
    type Target = [Variable];
    fn deref(&self) -> &[Variable] {
        &self.variables
    }
}

impl IntoIterator for VarList {
    type Item = Variable;
    type IntoIter = std::vec::IntoIter<Variable>;
    fn into_iter(self) -> Self::IntoIter {
        self.variables.into_iter()
    }
}

impl<'a> IntoIterator for &'a VarList {
    type Item = &'a Variable;
    type IntoIter = std::slice::Iter<'a, Variable>;
    fn into_iter(self) -> Self::IntoIter {
        self.variables.iter()
    }
}

/// A snapshot of one variable: what it is and its state at one version.
///
/// Cheap to clone (one reference count). Obtained from
/// [`SessionStore::get`](crate::SessionStore::get) and friends.
#[derive(Clone)]
pub struct Variable {
    pub(crate) record: Arc<Record>,
}

impl Variable {
    /// The variable's id: stable, unique in the store, never reused.
    pub fn id(&self) -> &str {
        &self.record.var.id
    }
    /// The variable's name, unique in its session.
    pub fn name(&self) -> &str {
        &self.record.var.name
    }
    /// The variable's type.
    pub fn var_type(&self) -> VarType {
        self.record.var.var_type
    }
    /// The value at [`version`](Self::version).
    pub fn value(&self) -> &Value {
        &self.record.value
    }
    /// The variable's constraints.
    pub fn constraints(&self) -> &Constraints {
        &self.record.var.constraints
    }
    /// The metadata given at registration.
    pub fn metadata(&self) -> &Metadata {
        &self.record.var.metadata
    }
    /// The version: 0 at registration, +1 per accepted change.
    pub fn version(&self) -> u64 {
        self.record.version
    }
    /// The session revision of the last change.
    pub fn revision(&self) -> u64 {
        self.record.revision
    }
    /// When the variable was registered (wall clock).
    pub fn created_at(&self) -> SystemTime {
        self.record.var.created_at
    }
    /// When the variable last changed (wall clock).
    pub fn updated_at(&self) -> SystemTime {
        self.record.timestamp
    }
    /// The source named by the last change, if it named one.
    pub fn source(&self) -> Option<&str> {
        self.record.source.as_deref()
    }
    /// The metadata carried by the last change.
    pub fn change_metadata(&self) -> Option<&Metadata> {
        self.record.metadata.as_deref()
    }
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("type", &self.var_type())
            .field("value", self.value())
            .field("version", &self.version())
            .finish()
    }
}

/// Everything needed to register a variable: name, type, initial value,
/// constraints and metadata. Also what [`SessionStore::export`] returns and
/// [`SessionStore::import`] takes.
///
/// ```
/// use varwatch::{Constraints, VarDef, VarType};
/// let def = VarDef::new("temperature", VarType::Float, 0.7)
///     .constraints(Constraints::new().min(0.0).max(2.0))
///     .metadata("unit", "none");
/// assert_eq!(def.name, "temperature");
/// ```
///
/// [`SessionStore::export`]: crate::SessionStore::export
/// [`SessionStore::import`]: crate::SessionStore::import
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[must_use = "a definition does nothing until registered"]
pub struct VarDef {
    /// The name, unique in the session: 1 to 256 bytes of UTF-8, no control
    /// characters, and not of the form of a variable id (`var_` followed by
    /// digits only, such as `var_3`), so that no identifier can mean two
    /// variables: anywhere an identifier is taken, a string of that form is
    /// looked up among ids only and any other among names only.
    pub name: String,
    /// The type.
    pub var_type: VarType,
    /// The initial value (coerced to the type, then checked).
    pub value: Value,
    /// The constraints (must fit the type).
    pub constraints: Constraints,
    /// Free-form metadata.
    pub metadata: Metadata,
}

/// The definition that registers a copy of a variable (its name, type,
/// current value, constraints and metadata): what `export` returns.
impl From<&Variable> for VarDef {
    fn from(v: &Variable) -> VarDef {
        let mut def = VarDef::new(v.name(), v.var_type(), v.value().clone());
        def.constraints = v.constraints().clone();
        def.metadata = v.metadata().clone();
        def
    }
}

impl VarDef {
    /// A definition with no constraints and no metadata.
    pub fn new(name: impl Into<String>, var_type: VarType, value: impl Into<Value>) -> VarDef {
        VarDef {
            name: name.into(),
            var_type,
            value: value.into(),
            constraints: Constraints::default(),
            metadata: Metadata::new(),
        }
    }
    /// Sets the constraints.
    pub fn constraints(mut self, c: Constraints) -> VarDef {
        self.constraints = c;
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> VarDef {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Options of one update: optimistic concurrency, and what watchers are told
/// about where the change came from.
///
/// ```
/// use varwatch::UpdateOptions;
/// let opts = UpdateOptions::new().expected_version(3).source("optimizer").metadata("step", "12");
/// assert_eq!(opts.expected_version, Some(3));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
#[must_use = "options do nothing until passed to an update"]
pub struct UpdateOptions {
    /// Apply only if the variable is at this version, else
    /// [`Error::VersionConflict`](crate::Error::VersionConflict).
    pub expected_version: Option<u64>,
    /// Who made the change; watchers receive it.
    pub source: Option<String>,
    /// Metadata of the change; watchers receive it.
    pub metadata: Metadata,
}

impl UpdateOptions {
    /// No expectation, no source, no metadata.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `expected_version`.
    pub fn expected_version(mut self, v: u64) -> Self {
        self.expected_version = Some(v);
        self
    }
    /// Sets `source`.
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.source = Some(s.into());
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// A snapshot of a session's facts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session id.
    pub id: String,
    /// Metadata given at creation.
    pub metadata: Metadata,
    /// When the session was created (wall clock).
    pub created_at: SystemTime,
    /// When the session was last accessed (wall clock).
    pub last_accessed: SystemTime,
    /// Time since the session was last accessed.
    pub idle_for: Duration,
    /// The time-to-live, if any: idle longer than this and it expires.
    pub ttl: Option<Duration>,
    /// Number of accepted writes so far.
    pub revision: u64,
    /// Number of variables.
    pub variables: usize,
    /// Number of live watches.
    pub watchers: usize,
}

/// Options for creating a session.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
#[must_use = "options do nothing until passed to `create_session`"]
pub struct SessionOptions {
    /// Expire after this long without access (default: the store's
    /// `default_ttl`, which is none).
    pub ttl: Option<Duration>,
    /// Metadata of the session.
    pub metadata: Metadata,
}

impl SessionOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

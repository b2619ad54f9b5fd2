//! Values, types and constraints, and the validation rules that tie them.
//!
//! # The rules
//!
//! * **Coercion.** An integer given for a float variable becomes a float. A
//!   float given for an integer variable is accepted when it is finite and
//!   whole (`3.0` becomes `3`) and rejected otherwise (`1.5`, NaN). A string,
//!   choice or module value is accepted for any of those three types and takes
//!   the variable's type. Nothing else is coerced: a boolean is only a boolean.
//! * **Special floats.** NaN and ±infinity are valid values of an unconstrained
//!   float variable. Under a `min` or `max` constraint they are compared like
//!   any other number: `+inf` passes a `min` and fails a `max`, `-inf` the
//!   reverse, and **NaN fails every bound** (it is neither above nor below, so
//!   it cannot be shown to be inside the range).
//! * **Bounds** are inclusive. Integer values are compared with the bounds
//!   exactly (no rounding through `f64`).
//! * **Lengths** of strings are counted in Unicode scalar values (`char`s).
//! * **Constraints must fit the type**: a `min` on a string variable, an
//!   empty `choices` list, or a choice variable without `choices`, is an
//!   [`Error::InvalidConstraints`](crate::Error) at registration.
//! * **Equality for the no-op rule** ([`Value::is_identical`]) is bitwise for
//!   floats, so `NaN` equals the same `NaN` and `-0.0` differs from `0.0`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, LIST_ITEMS, Quoted, shape_list};

/// The type of a variable. A variable's type is fixed when it is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum VarType {
    /// A 64-bit float (`f64`).
    Float,
    /// A 64-bit signed integer (`i64`).
    Integer,
    /// A UTF-8 string.
    String,
    /// `true` or `false`.
    Boolean,
    /// One string out of a list of `choices`.
    Choice,
    /// The name of a module (a component, strategy or class), optionally out of
    /// a list of `allowed_modules`.
    Module,
    /// A vector of `f32`, optionally of fixed `dimensions`.
    Embedding,
    /// An n-dimensional array of `f32`: a shape and its data in row-major order.
    Tensor,
}

impl VarType {
    /// The type's name as used in messages and on the wire (`"float"`, …).
    pub fn name(self) -> &'static str {
        match self {
            VarType::Float => "float",
            VarType::Integer => "integer",
            VarType::String => "string",
            VarType::Boolean => "boolean",
            VarType::Choice => "choice",
            VarType::Module => "module",
            VarType::Embedding => "embedding",
            VarType::Tensor => "tensor",
        }
    }

    /// "a float", "an integer", …: the name with its article, for messages.
    pub(crate) fn with_article(self) -> String {
        match self {
            VarType::Integer | VarType::Embedding => format!("an {}", self.name()),
            _ => format!("a {}", self.name()),
        }
    }

    /// All eight types, in declaration order.
    pub const ALL: [VarType; 8] = [
        VarType::Float,
        VarType::Integer,
        VarType::String,
        VarType::Boolean,
        VarType::Choice,
        VarType::Module,
        VarType::Embedding,
        VarType::Tensor,
    ];
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An n-dimensional `f32` array: a shape and its row-major data.
///
/// The data length always equals the product of the shape (an empty shape is
/// a scalar with one element). Shape and data are shared (`Arc`), so cloning a
/// tensor, or delivering it to a thousand watchers, copies no elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Arc<[usize]>,
    data: Arc<[f32]>,
}

impl Tensor {
    /// Builds a tensor, checking that `data.len()` is the product of `shape`.
    ///
    /// ```
    /// use varwatch::Tensor;
    /// let t = Tensor::new(vec![2, 3], vec![0.0; 6]).unwrap();
    /// assert_eq!(t.shape(), &[2, 3]);
    /// assert!(Tensor::new(vec![2, 3], vec![0.0; 5]).is_err());
    /// ```
    pub fn new(shape: impl Into<Vec<usize>>, data: impl Into<Arc<[f32]>>) -> Result<Tensor, Error> {
        let shape: Vec<usize> = shape.into();
        let data: Arc<[f32]> = data.into();
        let expected = shape.iter().try_fold(1u128, |acc, &d| acc.checked_mul(d as u128));
        match expected {
            Some(n) if n == data.len() as u128 => Ok(Tensor {
                shape: shape.into(),
                data,
            }),
            other => Err(Error::InvalidTensor {
                shape,
                expected: other.unwrap_or(u128::MAX),
                actual: data.len(),
            }),
        }
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The tensor's elements in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    fn is_identical(&self, other: &Tensor) -> bool {
        self.shape == other.shape && floats32_identical(&self.data, &other.data)
    }
}

/// A variable's value.
///
/// Strings and vectors are reference-counted: cloning a `Value` never copies
/// its contents, which is what lets one update reach many watchers cheaply.
///
/// Build values with `From` (`Value::from(0.7)`, `Value::from("text")`,
/// `Value::from(vec![0.1f32, 0.2])`) or the named constructors
/// [`Value::choice`], [`Value::module`] and [`Value::tensor`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A float.
    Float(f64),
    /// An integer.
    Integer(i64),
    /// A string.
    String(Arc<str>),
    /// A boolean.
    Boolean(bool),
    /// One of a choice variable's `choices`.
    Choice(Arc<str>),
    /// A module name.
    Module(Arc<str>),
    /// An embedding vector.
    Embedding(Arc<[f32]>),
    /// A tensor.
    Tensor(Tensor),
}

impl Value {
    /// A choice value.
    pub fn choice(s: impl Into<Arc<str>>) -> Value {
        Value::Choice(s.into())
    }

    /// A module value.
    pub fn module(s: impl Into<Arc<str>>) -> Value {
        Value::Module(s.into())
    }

    /// An embedding value.
    pub fn embedding(v: impl Into<Arc<[f32]>>) -> Value {
        Value::Embedding(v.into())
    }

    /// A tensor value; errors if `data.len()` is not the product of `shape`.
    pub fn tensor(shape: impl Into<Vec<usize>>, data: impl Into<Arc<[f32]>>) -> Result<Value, Error> {
        Tensor::new(shape, data).map(Value::Tensor)
    }

    /// The type this value has as it stands (before any coercion).
    pub fn var_type(&self) -> VarType {
        match self {
            Value::Float(_) => VarType::Float,
            Value::Integer(_) => VarType::Integer,
            Value::String(_) => VarType::String,
            Value::Boolean(_) => VarType::Boolean,
            Value::Choice(_) => VarType::Choice,
            Value::Module(_) => VarType::Module,
            Value::Embedding(_) => VarType::Embedding,
            Value::Tensor(_) => VarType::Tensor,
        }
    }

    /// The value as an `f64`, for floats and integers.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(x) => Some(x),
            Value::Integer(i) => Some(i as f64),
            _ => None,
        }
    }

    /// The value as an `i64`, for integers.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Integer(i) => Some(i),
            _ => None,
        }
    }

    /// The text of a string, choice or module value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Choice(s) | Value::Module(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a `bool`, for booleans.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an embedding.
    pub fn as_embedding(&self) -> Option<&[f32]> {
        match self {
            Value::Embedding(v) => Some(v),
            _ => None,
        }
    }

    /// The tensor, for tensor values.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// Whether two values are the same state: same type and bitwise-equal
    /// contents (so a NaN is identical to the same NaN). This is the rule by
    /// which an update to the current value is a no-op.
    pub fn is_identical(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::String(a), Value::String(b))
            | (Value::Choice(a), Value::Choice(b))
            | (Value::Module(a), Value::Module(b)) => a == b,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Embedding(a), Value::Embedding(b)) => floats32_identical(a, b),
            (Value::Tensor(a), Value::Tensor(b)) => a.is_identical(b),
            _ => false,
        }
    }
}

fn floats32_identical(a: &[f32], b: &[f32]) -> bool {
    std::ptr::eq(a, b) || (a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()))
}

/// Shows the value as messages quote it: numbers plainly, strings quoted and
/// cut at [`QUOTE_CHARS`](crate::QUOTE_CHARS) characters, vectors by their
/// size, tensor shapes cut at [`LIST_ITEMS`](crate::LIST_ITEMS) dimensions.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(x) => write!(f, "{x}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::String(s) | Value::Choice(s) | Value::Module(s) => write!(f, "\"{}\"", Quoted(s)),
            Value::Embedding(v) => write!(f, "an embedding of {} dimensions", v.len()),
            Value::Tensor(t) => write!(f, "a tensor of shape {}", shape_list(t.shape())),
        }
    }
}

macro_rules! from_impl {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from($v: $t) -> Value { $e }
        }
    )*};
}

from_impl! {
    f64 => |v| Value::Float(v),
    f32 => |v| Value::Float(v as f64),
    i64 => |v| Value::Integer(v),
    i32 => |v| Value::Integer(v as i64),
    u32 => |v| Value::Integer(v as i64),
    bool => |v| Value::Boolean(v),
    &str => |v| Value::String(v.into()),
    String => |v| Value::String(v.into()),
    Arc<str> => |v| Value::String(v),
    Vec<f32> => |v| Value::Embedding(v.into()),
    Arc<[f32]> => |v| Value::Embedding(v),
    Tensor => |v| Value::Tensor(v),
}

/// The rules a variable's values must follow. Which fields apply depends on
/// the variable's type; setting one that does not apply is an error at
/// registration.
///
/// | type | fields |
/// |---|---|
/// | float, integer | `min`, `max` (inclusive) |
/// | string | `min_length`, `max_length` (in `char`s), `allowed_values` |
/// | choice | `choices` |
/// | module | `allowed_modules` |
/// | embedding | `dimensions` |
/// | tensor | `shape` |
///
/// ```
/// use varwatch::Constraints;
/// let c = Constraints::new().min(0.0).max(100.0);
/// assert_eq!(c.max, Some(100.0));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
#[must_use = "constraints do nothing until given to a `VarDef`"]
pub struct Constraints {
    /// Smallest allowed number (inclusive).
    pub min: Option<f64>,
    /// Largest allowed number (inclusive).
    pub max: Option<f64>,
    /// Fewest characters in a string.
    pub min_length: Option<usize>,
    /// Most characters in a string.
    pub max_length: Option<usize>,
    /// The only strings allowed.
    pub allowed_values: Option<Vec<String>>,
    /// The options of a choice variable (must not be empty).
    pub choices: Option<Vec<String>>,
    /// The modules a module variable may name (must not be empty).
    pub allowed_modules: Option<Vec<String>>,
    /// The exact length of an embedding.
    pub dimensions: Option<usize>,
    /// The exact shape of a tensor.
    pub shape: Option<Vec<usize>>,
}

impl Constraints {
    /// No constraints.
    pub fn new() -> Constraints {
        Constraints::default()
    }

    /// Whether no constraint is set (so a value of the variable's own type
    /// needs no check: the write path's fast path).
    pub(crate) fn is_unconstrained(&self) -> bool {
        self.min.is_none()
            && self.max.is_none()
            && self.min_length.is_none()
            && self.max_length.is_none()
            && self.allowed_values.is_none()
            && self.choices.is_none()
            && self.allowed_modules.is_none()
            && self.dimensions.is_none()
            && self.shape.is_none()
    }
    /// Sets `min`.
    pub fn min(mut self, v: f64) -> Self {
        self.min = Some(v);
        self
    }
    /// Sets `max`.
    pub fn max(mut self, v: f64) -> Self {
        self.max = Some(v);
        self
    }
    /// Sets `min_length`.
    pub fn min_length(mut self, n: usize) -> Self {
        self.min_length = Some(n);
        self
    }
    /// Sets `max_length`.
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }
    /// Sets `allowed_values`.
    pub fn allowed_values<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Self {
        self.allowed_values = Some(v.into_iter().map(Into::into).collect());
        self
    }
    /// Sets `choices`.
    pub fn choices<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Self {
        self.choices = Some(v.into_iter().map(Into::into).collect());
        self
    }
    /// Sets `allowed_modules`.
    pub fn allowed_modules<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Self {
        self.allowed_modules = Some(v.into_iter().map(Into::into).collect());
        self
    }
    /// Sets `dimensions`.
    pub fn dimensions(mut self, n: usize) -> Self {
        self.dimensions = Some(n);
        self
    }
    /// Sets `shape`.
    pub fn shape(mut self, s: impl Into<Vec<usize>>) -> Self {
        self.shape = Some(s.into());
        self
    }

    /// Checks that these constraints fit `ty` and do not contradict each
    /// other. Returns the reason on failure.
    pub fn check_for(&self, ty: VarType) -> Result<(), String> {
        use VarType::*;
        let fields: [(&str, bool, &[VarType]); 9] = [
            ("min", self.min.is_some(), &[Float, Integer]),
            ("max", self.max.is_some(), &[Float, Integer]),
            ("min_length", self.min_length.is_some(), &[String]),
            ("max_length", self.max_length.is_some(), &[String]),
            ("allowed_values", self.allowed_values.is_some(), &[String]),
            ("choices", self.choices.is_some(), &[Choice]),
            ("allowed_modules", self.allowed_modules.is_some(), &[Module]),
            ("dimensions", self.dimensions.is_some(), &[Embedding]),
            ("shape", self.shape.is_some(), &[Tensor]),
        ];
        for (name, set, types) in fields {
            if set && !types.contains(&ty) {
                return Err(format!("`{name}` does not apply to a {ty} variable"));
            }
        }
        for (name, b) in [("min", self.min), ("max", self.max)] {
            if b.is_some_and(f64::is_nan) {
                return Err(format!("`{name}` must be a number, not NaN"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && lo > hi
        {
            return Err(format!("`min` {lo} is above `max` {hi}"));
        }
        if let (Some(lo), Some(hi)) = (self.min_length, self.max_length)
            && lo > hi
        {
            return Err(format!("`min_length` {lo} is above `max_length` {hi}"));
        }
        for (name, list) in [
            ("allowed_values", &self.allowed_values),
            ("choices", &self.choices),
            ("allowed_modules", &self.allowed_modules),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!("`{name}` must not be empty"));
            }
        }
        if ty == Choice && self.choices.is_none() {
            return Err("a choice variable needs `choices` (the values it may take)".to_string());
        }
        Ok(())
    }
}

/// Coerces `value` to `ty` and checks it against `constraints` (which must
/// already have passed [`Constraints::check_for`]). Returns the stored form of
/// the value, or the reason it is rejected, phrased as "`<value>` <rule>".
pub(crate) fn validate(ty: VarType, c: &Constraints, value: Value) -> Result<Value, String> {
    // A value of the variable's own type meets no constraint at all: it is
    // what `coerce` and every check below would return unchanged.
    if value.var_type() == ty && c.is_unconstrained() {
        return Ok(value);
    }
    let value = coerce(ty, value)?;
    match &value {
        Value::Float(x) => check_float_bounds(*x, c)?,
        Value::Integer(i) => check_int_bounds(*i, c)?,
        Value::String(s) => check_string(s, c, &value)?,
        Value::Choice(s) => check_list(s, &c.choices, "one of the choices", &value)?,
        Value::Module(s) => check_list(s, &c.allowed_modules, "one of the allowed modules", &value)?,
        Value::Embedding(v) => {
            if let Some(d) = c.dimensions
                && v.len() != d
            {
                return Err(format!(
                    "an embedding of {} dimensions does not have exactly {d} dimensions",
                    v.len()
                ));
            }
        }
        Value::Tensor(t) => {
            if let Some(shape) = &c.shape
                && t.shape() != shape.as_slice()
            {
                return Err(format!(
                    "a tensor of shape {} does not have the required shape {}",
                    shape_list(t.shape()),
                    shape_list(shape)
                ));
            }
        }
        Value::Boolean(_) => {}
    }
    Ok(value)
}

fn coerce(ty: VarType, value: Value) -> Result<Value, String> {
    let mismatch = |v: &Value| format!("expected {}, got {v} ({})", ty.with_article(), v.var_type());
    Ok(match (ty, value) {
        (VarType::Float, Value::Float(x)) => Value::Float(x),
        (VarType::Float, Value::Integer(i)) => Value::Float(i as f64),
        (VarType::Integer, Value::Integer(i)) => Value::Integer(i),
        (VarType::Integer, Value::Float(x)) => {
            // i64::MIN is -2^63 exactly; 2^63 itself is out of range.
            if x.is_finite()
                && x.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x)
            {
                Value::Integer(x as i64)
            } else if x.is_finite() && x.fract() == 0.0 {
                return Err(format!("{x} is outside the range of a 64-bit integer"));
            } else {
                return Err(format!(
                    "expected an integer, got {x}, which is not a whole number"
                ));
            }
        }
        (VarType::String, Value::String(s) | Value::Choice(s) | Value::Module(s)) => Value::String(s),
        (VarType::Choice, Value::String(s) | Value::Choice(s) | Value::Module(s)) => Value::Choice(s),
        (VarType::Module, Value::String(s) | Value::Choice(s) | Value::Module(s)) => Value::Module(s),
        (VarType::Boolean, Value::Boolean(b)) => Value::Boolean(b),
        (VarType::Embedding, Value::Embedding(v)) => Value::Embedding(v),
        (VarType::Tensor, Value::Tensor(t)) => Value::Tensor(t),
        (_, v) => return Err(mismatch(&v)),
    })
}

fn check_float_bounds(x: f64, c: &Constraints) -> Result<(), String> {
    if let Some(lo) = c.min {
        if x.is_nan() {
            return Err(format!("NaN cannot satisfy minimum {lo}"));
        }
        if x < lo {
            return Err(format!("{x} is below minimum {lo}"));
        }
    }
    if let Some(hi) = c.max {
        if x.is_nan() {
            return Err(format!("NaN cannot satisfy maximum {hi}"));
        }
        if x > hi {
            return Err(format!("{x} is above maximum {hi}"));
        }
    }
    Ok(())
}

/// Compares an integer with a (non-NaN) float bound exactly.
pub(crate) fn cmp_int_bound(v: i64, bound: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if bound >= TWO_63 {
        return Ordering::Less;
    }
    if bound < -TWO_63 {
        return Ordering::Greater;
    }
    let floor = bound.floor();
    // In range, so the conversion is exact.
    let fi = floor as i64;
    match v.cmp(&fi) {
        Ordering::Equal if bound > floor => Ordering::Less,
        o => o,
    }
}

fn check_int_bounds(i: i64, c: &Constraints) -> Result<(), String> {
    if let Some(lo) = c.min
        && cmp_int_bound(i, lo) == Ordering::Less
    {
        return Err(format!("{i} is below minimum {lo}"));
    }
    if let Some(hi) = c.max
        && cmp_int_bound(i, hi) == Ordering::Greater
    {
        return Err(format!("{i} is above maximum {hi}"));
    }
    Ok(())
}

fn check_string(s: &str, c: &Constraints, v: &Value) -> Result<(), String> {
    if c.min_length.is_some() || c.max_length.is_some() {
        let n = s.chars().count();
        if let Some(lo) = c.min_length
            && n < lo
        {
            return Err(format!(
                "{v} has {n} characters, fewer than the minimum length {lo}"
            ));
        }
        if let Some(hi) = c.max_length
            && n > hi
        {
            return Err(format!(
                "{v} has {n} characters, more than the maximum length {hi}"
            ));
        }
    }
    check_list(s, &c.allowed_values, "one of the allowed values", v)
}

fn check_list(s: &str, list: &Option<Vec<String>>, what: &str, v: &Value) -> Result<(), String> {
    match list {
        Some(items) if !items.iter().any(|x| x == s) => {
            let mut shown: Vec<String> = items
                .iter()
                .take(LIST_ITEMS)
                .map(|x| format!("\"{}\"", Quoted(x)))
                .collect();
            if items.len() > LIST_ITEMS {
                shown.push(format!("and {} more", items.len() - LIST_ITEMS));
            }
            Err(format!("{v} is not {what}: {}", shown.join(", ")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path (a value of the variable's own type, no constraint)
    /// returns exactly what the full checks return.
    #[test]
    fn the_unconstrained_fast_path_agrees_with_the_checks() {
        let none = Constraints::new();
        let values = [
            Value::Float(1.5),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Integer(i64::MIN),
            Value::from("text"),
            Value::Boolean(true),
            Value::choice("a"),
            Value::module("m"),
            Value::Embedding(vec![1.0f32, f32::NAN].into()),
            Value::Tensor(Tensor::new(vec![2], vec![1.0, 2.0]).unwrap()),
        ];
        for v in values {
            let ty = v.var_type();
            // A constraint that every value of `ty` meets, to force the
            // full path.
            let mut forcing = Constraints::new();
            match &v {
                Value::Embedding(e) => forcing.dimensions = Some(e.len()),
                Value::Tensor(t) => forcing.shape = Some(t.shape().to_vec()),
                Value::String(_) | Value::Choice(_) | Value::Module(_) => forcing.min_length = Some(0),
                _ => forcing.shape = Some(vec![]), // not looked at for this type
            }
            assert!(none.is_unconstrained() && !forcing.is_unconstrained());
            let same = match (validate(ty, &none, v.clone()), validate(ty, &forcing, v.clone())) {
                (Ok(a), Ok(b)) => a.is_identical(&b) && a.var_type() == b.var_type(),
                (a, b) => a == b,
            };
            assert!(same, "{v:?}");
        }
    }

    #[test]
    fn int_bound_comparison_is_exact() {
        assert_eq!(cmp_int_bound(5, 5.0), Ordering::Equal);
        assert_eq!(cmp_int_bound(5, 5.5), Ordering::Less);
        assert_eq!(cmp_int_bound(6, 5.5), Ordering::Greater);
        assert_eq!(cmp_int_bound(-6, -5.5), Ordering::Less);
        assert_eq!(cmp_int_bound(i64::MAX, 9.3e18), Ordering::Less);
        assert_eq!(cmp_int_bound(i64::MIN, -9.3e18), Ordering::Greater);
        assert_eq!(
            cmp_int_bound(i64::MIN, -9_223_372_036_854_775_808.0),
            Ordering::Equal
        );
        // i64::MAX rounds up to 2^63 as an f64; compared exactly it is below.
        assert_eq!(cmp_int_bound(i64::MAX, i64::MAX as f64), Ordering::Less);
        assert_eq!(cmp_int_bound(0, f64::INFINITY), Ordering::Less);
        assert_eq!(cmp_int_bound(0, f64::NEG_INFINITY), Ordering::Greater);
    }

    #[test]
    fn coercions() {
        let none = Constraints::new();
        assert_eq!(validate(VarType::Float, &none, 42.into()), Ok(Value::Float(42.0)));
        assert_eq!(
            validate(VarType::Integer, &none, 3.0.into()),
            Ok(Value::Integer(3))
        );
        assert!(
            validate(VarType::Integer, &none, 1.5.into())
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(validate(VarType::Integer, &none, f64::NAN.into()).is_err());
        assert!(
            validate(VarType::Integer, &none, 1e19.into())
                .unwrap_err()
                .contains("outside the range")
        );
        assert_eq!(
            validate(VarType::Choice, &none, "a".into()),
            Ok(Value::choice("a"))
        );
        let err = validate(VarType::Boolean, &none, 1.into()).unwrap_err();
        assert_eq!(err, "expected a boolean, got 1 (integer)");
        let err = validate(VarType::Integer, &none, "x".into()).unwrap_err();
        assert_eq!(err, "expected an integer, got \"x\" (string)");
    }
}

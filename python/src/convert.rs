//! Between Python's shapes (`varwatch/types.py`) and the library's types.
//! Values travel typed: see `types.py` for the table. Every conversion of
//! input refuses what does not fit with an `InvalidArgument` or a
//! `TypeError`, never a panic.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PySequence, PyString, PyTuple};
use varwatch::{
    BatchUpdate, Constraints, GetMany, SessionInfo, SessionOptions, UpdateOptions, Value, VarDef, VarType,
    Variable,
};

/// A class of `varwatch.types`, looked up once.
fn types_class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("varwatch.types")?.getattr(name)?.unbind())
    })
    .map(|c| c.bind(py))
}

macro_rules! class {
    ($fn:ident, $name:literal) => {
        pub(crate) fn $fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
            static CELL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            types_class(py, &CELL, $name)
        }
    };
}
class!(choice_class, "Choice");
class!(module_class, "Module");
class!(tensor_class, "Tensor");
class!(constraints_class, "Constraints");
class!(var_def_class, "VarDef");
class!(variable_class, "Variable");
class!(session_info_class, "SessionInfo");
class!(get_many_class, "GetMany");
class!(var_type_class, "VarType");
class!(batch_update_class, "BatchUpdate");

/// The names of the types, as `VarType`'s values.
const TYPE_NAMES: [(VarType, &str); 8] = [
    (VarType::Float, "float"),
    (VarType::Integer, "integer"),
    (VarType::String, "string"),
    (VarType::Boolean, "boolean"),
    (VarType::Choice, "choice"),
    (VarType::Module, "module"),
    (VarType::Embedding, "embedding"),
    (VarType::Tensor, "tensor"),
];

/// A variable type given as a `VarType` or its name.
pub(crate) fn var_type_from(obj: &Bound<'_, PyAny>) -> PyResult<VarType> {
    let name: String = match obj.getattr("value") {
        Ok(v) if obj.is_instance(var_type_class(obj.py())?)? => v.extract()?,
        _ => obj
            .extract()
            .map_err(|_| PyTypeError::new_err("a variable type is a VarType or its name"))?,
    };
    TYPE_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(t, _)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = TYPE_NAMES.iter().map(|(_, n)| *n).collect();
            PyValueError::new_err(format!("unknown variable type {name:?}; one of {names:?}"))
        })
}

/// `VarType` member of a type.
pub(crate) fn var_type_to(py: Python<'_>, t: VarType) -> PyResult<Bound<'_, PyAny>> {
    let name = TYPE_NAMES
        .iter()
        .find(|(x, _)| *x == t)
        .map_or("unknown", |(_, n)| n);
    var_type_class(py)?.call1((name,))
}

/// Whether `obj` is a numpy object (an array or a scalar).
fn numpy(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let module = obj.get_type().getattr("__module__")?;
    Ok(module.extract::<String>().is_ok_and(|m| m == "numpy"))
}

fn floats(seq: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    let seq = seq
        .cast::<PySequence>()
        .map_err(|_| PyTypeError::new_err("a sequence of floats"))?;
    let n = seq.len()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(seq.get_item(i)?.extract::<f64>()? as f32);
    }
    Ok(out)
}

fn invalid(e: varwatch::Error) -> PyErr {
    crate::errors::to_py(e)
}

/// A Python value as a typed value (see `types.py`). numpy scalars are the
/// scalars they hold (`np.float64(2.5)` is a float, `np.int64(3)` an
/// integer, `np.bool_(True)` a boolean); a 1-D array is an embedding, an
/// N-D one a tensor.
pub(crate) fn value_from(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Boolean(obj.extract()?));
    }
    if numpy(obj)? {
        let ndim: usize = obj.getattr("ndim")?.extract()?;
        if ndim == 0 {
            // A numpy scalar (or a 0-d array): the Python scalar it holds.
            return value_from(&obj.call_method0("item")?);
        }
        let shape: Vec<usize> = obj.getattr("shape")?.extract()?;
        let flat = obj.call_method1("reshape", (-1,))?.call_method0("tolist")?;
        let data = floats(&flat)?;
        return if ndim == 1 {
            Ok(Value::embedding(data))
        } else {
            Value::tensor(shape, data).map_err(invalid)
        };
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(Value::Integer)
            .map_err(|_| PyValueError::new_err(format!("the integer {obj} does not fit in 64 bits")));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract()?));
    }
    if obj.is_instance(choice_class(py)?)? {
        return Ok(Value::choice(obj.extract::<String>()?));
    }
    if obj.is_instance(module_class(py)?)? {
        return Ok(Value::module(obj.extract::<String>()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::from(obj.extract::<String>()?));
    }
    if obj.is_instance(tensor_class(py)?)? {
        let shape: Vec<usize> = obj.getattr("shape")?.extract()?;
        let data = floats(&obj.getattr("data")?)?;
        return Value::tensor(shape, data).map_err(invalid);
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return Ok(Value::embedding(floats(obj)?));
    }
    Err(PyTypeError::new_err(format!(
        "cannot send a {} as a varwatch value (float, int, str, bool, Choice, Module, a list of floats, Tensor or a numpy array)",
        obj.get_type().name()?
    )))
}

/// A value as Python's shape of it.
pub(crate) fn value_to<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Choice(s) => choice_class(py)?.call1((&**s,))?,
        Value::Module(s) => module_class(py)?.call1((&**s,))?,
        Value::Embedding(v) => PyTuple::new(py, v.iter().map(|&x| f64::from(x)))?.into_any(),
        Value::Tensor(t) => {
            let data = PyTuple::new(py, t.data().iter().map(|&x| f64::from(x)))?;
            tensor_class(py)?.call1((t.shape().to_vec(), data))?
        }
        _ => py.None().into_bound(py),
    })
}

fn opt<'py, T: FromPyObjectOwned<'py>>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Option<T>> {
    let v = obj.getattr(name)?;
    if v.is_none() {
        Ok(None)
    } else {
        v.extract().map(Some).map_err(Into::into)
    }
}

/// A `Constraints` (or `None`) as the library's.
pub(crate) fn constraints_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Constraints> {
    let mut c = Constraints::new();
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(c);
    };
    c.min = opt(obj, "min")?;
    c.max = opt(obj, "max")?;
    c.min_length = opt(obj, "min_length")?;
    c.max_length = opt(obj, "max_length")?;
    c.allowed_values = opt(obj, "allowed_values")?;
    c.choices = opt(obj, "choices")?;
    c.allowed_modules = opt(obj, "allowed_modules")?;
    c.dimensions = opt(obj, "dimensions")?;
    c.shape = opt(obj, "shape")?;
    Ok(c)
}

/// Constraints as a `Constraints`.
pub(crate) fn constraints_to<'py>(py: Python<'py>, c: &Constraints) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(py);
    kw.set_item("min", c.min)?;
    kw.set_item("max", c.max)?;
    kw.set_item("min_length", c.min_length)?;
    kw.set_item("max_length", c.max_length)?;
    kw.set_item("allowed_values", c.allowed_values.clone())?;
    kw.set_item("choices", c.choices.clone())?;
    kw.set_item("allowed_modules", c.allowed_modules.clone())?;
    kw.set_item("dimensions", c.dimensions)?;
    kw.set_item("shape", c.shape.clone())?;
    constraints_class(py)?.call((), Some(&kw))
}

/// A `Dict[str, str]` (or `None`).
pub(crate) fn metadata_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<BTreeMap<String, String>> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(BTreeMap::new()),
        Some(m) => {
            let d = m
                .cast::<PyDict>()
                .map_err(|_| PyTypeError::new_err("metadata is a dict of str to str"))?;
            let mut out = BTreeMap::new();
            for (k, v) in d.iter() {
                out.insert(k.str()?.to_string(), v.str()?.to_string());
            }
            Ok(out)
        }
    }
}

fn metadata_to<'py>(py: Python<'py>, m: &BTreeMap<String, String>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// A wall-clock time as an aware `datetime` (UTC); `None` for the epoch
/// (unknown).
pub(crate) fn time_to(py: Python<'_>, t: SystemTime) -> PyResult<Bound<'_, PyAny>> {
    static FROM: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();
    let Ok(d) = t.duration_since(SystemTime::UNIX_EPOCH) else {
        return Ok(py.None().into_bound(py));
    };
    if d.is_zero() {
        return Ok(py.None().into_bound(py));
    }
    let (from, utc) = FROM.get_or_try_init(py, || {
        let dt = py.import("datetime")?;
        Ok::<_, PyErr>((
            dt.getattr("datetime")?.getattr("fromtimestamp")?.unbind(),
            dt.getattr("timezone")?.getattr("utc")?.unbind(),
        ))
    })?;
    from.bind(py).call1((d.as_secs_f64(), utc.bind(py)))
}

fn timedelta(py: Python<'_>, d: Duration) -> PyResult<Bound<'_, PyAny>> {
    py.import("datetime")?
        .getattr("timedelta")?
        .call1((0, d.as_secs_f64()))
}

/// A `VarDef` (from `import_variables`) as the library's.
pub(crate) fn var_def_from(obj: &Bound<'_, PyAny>) -> PyResult<VarDef> {
    let name: String = obj.getattr("name")?.extract()?;
    let ty = var_type_from(&obj.getattr("type")?)?;
    let value = value_from(&obj.getattr("value")?)?;
    let mut def =
        VarDef::new(name, ty, value).constraints(constraints_from(Some(&obj.getattr("constraints")?))?);
    def.metadata = metadata_from(Some(&obj.getattr("metadata")?))?;
    Ok(def)
}

/// A definition as a `VarDef`.
pub(crate) fn var_def_to<'py>(py: Python<'py>, d: &VarDef) -> PyResult<Bound<'py, PyAny>> {
    var_def_class(py)?.call1((
        &d.name,
        var_type_to(py, d.var_type)?,
        value_to(py, &d.value)?,
        constraints_to(py, &d.constraints)?,
        metadata_to(py, &d.metadata)?,
    ))
}

/// A `BatchUpdate` or a `(variable, value[, expected_version])` tuple.
pub(crate) fn batch_update_from(obj: &Bound<'_, PyAny>) -> PyResult<BatchUpdate> {
    let py = obj.py();
    let (ident, value, expected): (String, Bound<'_, PyAny>, Option<u64>) =
        if obj.is_instance(batch_update_class(py)?)? {
            (
                obj.getattr("variable")?.extract()?,
                obj.getattr("value")?,
                opt(obj, "expected_version")?,
            )
        } else if let Ok(t) = obj.cast::<PyTuple>() {
            match t.len() {
                2 => (t.get_item(0)?.extract()?, t.get_item(1)?, None),
                3 => (
                    t.get_item(0)?.extract()?,
                    t.get_item(1)?,
                    t.get_item(2)?.extract()?,
                ),
                _ => {
                    return Err(PyTypeError::new_err(format!(
                        "a batch item is a BatchUpdate or a (variable, value) tuple, not {obj}"
                    )));
                }
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "a batch item is a BatchUpdate or a (variable, value) tuple, not {obj}"
            )));
        };
    let mut u = BatchUpdate::new(ident, value_from(&value)?);
    if let Some(v) = expected {
        u = u.expected_version(v);
    }
    Ok(u)
}

/// Update options from their keywords.
pub(crate) fn update_options(
    expected_version: Option<u64>,
    source: Option<String>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<UpdateOptions> {
    let mut o = UpdateOptions::new();
    o.expected_version = expected_version;
    o.source = source;
    o.metadata = metadata_from(metadata)?;
    Ok(o)
}

/// Session options from their keywords (`ttl` in seconds).
pub(crate) fn session_options(
    ttl: Option<f64>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<SessionOptions> {
    let mut o = SessionOptions::new();
    if let Some(t) = ttl {
        o.ttl = Some(
            Duration::try_from_secs_f64(t)
                .map_err(|_| PyValueError::new_err(format!("ttl {t} is not a duration in seconds")))?,
        );
    }
    o.metadata = metadata_from(metadata)?;
    Ok(o)
}

/// A variable as a `Variable`.
pub(crate) fn variable_to<'py>(py: Python<'py>, v: &Variable) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(py);
    kw.set_item("id", v.id())?;
    kw.set_item("name", v.name())?;
    kw.set_item("type", var_type_to(py, v.var_type())?)?;
    kw.set_item("value", value_to(py, v.value())?)?;
    kw.set_item("version", v.version())?;
    kw.set_item("revision", v.revision())?;
    kw.set_item("constraints", constraints_to(py, v.constraints())?)?;
    kw.set_item("metadata", metadata_to(py, v.metadata())?)?;
    kw.set_item("created_at", time_to(py, v.created_at())?)?;
    kw.set_item("updated_at", time_to(py, v.updated_at())?)?;
    kw.set_item("source", v.source())?;
    let change = v
        .change_metadata()
        .map(|m| metadata_to(py, m))
        .transpose()?
        .unwrap_or_else(|| PyDict::new(py));
    kw.set_item("change_metadata", change)?;
    variable_class(py)?.call((), Some(&kw))
}

/// A session's facts as a `SessionInfo`.
pub(crate) fn session_info_to<'py>(py: Python<'py>, s: &SessionInfo) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(py);
    kw.set_item("id", &s.id)?;
    kw.set_item("metadata", metadata_to(py, &s.metadata)?)?;
    kw.set_item("created_at", time_to(py, s.created_at)?)?;
    kw.set_item("last_accessed", time_to(py, s.last_accessed)?)?;
    kw.set_item("ttl", s.ttl.map(|t| timedelta(py, t)).transpose()?)?;
    kw.set_item("revision", s.revision)?;
    kw.set_item("variables", s.variables)?;
    kw.set_item("watchers", s.watchers)?;
    session_info_class(py)?.call((), Some(&kw))
}

/// A multi-get as a `GetMany`.
pub(crate) fn get_many_to<'py>(py: Python<'py>, g: &GetMany) -> PyResult<Bound<'py, PyAny>> {
    let found = PyDict::new(py);
    for (ident, v) in &g.found {
        found.set_item(ident, variable_to(py, v)?)?;
    }
    get_many_class(py)?.call1((found, g.missing.clone(), g.revision))
}

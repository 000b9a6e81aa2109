//! The Python binding (`rplacevit._core`): converts arguments, results and errors, and releases
//! the GIL around the work. No logic, no validation and no defaults of its own: the core checks
//! every argument, and `rplacevit/history.py` and `store.py` hold the defaults and the docs.
//! Split by subject: [`store`] (ingest, synth, info, verify) and [`reader`] (the History).

mod reader;
mod store;

use crate::error::Error;
use crate::palette;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIndexError, PyKeyboardInterrupt, PyMemoryError, PyOSError, PyPermissionError, PyRuntimeError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;
use std::sync::{Mutex, PoisonError};

create_exception!(
    _core,
    FormatError,
    PyValueError,
    "An input file is not in an official r/place CSV format (2017, 2022 or 2023); the message names the file and line."
);
create_exception!(_core, DatasetError, PyValueError, "A dataset folder is missing, incomplete, damaged, or in the way.");
create_exception!(
    _core,
    ArgumentError,
    PyValueError,
    "A bad argument from the caller (not from a file): what the command line reports as a usage error."
);

create_exception!(
    _core,
    OutputExistsError,
    ArgumentError,
    "An output path holds something the command may not write into or replace: a folder rplacevit did not write, \
     an output of another kind, or one of its kind without `force` (see rplacevit.outputs)."
);

/// The Python exception of a core error, with the same message.
fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
            _ => PyOSError::new_err(message),
        },
        Error::Row { .. } | Error::File { .. } => FormatError::new_err(message),
        Error::Sqlite { .. } | Error::Dataset { .. } => DatasetError::new_err(message),
        Error::Argument(_) => ArgumentError::new_err(message),
        Error::OutputExists { .. } => OutputExistsError::new_err(message),
        Error::Index(_) => PyIndexError::new_err(message),
        Error::OutOfMemory { .. } => PyMemoryError::new_err(message),
        Error::Internal(_) => PyRuntimeError::new_err(message),
        Error::Interrupted => PyKeyboardInterrupt::new_err(message),
    }
}

/// Python's signal handlers, run by long work from the calling thread: the first exception one
/// raises (KeyboardInterrupt for Ctrl-C, whatever a SIGTERM handler raises) stops the work and
/// is what the call raises.
#[derive(Default)]
struct Signals {
    raised: Mutex<Option<PyErr>>,
}

impl Signals {
    fn should_stop(&self) -> bool {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(error) => {
                self.raised.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(error);
                true
            }
        })
    }

    fn error(self, error: Error) -> PyErr {
        match error {
            Error::Interrupted => self
                .raised
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted")),
            other => to_py(other),
        }
    }
}

/// A 1-D int64 numpy array of event ids, copied out (cheap: 8 bytes an id) so the work can run
/// without the GIL; anything else is a TypeError or ValueError that says what was expected.
fn event_ids(ids: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Ok(array) = ids.cast::<PyArray1<i64>>() {
        let array = array.readonly();
        return Ok(match array.as_slice() {
            Ok(slice) => slice.to_vec(),
            Err(_) => array.as_array().to_vec(),
        });
    }
    match ids.cast::<PyUntypedArray>() {
        Ok(array) if array.ndim() != 1 => {
            Err(PyValueError::new_err(format!("`event_ids` must be a 1-D array, got shape {:?}", array.shape())))
        }
        Ok(array) => Err(PyTypeError::new_err(format!("`event_ids` must have dtype int64, got {}", array.dtype()))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "`event_ids` must be a numpy int64 array, got {}",
            ids.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
        ))),
    }
}

/// Moves a Rust buffer into a numpy array of `shape` (no copy).
fn to_array<'py, T: numpy::Element>(py: Python<'py>, data: Vec<T>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let array = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

/// The one shape of a batch read: takes the event ids, releases the GIL while `read` runs on
/// them, turns its error into Python's, and hands its buffer to numpy as a
/// `(len(ids), *per_event)` array.
fn batch<'py, T: numpy::Element + Send>(
    py: Python<'py>,
    event_ids: &Bound<'py, PyAny>,
    per_event: &[usize],
    read: impl FnOnce(&[i64]) -> crate::Result<Vec<T>> + Send,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let ids = self::event_ids(event_ids)?;
    let data = py.detach(|| read(&ids)).map_err(to_py)?;
    let shape: Vec<usize> = std::iter::once(ids.len()).chain(per_event.iter().copied()).collect();
    to_array(py, data, &shape)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    store::register(m)?;
    reader::register(m)?;
    let py = m.py();
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("DatasetError", py.get_type::<DatasetError>())?;
    m.add("ArgumentError", py.get_type::<ArgumentError>())?;
    m.add("OutputExistsError", py.get_type::<OutputExistsError>())?;
    m.add("PALETTE_RGB", palette::PALETTE_RGB.iter().map(|c| (c[0], c[1], c[2])).collect::<Vec<_>>())?;
    m.add("PALETTE_HEX", (0..palette::N_COLORS as u8).map(palette::hex_string).collect::<Vec<_>>())?;
    m.add("OUTSIDE", palette::OUTSIDE)?;
    m.add("WHITE", palette::WHITE)?;
    m.add("CANVAS_SIZE", crate::CANVAS_SIZE)?;
    // The one version number: the crate's, which pyproject.toml takes too (dynamic).
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    crate::stop::quiet_panics();
    Ok(())
}

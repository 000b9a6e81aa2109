//! The Python binding (`rplacevit._core`): converts arguments, results and errors, and releases
//! the GIL around the work. No logic of its own.

use crate::dataset::{self, DatasetInfo, SourceInfo};
use crate::error::Error;
use crate::history::{ColorTarget, History};
use crate::ingest::{IngestOptions, OnError};
use crate::palette;
use crate::stop::run_stoppable;
use crate::synth::{synthesize, SynthOptions};
use numpy::ndarray::{Array2, Array3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIndexError, PyKeyboardInterrupt, PyMemoryError, PyOSError, PyPermissionError, PyRuntimeError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

create_exception!(
    _core,
    FormatError,
    PyValueError,
    "An input file is not in the official r/place 2022 CSV format; the message names the file and line."
);
create_exception!(_core, DatasetError, PyValueError, "A dataset folder is missing, incomplete, damaged, or in the way.");
create_exception!(
    _core,
    ArgumentError,
    PyValueError,
    "A bad argument from the caller (not from a file): what the command line reports as a usage error."
);

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
    raised: std::sync::Mutex<Option<PyErr>>,
}

impl Signals {
    fn should_stop(&self) -> bool {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(error) => {
                self.raised.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(error);
                true
            }
        })
    }

    fn error(self, error: Error) -> PyErr {
        match error {
            Error::Interrupted => self
                .raised
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted")),
            other => to_py(other),
        }
    }
}

fn info_dict<'py>(py: Python<'py>, info: &DatasetInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("events", info.events)?;
    dict.set_item("users", info.users)?;
    dict.set_item("partitions", info.partitions)?;
    dict.set_item("partition_size", info.partition_size)?;
    dict.set_item("first_timestamp_ms", info.first_timestamp_ms)?;
    dict.set_item("last_timestamp_ms", info.last_timestamp_ms)?;
    dict.set_item("canvas_width", info.canvas_width)?;
    dict.set_item("canvas_height", info.canvas_height)?;
    dict.set_item("moderation_events", info.moderation_events)?;
    dict.set_item("rows", info.rows)?;
    dict.set_item("rejected_rows", info.rejected_rows)?;
    Ok(dict)
}

fn source_dict<'py>(py: Python<'py>, source: &SourceInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("path", &source.path)?;
    dict.set_item("size", source.size)?;
    dict.set_item("rows", source.rows)?;
    dict.set_item("rejected_rows", source.rejected_rows)?;
    Ok(dict)
}

#[pyfunction]
#[pyo3(signature = (inputs, out, partition_size, on_error, force, progress, max_rectangle_pixels))]
#[allow(clippy::too_many_arguments)]
fn ingest<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    partition_size: u64,
    on_error: &str,
    force: bool,
    progress: bool,
    max_rectangle_pixels: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let on_error = match on_error {
        "fail" => OnError::Fail,
        "skip" => OnError::Skip,
        other => return Err(PyValueError::new_err(format!("on_error must be \"fail\" or \"skip\", not {other:?}"))),
    };
    let options = IngestOptions { partition_size, on_error, force, progress, max_rectangle_pixels };
    let signals = Signals::default();
    let summary = py.detach(|| crate::ingest::ingest(&inputs, &out, &options, &|| signals.should_stop())).map_err(|e| signals.error(e))?;
    let dict = info_dict(py, &summary.info)?;
    dict.set_item("path", &out)?;
    let sources = summary.sources.iter().map(|s| source_dict(py, s)).collect::<PyResult<Vec<_>>>()?;
    dict.set_item("sources", sources)?;
    let phases = PyDict::new(py);
    for (name, seconds) in &summary.phase_seconds {
        phases.set_item(*name, *seconds)?;
    }
    dict.set_item("phase_seconds", phases)?;
    Ok(dict)
}

#[pyfunction]
#[pyo3(signature = (out, rows, seed = 0, progress = false))]
fn synth<'py>(py: Python<'py>, out: PathBuf, rows: u64, seed: u64, progress: bool) -> PyResult<Bound<'py, PyDict>> {
    let bar = crate::progress::bar(progress, rows, "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows {rate} ETA {eta}");
    bar.set_prefix("synth");
    let options = SynthOptions { rows, seed };
    let signals = Signals::default();
    let summary = py
        .detach(|| synthesize(&options, &out, &|| signals.should_stop(), &|written| bar.set_position(written)))
        .map_err(|e| signals.error(e))?;
    bar.finish_and_clear();
    let dict = PyDict::new(py);
    dict.set_item("path", &out)?;
    dict.set_item("rows", summary.rows)?;
    dict.set_item("events", summary.events)?;
    dict.set_item("users", summary.users)?;
    dict.set_item("moderation_rows", summary.moderation_rows)?;
    dict.set_item("first_timestamp_ms", summary.first_timestamp_ms)?;
    dict.set_item("last_timestamp_ms", summary.last_timestamp_ms)?;
    Ok(dict)
}

#[pyfunction]
fn dataset_info<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let info = py.detach(|| dataset::read_info(&path)).map_err(to_py)?;
    info_dict(py, &info)
}

/// Every problem of the dataset as `"FILE: reason"`; empty when it is intact.
#[pyfunction]
#[pyo3(signature = (path, progress))]
fn verify(py: Python<'_>, path: PathBuf, progress: bool) -> PyResult<Vec<String>> {
    let signals = Signals::default();
    let problems = py
        .detach(|| run_stoppable(&|| signals.should_stop(), |stop| crate::verify::verify(&path, progress, stop)))
        .map_err(|e| signals.error(e))?;
    Ok(problems.iter().map(|p| p.to_string()).collect())
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
            Err(PyValueError::new_err(format!("event_ids must be a 1-D array, got shape {:?}", array.shape())))
        }
        Ok(array) => Err(PyTypeError::new_err(format!("event_ids must have dtype int64, got {}", array.dtype()))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "event_ids must be a numpy int64 array, got {}",
            ids.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
        ))),
    }
}

fn positive(name: &str, value: i64) -> PyResult<usize> {
    if value < 1 {
        return Err(PyValueError::new_err(format!("{name} must be at least 1, not {value}")));
    }
    Ok(value as usize)
}

/// The reader of one dataset folder; see `rplacevit.History` for the documented Python face.
#[pyclass(name = "History", module = "rplacevit._core", frozen)]
struct PyHistory {
    inner: History,
}

#[pymethods]
impl PyHistory {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| History::open(&path)).map_err(to_py)?;
        Ok(PyHistory { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn width(&self) -> usize {
        self.inner.width()
    }

    #[getter]
    fn height(&self) -> usize {
        self.inner.height()
    }

    #[getter]
    fn time_range(&self) -> (i64, i64) {
        self.inner.time_range()
    }

    #[getter]
    fn generation(&self) -> &str {
        self.inner.generation()
    }

    /// The event columns as read-only numpy views of the reader's own memory maps (no copy),
    /// each keeping this reader alive; their values are checked once, on the first call.
    fn columns<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let inner = &slf.get().inner;
        py.detach(|| inner.check_columns()).map_err(to_py)?;
        let dict = PyDict::new(py);
        let container = slf.clone().into_any();
        dict.set_item("timestamp", view(inner.timestamps(), &container)?)?;
        dict.set_item("user_id", view(inner.user_ids(), &container)?)?;
        dict.set_item("color", view(inner.colors(), &container)?)?;
        dict.set_item("x", view(inner.xs(), &container)?)?;
        dict.set_item("y", view(inner.ys(), &container)?)?;
        Ok(dict)
    }

    fn canvas_at<'py>(&self, py: Python<'py>, t_ms: i64) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let canvas = py.detach(|| self.inner.canvas_at(t_ms)).map_err(to_py)?;
        to_array2(py, canvas, self.inner.height(), self.inner.width())
    }

    fn canvas_before<'py>(&self, py: Python<'py>, event_id: i64) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let canvas = py.detach(|| self.inner.canvas_before(event_id)).map_err(to_py)?;
        to_array2(py, canvas, self.inner.height(), self.inner.width())
    }

    #[pyo3(signature = (event_ids, size = 64))]
    fn windows<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let ids = self::event_ids(event_ids)?;
        let size = positive("size", size)?;
        let windows = py.detach(|| self.inner.windows(&ids, size)).map_err(to_py)?;
        to_array3(py, windows, (ids.len(), size, size))
    }

    #[pyo3(signature = (event_ids, mode = "placed", horizon_ms = 60_000))]
    fn color_targets<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        mode: &str,
        horizon_ms: i64,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = self::event_ids(event_ids)?;
        let mode = match mode {
            "placed" => ColorTarget::Placed,
            "next_minute_majority" => ColorTarget::NextMinuteMajority,
            other => return Err(PyValueError::new_err(format!("mode must be \"placed\" or \"next_minute_majority\", not {other:?}"))),
        };
        positive("horizon_ms", horizon_ms)?;
        let targets = py.detach(|| self.inner.color_targets(&ids, mode, horizon_ms)).map_err(to_py)?;
        Ok(targets.into_pyarray(py))
    }

    #[pyo3(signature = (event_ids, size = 16, horizon_ms = 3_600_000))]
    fn time_targets<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        size: i64,
        horizon_ms: i64,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let ids = self::event_ids(event_ids)?;
        let size = positive("size", size)?;
        positive("horizon_ms", horizon_ms)?;
        let targets = py.detach(|| self.inner.time_targets(&ids, size, horizon_ms)).map_err(to_py)?;
        to_array3(py, targets, (ids.len(), size, size))
    }

    #[pyo3(signature = (event_ids, size = 64, duration_ms = 600_000))]
    fn recent_colors<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        size: i64,
        duration_ms: i64,
    ) -> PyResult<Bound<'py, PyArray3<i64>>> {
        let ids = self::event_ids(event_ids)?;
        let size = positive("size", size)?;
        positive("duration_ms", duration_ms)?;
        let recent = py.detach(|| self.inner.recent_colors(&ids, size, duration_ms)).map_err(to_py)?;
        to_array3(py, recent, (ids.len(), 2, palette::N_COLORS))
    }

    #[pyo3(signature = (event_ids, size = 16))]
    fn last_change_times<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArray3<i64>>> {
        let ids = self::event_ids(event_ids)?;
        let size = positive("size", size)?;
        let times = py.detach(|| self.inner.last_change_times(&ids, size)).map_err(to_py)?;
        to_array3(py, times, (ids.len(), size, size))
    }

    #[pyo3(signature = (x0 = None, y0 = None, x1 = None, y1 = None, t0 = None, t1 = None))]
    #[allow(clippy::too_many_arguments)]
    fn select<'py>(
        &self,
        py: Python<'py>,
        x0: Option<i64>,
        y0: Option<i64>,
        x1: Option<i64>,
        y1: Option<i64>,
        t0: Option<i64>,
        t1: Option<i64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        Ok(py.detach(|| self.inner.select(x0, y0, x1, y1, t0, t1)).map_err(to_py)?.into_pyarray(py))
    }
}

/// A read-only numpy array over `data`, memory that `container` owns and keeps alive.
fn view<'py, T: numpy::Element>(data: &[T], container: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<T>>> {
    let array = numpy::ndarray::ArrayView1::from(data);
    // SAFETY: `data` lives in a memory map of the History that `container` is; the array holds
    // a reference to it, so the map outlives the array; the array is made read-only below.
    let array = unsafe { PyArray1::borrow_from_array(&array, container.clone()) };
    array.getattr("flags")?.setattr("writeable", false)?;
    Ok(array)
}

/// Moves a Rust buffer into a numpy array of the given shape (no copy).
fn to_array2<T: numpy::Element>(py: Python<'_>, data: Vec<T>, rows: usize, columns: usize) -> PyResult<Bound<'_, PyArray2<T>>> {
    let array = Array2::from_shape_vec((rows, columns), data).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

fn to_array3<T: numpy::Element>(py: Python<'_>, data: Vec<T>, shape: (usize, usize, usize)) -> PyResult<Bound<'_, PyArray3<T>>> {
    let array = Array3::from_shape_vec(shape, data).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ingest, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_info, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    crate::stop::quiet_panics();
    m.add_class::<PyHistory>()?;
    m.add("FormatError", m.py().get_type::<FormatError>())?;
    m.add("DatasetError", m.py().get_type::<DatasetError>())?;
    m.add("ArgumentError", m.py().get_type::<ArgumentError>())?;
    m.add("PALETTE_RGB", palette::PALETTE_RGB.iter().map(|c| (c[0], c[1], c[2])).collect::<Vec<_>>())?;
    m.add("PALETTE_HEX", (0..palette::N_COLORS as u8).map(palette::hex_string).collect::<Vec<_>>())?;
    m.add("OUTSIDE", palette::OUTSIDE)?;
    m.add("WHITE", palette::WHITE)?;
    m.add("CANVAS_SIZE", crate::CANVAS_SIZE)?;
    m.add("MIN_PARTITION_SIZE", crate::ingest::MIN_PARTITION_SIZE)?;
    m.add("MAX_RECTANGLE_PIXELS", crate::ingest::MAX_RECTANGLE_PIXELS)?;
    Ok(())
}

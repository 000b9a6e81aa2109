//! The Python binding (`rplacevit._core`): converts arguments, results and errors, and releases
//! the GIL around the work. No logic of its own.

use crate::dataset::{self, DatasetInfo, SourceInfo};
use crate::error::Error;
use crate::ingest::{IngestOptions, OnError};
use crate::palette;
use crate::synth::{synthesize, SynthOptions};
use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyIndexError, PyKeyboardInterrupt, PyOSError, PyPermissionError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

create_exception!(_core, FormatError, PyValueError, "An input file is not in the official r/place 2022 CSV format; the message names the file and line.");
create_exception!(_core, DatasetError, PyValueError, "A dataset folder is missing, incomplete, damaged, or in the way.");

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
        Error::Argument(_) => PyValueError::new_err(message),
        Error::Index(_) => PyIndexError::new_err(message),
        Error::Internal(_) => PyRuntimeError::new_err(message),
        Error::Interrupted => PyKeyboardInterrupt::new_err(message),
    }
}

/// Asked by long work from the calling thread: runs Python's signal handlers (Ctrl-C).
fn python_wants_stop() -> bool {
    Python::attach(|py| py.check_signals().is_err())
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
#[pyo3(signature = (inputs, out, partition_size = 1_000_000, on_error = "fail", force = false, progress = false))]
fn ingest<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    partition_size: u64,
    on_error: &str,
    force: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let on_error = match on_error {
        "fail" => OnError::Fail,
        "skip" => OnError::Skip,
        other => return Err(PyValueError::new_err(format!("on_error must be \"fail\" or \"skip\", not {other:?}"))),
    };
    let options = IngestOptions { partition_size, on_error, force, progress };
    let summary = py.detach(|| crate::ingest::ingest(&inputs, &out, &options, &python_wants_stop)).map_err(to_py)?;
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
    let bar = crate::progress::bar(progress, rows, "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows {per_sec} ETA {eta}");
    bar.set_prefix("synth");
    let options = SynthOptions { rows, seed };
    let summary = py
        .detach(|| synthesize(&options, &out, &python_wants_stop, &|written| bar.set_position(written)))
        .map_err(to_py)?;
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

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ingest, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_info, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add("FormatError", m.py().get_type::<FormatError>())?;
    m.add("DatasetError", m.py().get_type::<DatasetError>())?;
    m.add("PALETTE_RGB", palette::PALETTE_RGB.iter().map(|c| (c[0], c[1], c[2])).collect::<Vec<_>>())?;
    m.add("PALETTE_HEX", (0..palette::N_COLORS as u8).map(palette::hex_string).collect::<Vec<_>>())?;
    m.add("OUTSIDE", palette::OUTSIDE)?;
    m.add("WHITE", palette::WHITE)?;
    m.add("CANVAS_SIZE", crate::CANVAS_SIZE)?;
    Ok(())
}

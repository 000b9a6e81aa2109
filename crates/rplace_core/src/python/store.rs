//! Building and checking dataset folders, and writing synthetic histories.

use super::{to_py, Signals};
use crate::dataset::{self, DatasetInfo, SourceInfo};
use crate::ingest::{IngestOptions, OnError, MAX_RECTANGLE_PIXELS, MIN_PARTITION_SIZE, PARTITION_SIZE};
use crate::stop::run_stoppable;
use crate::synth::{synthesize, SynthOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ingest, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_info, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(check_output, m)?)?;
    m.add_function(wrap_pyfunction!(mark_output, m)?)?;
    m.add("OUTPUT_MARKER", crate::output_folder::MARKER_FILE)?;
    m.add("OUTPUT_KINDS", crate::output_folder::kinds())?;
    m.add("PARTITION_SIZE", PARTITION_SIZE)?;
    m.add("MIN_PARTITION_SIZE", MIN_PARTITION_SIZE)?;
    m.add("MAX_RECTANGLE_PIXELS", MAX_RECTANGLE_PIXELS)?;
    m.add("ON_ERROR", OnError::NAMES.map(|(name, _)| name).to_vec())?;
    m.add("KNOWN_HEADERS", crate::csv_rows::KNOWN_HEADERS.to_vec())?;
    m.add("YEARS", crate::csv_rows::Format::ALL.map(|format| format.year()).to_vec())?;
    m.add("PROGRESS_LINE_INTERVAL_S", crate::progress::LINE_INTERVAL.as_secs_f64())?;
    Ok(())
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
    dict.set_item("year", info.year)?;
    dict.set_item("canvas_origin", (info.origin_x, info.origin_y))?;
    dict.set_item("moderation_events", info.moderation_events)?;
    dict.set_item("duplicates_dropped", info.duplicates_dropped)?;
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
    year: Option<u16>,
    dedupe: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let on_error = on_error.parse::<OnError>().map_err(to_py)?;
    let options = IngestOptions { partition_size, on_error, force, progress, max_rectangle_pixels, year, dedupe };
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
fn synth<'py>(py: Python<'py>, out: PathBuf, rows: u64, seed: u64, progress: bool, year: u16) -> PyResult<Bound<'py, PyDict>> {
    let bar = crate::progress::bar(progress, rows, "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows {rate} ETA {eta}");
    bar.set_prefix("synth");
    let options = SynthOptions { rows, seed, year };
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
fn dataset_info<'py>(py: Python<'py>, dataset: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let manifest = py.detach(|| dataset::read_manifest(&dataset)).map_err(to_py)?;
    let dict = info_dict(py, &manifest.info)?;
    dict.set_item("generation", manifest.generation)?;
    Ok(dict)
}

/// Every problem of the dataset as `"FILE: reason"`; empty when it is intact.
#[pyfunction]
fn verify(py: Python<'_>, dataset: PathBuf, progress: bool) -> PyResult<Vec<String>> {
    let signals = Signals::default();
    let problems = py
        .detach(|| run_stoppable(&|| signals.should_stop(), |stop| crate::verify::verify(&dataset, progress, stop)))
        .map_err(|e| signals.error(e))?;
    Ok(problems.iter().map(|p| p.to_string()).collect())
}

/// The output folder rule (`crate::output_folder::check`): False when nothing is at `path` (or
/// an empty folder), True when an output of `kind` is there and `allowed`; else OutputExistsError.
#[pyfunction]
fn check_output(path: PathBuf, kind: &str, allowed: bool, flag: &str) -> PyResult<bool> {
    crate::output_folder::check(&path, kind, allowed, flag).map_err(to_py)
}

/// Writes the marker of `kind` into the folder `folder`.
#[pyfunction]
fn mark_output(folder: PathBuf, kind: &str) -> PyResult<()> {
    crate::output_folder::mark(&folder, kind).map_err(to_py)
}

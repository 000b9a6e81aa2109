//! The reader of one dataset: every batch method is one call of [`super::batch`].

use super::{batch, to_array, to_py};
use crate::history::{grid_size, ColorTarget, History};
use crate::palette::N_COLORS;
use numpy::{IntoPyArray, PyArray1, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHistory>()?;
    m.add_function(wrap_pyfunction!(age_buckets_of, m)?)?;
    m.add("COLOR_TARGETS", ColorTarget::NAMES.map(|(name, _)| name).to_vec())?;
    m.add("OVERWRITTEN_WITHIN_MS", crate::users::OVERWRITTEN_WITHIN_MS)?;
    m.add("AGE_BUCKETS", crate::history::ages::AGE_BUCKETS)?;
    Ok(())
}

/// The reader of one dataset folder; see `rplacevit.History` for the documented Python face.
#[pyclass(name = "History", module = "rplacevit._core", frozen)]
struct PyHistory {
    inner: History,
}

#[pymethods]
impl PyHistory {
    #[new]
    fn new(py: Python<'_>, dataset: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| History::open(&dataset)).map_err(to_py)?;
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
    fn year(&self) -> u16 {
        self.inner.info().year
    }

    #[getter]
    fn palette(&self) -> Vec<String> {
        self.inner.format().palette().iter().map(|&value| crate::palette::hex_of(value)).collect()
    }

    #[getter]
    fn white(&self) -> u8 {
        self.inner.format().white()
    }

    #[getter]
    fn canvas_origin(&self) -> (i32, i32) {
        (self.inner.info().origin_x, self.inner.info().origin_y)
    }

    fn canvas_bounds_at(&self, t_ms: i64) -> (usize, usize, usize, usize) {
        let (xs, ys) = self.inner.canvas_bounds_at(t_ms);
        (xs.start, ys.start, xs.end, ys.end)
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

    fn canvas_at<'py>(&self, py: Python<'py>, t_ms: i64) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let canvas = py.detach(|| self.inner.canvas_at(t_ms)).map_err(to_py)?;
        to_array(py, canvas, &[self.inner.height(), self.inner.width()])
    }

    /// `region`: `(x0, y0, x1, y1)`, x1 and y1 exclusive, as every region read takes it.
    fn region_at<'py>(&self, py: Python<'py>, t_ms: i64, region: Region) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let (x0, y0, x1, y1) = region;
        let colors = py.detach(|| self.inner.region_at(t_ms, x0..x1, y0..y1)).map_err(to_py)?;
        to_array(py, colors, &region_shape(region))
    }

    fn canvas_before<'py>(&self, py: Python<'py>, event_id: i64) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let canvas = py.detach(|| self.inner.canvas_before(event_id)).map_err(to_py)?;
        to_array(py, canvas, &[self.inner.height(), self.inner.width()])
    }

    fn windows<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[size, size], |ids| self.inner.windows(ids, size))
    }

    fn color_targets<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        mode: &str,
        horizon_ms: i64,
    ) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
        let mode = mode.parse::<ColorTarget>().map_err(to_py)?;
        batch(py, event_ids, &[], |ids| self.inner.color_targets(ids, mode, horizon_ms))
    }

    fn age_buckets<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[size, size], |ids| self.inner.age_buckets(ids, size))
    }

    fn placement_times_at<'py>(&self, py: Python<'py>, t_ms: i64, region: Region) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
        let (x0, y0, x1, y1) = region;
        let times = py.detach(|| self.inner.placement_times_at(t_ms, x0..x1, y0..y1)).map_err(to_py)?;
        to_array(py, times, &region_shape(region))
    }

    fn event_counts<'py>(&self, py: Python<'py>, t0: i64, t1: i64, region: Region) -> PyResult<Bound<'py, PyArrayDyn<u32>>> {
        let (x0, y0, x1, y1) = region;
        let counts = py.detach(|| self.inner.event_counts(t0, t1, x0..x1, y0..y1)).map_err(to_py)?;
        to_array(py, counts, &region_shape(region))
    }

    fn last_placers<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[size, size], |ids| self.inner.last_placers(ids, size))
    }

    fn previous_colors<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[size, size], |ids| self.inner.previous_colors(ids, size))
    }

    fn previous_colors_at<'py>(&self, py: Python<'py>, t_ms: i64, region: Region) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let (x0, y0, x1, y1) = region;
        let colors = py.detach(|| self.inner.previous_colors_at(t_ms, x0..x1, y0..y1)).map_err(to_py)?;
        to_array(py, colors, &region_shape(region))
    }

    fn time_targets<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        size: i64,
        horizon_ms: i64,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[size, size], |ids| self.inner.time_targets(ids, size, horizon_ms))
    }

    fn recent_colors<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        size: i64,
        duration_ms: i64,
    ) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[2, N_COLORS], |ids| self.inner.recent_colors(ids, size, duration_ms))
    }

    fn last_change_times<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>, size: i64) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
        let size = grid_size(size).map_err(to_py)?;
        batch(py, event_ids, &[size, size], |ids| self.inner.last_change_times(ids, size))
    }

    #[getter]
    fn users(&self) -> usize {
        self.inner.users()
    }

    fn user_of_hash(&self, py: Python<'_>, hash: &str) -> PyResult<Option<i64>> {
        py.detach(|| self.inner.user_of_hash(hash)).map_err(to_py)
    }

    fn hash_of_user(&self, py: Python<'_>, user: i64) -> PyResult<Option<String>> {
        py.detach(|| self.inner.hash_of_user(user)).map_err(to_py)
    }

    fn user_events<'py>(&self, py: Python<'py>, user: i64) -> PyResult<Bound<'py, PyArray1<i64>>> {
        Ok(py.detach(|| self.inner.user_events(user)).map_err(to_py)?.into_pyarray(py))
    }

    fn next_placement_times<'py>(&self, py: Python<'py>, event_ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
        batch(py, event_ids, &[], |ids| self.inner.next_placement_times(ids))
    }

    /// `(colors (B, k) uint8, ages (B, k) int64, counts (B,) int64)`.
    #[allow(clippy::type_complexity)]
    fn placer_history<'py>(
        &self,
        py: Python<'py>,
        event_ids: &Bound<'py, PyAny>,
        k: i64,
    ) -> PyResult<(Bound<'py, PyArrayDyn<u8>>, Bound<'py, PyArrayDyn<i64>>, Bound<'py, PyArrayDyn<i64>>)> {
        let ids = super::event_ids(event_ids)?;
        let k = usize::try_from(k).map_err(|_| to_py(crate::Error::Argument(format!("`k` must be at least 1, not {k}"))))?;
        let found = py.detach(|| self.inner.placer_history(&ids, k)).map_err(to_py)?;
        Ok((
            to_array(py, found.colors, &[ids.len(), k])?,
            to_array(py, found.ages_ms, &[ids.len(), k])?,
            to_array(py, found.counts, &[ids.len()])?,
        ))
    }

    /// The columns of `rplace_core::users::UserFeatures` by name.
    fn user_features<'py>(&self, py: Python<'py>, until_ms: Option<i64>) -> PyResult<Bound<'py, PyDict>> {
        let f = py.detach(|| crate::users::features(&self.inner, until_ms)).map_err(to_py)?;
        let users = self.inner.users();
        let dict = PyDict::new(py);
        dict.set_item("count", f.count.into_pyarray(py))?;
        dict.set_item("first_ms", f.first_ms.into_pyarray(py))?;
        dict.set_item("last_ms", f.last_ms.into_pyarray(py))?;
        dict.set_item("mean_x", f.mean_x.into_pyarray(py))?;
        dict.set_item("std_x", f.std_x.into_pyarray(py))?;
        dict.set_item("mean_y", f.mean_y.into_pyarray(py))?;
        dict.set_item("std_y", f.std_y.into_pyarray(py))?;
        dict.set_item("mean_ms", f.mean_ms.into_pyarray(py))?;
        dict.set_item("colors", to_array(py, f.colors, &[users, N_COLORS])?)?;
        dict.set_item("distinct_pixels", f.distinct_pixels.into_pyarray(py))?;
        dict.set_item("changed_share", f.changed_share.into_pyarray(py))?;
        dict.set_item("median_gap_ms", f.median_gap_ms.into_pyarray(py))?;
        dict.set_item("gap_spread", f.gap_spread.into_pyarray(py))?;
        dict.set_item("overwritten_share", f.overwritten_share.into_pyarray(py))?;
        dict.set_item("events", f.events)?;
        Ok(dict)
    }

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

/// The age bucket of each age in milliseconds (`rplace_core::history::ages::age_bucket`); a
/// negative age (none) is the bucket of "never placed on". Any shape.
#[pyfunction]
fn age_buckets_of<'py>(py: Python<'py>, ages_ms: numpy::PyReadonlyArrayDyn<'py, i64>) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    use crate::history::ages::{age_bucket, AGE_NEVER};
    let shape = ages_ms.as_array().shape().to_vec();
    let ages: Vec<i64> = ages_ms.as_array().iter().copied().collect();
    let buckets = py.detach(|| ages.iter().map(|&a| if a < 0 { AGE_NEVER } else { age_bucket(a) }).collect());
    to_array(py, buckets, &shape)
}

/// A read-only numpy array over `data`, memory that `container` owns and keeps alive.
/// A rectangle of the canvas as Python gives it: `(x0, y0, x1, y1)`, x1 and y1 exclusive.
type Region = (usize, usize, usize, usize);

/// The `(rows, columns)` of a region's array (the core refuses a region that is not one).
fn region_shape((x0, y0, x1, y1): Region) -> [usize; 2] {
    [y1.saturating_sub(y0), x1.saturating_sub(x0)]
}

fn view<'py, T: numpy::Element>(data: &[T], container: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<T>>> {
    let array = numpy::ndarray::ArrayView1::from(data);
    // SAFETY: `data` lives in a memory map of the History that `container` is; the array holds
    // a reference to it, so the map outlives the array; the array is made read-only below.
    let array = unsafe { PyArray1::borrow_from_array(&array, container.clone()) };
    array.getattr("flags")?.setattr("writeable", false)?;
    Ok(array)
}

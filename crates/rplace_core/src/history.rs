//! Exact reads of the canvas history: the canvas at any moment, windows around events, training
//! targets and region queries, all from the memory-mapped files of [`crate::index`] and the
//! partition snapshots of [`crate::dataset`].
//!
//! Opening maps the files and checks their headers and lengths; nothing is rebuilt, and
//! processes that open the same dataset share its pages. Batch calls run on the rayon pool and
//! each result depends only on its id, so the output is the same for any number of threads.

use crate::csv_rows::{Expansion, Format};
use crate::dataset::{self, DatasetInfo, Folder};
use crate::error::{Context, Error, Result};
use crate::index::{
    age_tile_grid, cell_color, cell_pixel, tile_grid, AGE_CHANGE_RESTS_FILE, AGE_CHANGE_TICKS_FILE, AGE_CHECKPOINT_EVENT_IDS_FILE,
    AGE_CHECKPOINT_EVERY, AGE_CHECKPOINT_OFFSETS_FILE, AGE_TILE, AGE_TILE_EVENT_IDS_FILE, AGE_TILE_EVENT_PIXELS_FILE,
    AGE_TILE_EVENT_TIMES_FILE, AGE_TILE_OFFSETS_FILE, CHECKPOINT_EVENT_IDS_FILE, CHECKPOINT_EVERY, CHECKPOINT_OFFSETS_FILE, COLOR_FILE,
    TILE, TILE_CHECKPOINTS_FILE, TILE_EVENT_CELLS_FILE, TILE_EVENT_IDS_FILE, TILE_EVENT_TIMES_FILE, TILE_OFFSETS_FILE, TIMESTAMP_FILE,
    USER_ID_FILE, USER_LAST_FILE, USER_PREVIOUS_FILE, USER_RANK_FILE, X_FILE, Y_FILE,
};
use crate::npy::Array;
use crate::palette::{N_COLORS, OUTSIDE};
use crate::pool::in_pool;
use rayon::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// What a batch of `color_targets` returns for each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorTarget {
    /// The color the event placed.
    Placed,
    /// The most frequent color placed at the event's pixel by later events within the horizon
    /// (ties to the color placed last), else the color the event placed.
    NextMinuteMajority,
}

impl ColorTarget {
    /// Every target, by the name the API and the command line give it.
    pub const NAMES: [(&'static str, ColorTarget); 2] =
        [("placed", ColorTarget::Placed), ("next_minute_majority", ColorTarget::NextMinuteMajority)];
}

impl std::str::FromStr for ColorTarget {
    type Err = Error;

    fn from_str(name: &str) -> Result<ColorTarget> {
        Self::NAMES.iter().find(|(known, _)| *known == name).map(|&(_, target)| target).ok_or_else(|| {
            let names: Vec<String> = Self::NAMES.iter().map(|(known, _)| format!("{known:?}")).collect();
            Error::Argument(format!("`mode` must be one of {}, not {name:?}", names.join(", ")))
        })
    }
}

/// The side of a window or grid, given as any integer: [`Error::Argument`] unless at least 1 and
/// small enough for its square to be counted.
pub fn grid_size(size: i64) -> Result<usize> {
    usize::try_from(size).ok().filter(|&size| grid_cells(size).is_ok()).ok_or_else(|| grid_size_error(size))
}

fn grid_size_error(size: impl std::fmt::Display) -> Error {
    Error::Argument(format!("`size` (of a window or grid) must be at least 1 pixel and fit in memory, not {size}"))
}

/// Where a tile meets a rectangle of the canvas.
struct TilePart {
    /// `ty * tiles_x + tx`.
    tile: usize,
    /// Canvas pixel of the tile's top-left corner.
    x0: usize,
    y0: usize,
    /// The rectangle's pixels inside the tile (canvas pixels).
    xs: Range<usize>,
    ys: Range<usize>,
}

impl TilePart {
    /// Which of the tile's 256 pixels (`(y % 16) * 16 + x % 16`) lie in the rectangle, and how many.
    fn mask(&self) -> ([bool; TILE * TILE], usize) {
        let mut wanted = [false; TILE * TILE];
        for y in self.ys.clone() {
            let row = (y - self.y0) * TILE;
            wanted[row + self.xs.start - self.x0..row + self.xs.end - self.x0].fill(true);
        }
        (wanted, self.xs.len() * self.ys.len())
    }
}

/// The reader of one dataset's history. Cheap to share between threads.
pub struct History {
    /// The dataset folder, for errors.
    path: PathBuf,
    /// `meta.sqlite`, for user lookups: opened with the other files, so that it is this
    /// dataset's even after an ingest replaced (and removed) the folder. A connection serves
    /// one thread at a time.
    meta: Mutex<rusqlite::Connection>,
    generation: String,
    info: DatasetInfo,
    /// The year's format: its palette, canvas and growth.
    format: Format,
    /// How the year's canvas grew (see [`History::canvas_bounds_at`]).
    expansions: &'static [Expansion],
    /// The palette index of a fresh canvas's color (the year's white).
    white: u8,
    width: usize,
    height: usize,
    tiles_x: usize,
    partition_size: usize,
    timestamps: Array<i64>,
    user_ids: Array<u32>,
    colors: Array<u8>,
    xs: Array<u16>,
    ys: Array<u16>,
    snapshots: Array<u8>,
    tile_offsets: Array<u64>,
    tile_event_ids: Array<u32>,
    tile_event_cells: Array<u16>,
    checkpoint_offsets: Array<u64>,
    checkpoint_event_ids: Array<u32>,
    tile_checkpoints: Array<u8>,
    /// The ages index (see [`crate::index`]): its tiles across, then its files.
    age_tiles_x: usize,
    age_tile_offsets: Array<u64>,
    age_tile_event_ids: Array<u32>,
    age_tile_event_times: Array<u32>,
    age_tile_event_pixels: Array<u16>,
    age_checkpoint_offsets: Array<u64>,
    age_checkpoint_event_ids: Array<u32>,
    age_change_ticks: Array<u16>,
    age_change_rests: Array<u16>,
    tile_event_times: Array<u32>,
    user_previous: Array<u32>,
    user_rank: Array<u32>,
    user_last: Array<u32>,
    /// The outcome of checking the event columns' values, done once, when first asked for.
    columns_checked: OnceLock<Option<(String, String)>>,
    /// Whether each snapshot holds palette colors only, checked when first read.
    snapshots_checked: Vec<OnceLock<bool>>,
}

impl History {
    /// Opens the dataset folder `dataset`: maps its files and checks their types, shapes and
    /// lengths, and the sizes of every file against the manifest; [`Error::Dataset`] names the
    /// first file that is missing or inconsistent. Every file comes from one dataset, even while
    /// an ingest replaces the folder (see [`dataset::with_folder`]).
    pub fn open(dataset: &Path) -> Result<History> {
        dataset::with_folder(dataset, |folder| History::open_folder(folder.reopen()?))
    }

    /// Opens the dataset of an open folder (see [`History::open`]).
    pub fn open_folder(owned: Folder) -> Result<History> {
        let folder = &owned;
        let manifest = folder.manifest()?;
        let dataset = folder.path();
        for entry in &manifest.files {
            let path = dataset.join(&entry.path);
            let bytes = match folder.file(&entry.path).and_then(|file| file.metadata()) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Dataset { path, reason: "missing: ingest the dataset again".into() })
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    return Err(Error::Dataset { path, reason: format!("{e}: ingest the dataset again") })
                }
                Err(e) => return Err(e).at(&path),
            };
            if bytes != entry.bytes {
                return Err(Error::Dataset {
                    path,
                    reason: format!(
                        "is {bytes} bytes long, the manifest says {}: changed since the ingest; ingest the dataset again",
                        entry.bytes
                    ),
                });
            }
        }
        let info = manifest.info;
        let damaged =
            |file: &str, reason: &str| Error::Dataset { path: dataset.join(file), reason: format!("{reason}: ingest the dataset again") };
        let n = info.events as usize;
        let (width, height) = (info.canvas_width as usize, info.canvas_height as usize);
        let partition_size = info.partition_size as usize;
        if partition_size == 0 || width == 0 || height == 0 || u32::try_from(n).is_err() || width > 1 << 16 || height > 1 << 16 {
            return Err(damaged(dataset::MANIFEST_FILE, "impossible partition size, canvas size or event count"));
        }
        let format = Format::of_year(info.year).map_err(|why| damaged(dataset::MANIFEST_FILE, &why))?;
        let (tiles_x, tiles_y) = tile_grid(width, height);
        let tiles = tiles_x * tiles_y;

        let (tile_offsets, checkpoint_offsets) =
            open_tiling(folder, n, tiles, CHECKPOINT_EVERY, [TILE_OFFSETS_FILE, CHECKPOINT_OFFSETS_FILE])?;
        let checkpoint_count = checkpoint_offsets.as_slice()[tiles] as usize;
        let (age_tiles_x, age_tiles_y) = age_tile_grid(width, height);
        let age_tiles = age_tiles_x * age_tiles_y;
        let (age_tile_offsets, age_checkpoint_offsets) =
            open_tiling(folder, n, age_tiles, AGE_CHECKPOINT_EVERY, [AGE_TILE_OFFSETS_FILE, AGE_CHECKPOINT_OFFSETS_FILE])?;
        let age_checkpoint_count = age_checkpoint_offsets.as_slice()[age_tiles] as usize;
        Ok(History {
            path: dataset.to_path_buf(),
            generation: manifest.generation,
            timestamps: Array::open(folder, TIMESTAMP_FILE, &[n])?,
            user_ids: Array::open(folder, USER_ID_FILE, &[n])?,
            colors: Array::open(folder, COLOR_FILE, &[n])?,
            xs: Array::open(folder, X_FILE, &[n])?,
            ys: Array::open(folder, Y_FILE, &[n])?,
            snapshots: Array::open(folder, dataset::SNAPSHOTS_FILE, &[n.div_ceil(partition_size) + 1, height, width])?,
            tile_event_ids: Array::open(folder, TILE_EVENT_IDS_FILE, &[n])?,
            tile_event_cells: Array::open(folder, TILE_EVENT_CELLS_FILE, &[n])?,
            tile_checkpoints: Array::open(folder, TILE_CHECKPOINTS_FILE, &[checkpoint_count, TILE * TILE])?,
            checkpoint_event_ids: Array::open(folder, CHECKPOINT_EVENT_IDS_FILE, &[checkpoint_count])?,
            age_tiles_x,
            age_tile_offsets,
            age_tile_event_ids: Array::open(folder, AGE_TILE_EVENT_IDS_FILE, &[n])?,
            age_tile_event_times: Array::open(folder, AGE_TILE_EVENT_TIMES_FILE, &[n])?,
            age_tile_event_pixels: Array::open(folder, AGE_TILE_EVENT_PIXELS_FILE, &[n])?,
            age_checkpoint_offsets,
            age_checkpoint_event_ids: Array::open(folder, AGE_CHECKPOINT_EVENT_IDS_FILE, &[age_checkpoint_count])?,
            age_change_ticks: Array::open(folder, AGE_CHANGE_TICKS_FILE, &[age_checkpoint_count, AGE_TILE * AGE_TILE])?,
            age_change_rests: Array::open(folder, AGE_CHANGE_RESTS_FILE, &[age_checkpoint_count, AGE_TILE * AGE_TILE])?,
            tile_event_times: Array::open(folder, TILE_EVENT_TIMES_FILE, &[n])?,
            user_previous: Array::open(folder, USER_PREVIOUS_FILE, &[n])?,
            user_rank: Array::open(folder, USER_RANK_FILE, &[n])?,
            user_last: Array::open(folder, USER_LAST_FILE, &[info.users as usize])?,
            tile_offsets,
            checkpoint_offsets,
            info,
            format,
            expansions: format.expansions(),
            white: format.white(),
            width,
            height,
            tiles_x,
            partition_size,
            columns_checked: OnceLock::new(),
            snapshots_checked: (0..n.div_ceil(partition_size) + 1).map(|_| OnceLock::new()).collect(),
            meta: Mutex::new(open_meta(folder)?),
        })
    }

    /// The id of the ingest that wrote the dataset (see [`dataset::Manifest::generation`]).
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// The summary of the dataset, as its manifest holds it.
    /// The format of the year the dataset holds.
    pub fn format(&self) -> Format {
        self.format
    }

    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// Number of events, `N`; ids run `0 .. N` in time order.
    pub fn len(&self) -> usize {
        self.timestamps.len
    }

    /// No events at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Canvas width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Canvas height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Timestamps of the first and the last event (milliseconds since the Unix epoch).
    pub fn time_range(&self) -> (i64, i64) {
        (self.info.first_timestamp_ms, self.info.last_timestamp_ms)
    }

    /// Milliseconds since the Unix epoch, `(N,)`, by event id.
    pub fn timestamps(&self) -> &[i64] {
        self.timestamps.as_slice()
    }

    /// User ids (numbered by first event), `(N,)`.
    pub fn user_ids(&self) -> &[u32] {
        self.user_ids.as_slice()
    }

    /// Palette indices, `(N,)`.
    pub fn colors(&self) -> &[u8] {
        self.colors.as_slice()
    }

    /// Pixel columns, `(N,)`.
    pub fn xs(&self) -> &[u16] {
        self.xs.as_slice()
    }

    /// Pixel rows, `(N,)`.
    pub fn ys(&self) -> &[u16] {
        self.ys.as_slice()
    }

    /// The canvas after every event with timestamp ≤ `t_ms` (milliseconds since the Unix
    /// epoch): `(height, width)` palette indices, row-major, white before the first event.
    pub fn canvas_at(&self, t_ms: i64) -> Result<Vec<u8>> {
        self.canvas_after(self.timestamps().partition_point(|&t| t <= t_ms))
    }

    /// The canvas after events `0 .. event_id` (`event_id` may be `len()`: the final canvas):
    /// `(height, width)` palette indices, row-major.
    pub fn canvas_before(&self, event_id: i64) -> Result<Vec<u8>> {
        match usize::try_from(event_id) {
            Ok(id) if id <= self.len() => self.canvas_after(id),
            _ => Err(Error::Index(format!(
                "event id {event_id} is out of range for a history of {n} events (a canvas before takes 0..={n})",
                n = self.len()
            ))),
        }
    }

    /// The canvas after the first `count` events: the nearest snapshot at or before it, then the
    /// rest of the events from the columns (at most one partition).
    fn canvas_after(&self, count: usize) -> Result<Vec<u8>> {
        let row = if count == self.len() { self.len().div_ceil(self.partition_size) } else { count / self.partition_size };
        let area = self.width * self.height;
        let snapshot = &self.snapshots.as_slice()[row * area..(row + 1) * area];
        // Each snapshot's colors are checked once, the replayed events' every time.
        let checked = *self.snapshots_checked[row].get_or_init(|| largest(snapshot) < N_COLORS as u8);
        let mut canvas = snapshot.to_vec();
        let first = (row * self.partition_size).min(count);
        let (xs, ys, colors) = (&self.xs()[first..count], &self.ys()[first..count], &self.colors()[first..count]);
        for ((&x, &y), &color) in xs.iter().zip(ys).zip(colors) {
            // `get_mut`: a damaged column must not panic.
            if let Some(pixel) = canvas.get_mut(y as usize * self.width + x as usize) {
                *pixel = color;
            }
        }
        let largest = if checked { largest(colors) } else { u8::MAX };
        self.check_largest(largest as i64, N_COLORS as u8 - 1)?;
        Ok(canvas)
    }

    /// The rectangle `xs`×`ys` (pixels) of the canvas after every event with timestamp ≤ `t_ms`:
    /// `(ys.len(), xs.len())` palette indices, row-major. Rebuilt from the tiles under it (each a
    /// checkpoint and at most 63 events), so its cost follows the rectangle, not the canvas or
    /// the partition: the viewer's reads. The rectangle must lie on the canvas.
    pub fn region_at(&self, t_ms: i64, xs: Range<usize>, ys: Range<usize>) -> Result<Vec<u8>> {
        self.check_region(&xs, &ys)?;
        let count = self.timestamps().partition_point(|&t| t <= t_ms);
        let width = xs.len();
        let mut region = crate::error::filled(width * ys.len(), 0u8, "the canvas region")?;
        if region.is_empty() {
            return Ok(region);
        }
        // One band of output rows per row of tiles, each rebuilt whole into its own scratch.
        let x0 = xs.start / TILE * TILE;
        let stride = xs.end.next_multiple_of(TILE) - x0;
        let first_rows = (ys.start / TILE * TILE + TILE).min(ys.end) - ys.start;
        let (head, tail) = region.split_at_mut(first_rows * width);
        let mut bands: Vec<&mut [u8]> = vec![head];
        bands.extend(tail.chunks_mut(TILE * width));
        self.guarded(|| {
            bands.into_par_iter().enumerate().for_each_init(Vec::new, |scratch, (band, out)| {
                let band_y0 = (ys.start / TILE + band) * TILE;
                let rows = ys.start.max(band_y0)..ys.end.min(band_y0 + TILE);
                scratch.resize(TILE * stride, 0);
                for part in self.tiles_in(xs.clone(), rows.clone()) {
                    let done = self.checkpoints_before(part.tile, count);
                    self.tile_into(part.tile, done, count, &mut scratch[part.x0 - x0..], stride);
                }
                for (y, row) in rows.zip(out.chunks_exact_mut(width)) {
                    let from = (y - band_y0) * stride + xs.start - x0;
                    row.copy_from_slice(&scratch[from..from + width]);
                }
            })
        })?;
        self.check_largest(largest(&region) as i64, N_COLORS as u8 - 1)?;
        Ok(region)
    }

    /// [`Error::Argument`] unless the rectangle `xs`×`ys` lies on the canvas.
    fn check_region(&self, xs: &Range<usize>, ys: &Range<usize>) -> Result<()> {
        if xs.start > xs.end || ys.start > ys.end || xs.end > self.width || ys.end > self.height {
            return Err(Error::Argument(format!(
                "the region x {}..{}, y {}..{} does not lie on the {}x{} canvas",
                xs.start, xs.end, ys.start, ys.end, self.width, self.height
            )));
        }
        Ok(())
    }

    /// How many events each pixel of the rectangle `xs`×`ys` had with `t0 ≤ timestamp < t1`
    /// (milliseconds): `(ys.len(), xs.len())`, row-major. Counted tile by tile in the tile files,
    /// so nothing grows with the number of events but the time: the viewer's heat.
    pub fn event_counts(&self, t0: i64, t1: i64, xs: Range<usize>, ys: Range<usize>) -> Result<Vec<u32>> {
        self.check_region(&xs, &ys)?;
        let timestamps = self.timestamps();
        let first = timestamps.partition_point(|&t| t < t0);
        let end = timestamps.partition_point(|&t| t < t1).max(first);
        let cells = self.tile_event_cells.as_slice();
        self.per_tile_in(xs, ys, 0, "the event counts", |part| {
            let mut counts = [0u32; TILE * TILE];
            for &cell in &cells[self.first_position_from(part.tile, first)..self.first_position_from(part.tile, end)] {
                counts[cell_pixel(cell)] += 1;
            }
            counts
        })
    }

    /// The rectangle `xs`×`ys` (on the canvas) of values computed per tile: `per_tile(part)` gives
    /// the tile's 256 values (`(y % 16) * 16 + x % 16`), the tiles in parallel; `(ys.len(),
    /// xs.len())`, row-major, `empty` nowhere (every pixel lies in a tile).
    fn per_tile_in<T: Copy + Send + Sync>(
        &self,
        xs: Range<usize>,
        ys: Range<usize>,
        empty: T,
        what: &str,
        per_tile: impl Fn(&TilePart) -> [T; TILE * TILE] + Sync + Send,
    ) -> Result<Vec<T>> {
        let parts: Vec<TilePart> = self.tiles_in(xs.clone(), ys.clone()).collect();
        let values: Vec<[T; TILE * TILE]> = self.guarded(|| parts.par_iter().map(&per_tile).collect())?;
        let width = xs.len();
        let mut out = crate::error::filled(width * ys.len(), empty, what)?;
        for (part, values) in parts.iter().zip(&values) {
            for y in part.ys.clone() {
                let row = &values[(y - part.y0) * TILE..][..TILE];
                let from = (y - ys.start) * width;
                out[from + part.xs.start - xs.start..from + part.xs.end - xs.start]
                    .copy_from_slice(&row[part.xs.start - part.x0..part.xs.end - part.x0]);
            }
        }
        Ok(out)
    }

    /// For each event, the `size`×`size` window of the canvas strictly before it, centred on
    /// its pixel: `window[r, c] = canvas[y - size/2 + r, x - size/2 + c]`, [`OUTSIDE`] where
    /// that falls outside the canvas open at its time ([`History::canvas_bounds_at`]; `size / 2`
    /// rounds down for odd sizes). `(B, size, size)`
    /// palette indices, row-major; any `size` ≥ 1.
    pub fn windows(&self, ids: &[i64], size: usize) -> Result<Vec<u8>> {
        let windows = self.per_event(ids, grid_cells(size)?, |scratch, id, window| self.window_into(id, size, window, scratch))?;
        self.check_largest(largest(&windows) as i64, OUTSIDE)?;
        Ok(windows)
    }

    /// Rebuilds the whole tiles under the window into a scratch region, where every tile row is
    /// one fixed-size copy, then crops the window out of it.
    fn window_into(&self, id: usize, size: usize, window: &mut [u8], scratch: &mut WindowScratch) {
        let under = self.under(id, size);
        let Under { xs, ys, x0, y0, stride, .. } = under.clone();
        let WindowScratch { region, checkpoints } = scratch;
        region.resize(under.cells(), 0);
        // First find every tile's checkpoint and start loading what the tile needs, so that the
        // cache misses of all tiles overlap instead of coming one after the other.
        checkpoints.clear();
        for part in self.tiles_in(xs.clone(), ys.clone()) {
            let done = self.checkpoints_before(part.tile, id);
            let (state, block) = self.tile_sources(part.tile, done);
            prefetch(state);
            prefetch(&self.tile_event_ids.as_slice()[block.clone()]);
            prefetch(&self.tile_event_cells.as_slice()[block]);
            checkpoints.push(done);
        }
        for (part, &done) in self.tiles_in(xs.clone(), ys.clone()).zip(checkpoints.iter()) {
            self.tile_into(part.tile, done, id, &mut region[(part.y0 - y0) * stride + part.x0 - x0..], stride);
        }
        under.crop(region, window, OUTSIDE);
    }

    /// Where the `size`×`size` window of event `id` lies: see [`Under`].
    pub(crate) fn under(&self, id: usize, size: usize) -> Under {
        self.under_tiles(id, size, TILE)
    }

    /// [`History::under`] for tiles of `tile`×`tile` pixels.
    pub(crate) fn under_tiles(&self, id: usize, size: usize, tile: usize) -> Under {
        let (left, top) = self.corner(id, size);
        let (xs, ys) = self.window_span(id, left, top, size);
        let (x0, y0) = (xs.start / tile * tile, ys.start / tile * tile);
        Under { size, left, top, stride: xs.end.next_multiple_of(tile) - x0, rows: ys.end.next_multiple_of(tile) - y0, xs, ys, x0, y0 }
    }

    /// The columns and rows of the canvas open for placing at time `t_ms`: the year's canvas
    /// grew during the event ([`Format::expansions`]). Cells outside them are [`OUTSIDE`] in the
    /// windows of events at that time, like cells off the canvas.
    pub fn canvas_bounds_at(&self, t_ms: i64) -> (Range<usize>, Range<usize>) {
        let open = self.expansions.iter().rev().find(|e| t_ms >= e.from_ms).unwrap_or(&self.expansions[0]);
        let along = |low: u16, high: u16, limit: usize| (low as usize).min(limit)..(high as usize).min(limit);
        (along(open.x0, open.x1, self.width), along(open.y0, open.y1, self.height))
    }

    /// The columns and rows of the `size`×`size` window with corner (`left`, `top`) of event
    /// `id` that lie on the canvas open at its time.
    fn window_span(&self, id: usize, left: i64, top: i64, size: usize) -> (Range<usize>, Range<usize>) {
        let (open_x, open_y) = self.canvas_bounds_at(self.timestamps()[id]);
        (clip(left, size, open_x), clip(top, size, open_y))
    }

    /// One color per event, `(B,)` palette indices; `horizon_ms` (milliseconds, > 0) bounds
    /// the look-ahead of [`ColorTarget::NextMinuteMajority`].
    pub fn color_targets(&self, ids: &[i64], mode: ColorTarget, horizon_ms: i64) -> Result<Vec<i64>> {
        check_duration("horizon_ms", horizon_ms)?;
        match mode {
            // A lookup per event: cheaper than handing the batch to the thread pool.
            ColorTarget::Placed => {
                self.check_ids(ids)?;
                let targets: Vec<i64> = ids.iter().map(|&id| self.colors()[id as usize] as i64).collect();
                self.check_largest(targets.iter().copied().max().unwrap_or(0), N_COLORS as u8 - 1)?;
                Ok(targets)
            }
            ColorTarget::NextMinuteMajority => {
                let targets = self.per_event(ids, 1, |_: &mut (), id, target| target[0] = self.majority_color(id, horizon_ms) as i64)?;
                self.check_largest(targets.iter().copied().max().unwrap_or(0), N_COLORS as u8 - 1)?;
                Ok(targets)
            }
        }
    }

    /// The most frequent color among events after `id` at its pixel with timestamps in
    /// `(t, t + horizon_ms]`, ties to the one placed last; the event's own color if none.
    fn majority_color(&self, id: usize, horizon_ms: i64) -> u8 {
        let timestamps = self.timestamps();
        let t = timestamps[id];
        // Later events with the same timestamp are not "after" it in time.
        let first = first_after(timestamps, id + 1, t);
        let end = first_after(timestamps, first, t.saturating_add(horizon_ms));
        let (x, y) = (self.xs()[id] as usize, self.ys()[id] as usize);
        let pixel = y % TILE * TILE + x % TILE;
        let tile = y / TILE * self.tiles_x + x / TILE;
        let end_of_tile = self.tile_span(tile).end;
        let (ids, cells) = (self.tile_event_ids.as_slice(), self.tile_event_cells.as_slice());
        let from = self.first_position_from(tile, first);
        let mut counts = [0u32; 256];
        let mut latest = [0usize; 256];
        for (position, (&e, &cell)) in (from..).zip(ids[from..end_of_tile].iter().zip(&cells[from..end_of_tile])) {
            if e as usize >= end {
                break;
            }
            if cell_pixel(cell) == pixel {
                let color = cell_color(cell) as usize;
                counts[color] += 1;
                latest[color] = position;
            }
        }
        (0..256).filter(|&c| counts[c] > 0).max_by_key(|&c| (counts[c], latest[c])).map_or(self.colors()[id], |c| c as u8)
    }

    /// For each event, on the `size`×`size` grid laid out like [`History::windows`], the time
    /// until the first later event at that pixel divided by `horizon_ms`, capped at 1.0; 1.0
    /// where none comes within the horizon (milliseconds, > 0) or the pixel is outside the
    /// canvas. `(B, size, size)` f32.
    pub fn time_targets(&self, ids: &[i64], size: usize, horizon_ms: i64) -> Result<Vec<f32>> {
        check_duration("horizon_ms", horizon_ms)?;
        self.per_event(ids, grid_cells(size)?, |_: &mut (), id, grid| self.time_grid_into(id, size, horizon_ms, grid))
    }

    fn time_grid_into(&self, id: usize, size: usize, horizon_ms: i64, grid: &mut [f32]) {
        grid.fill(1.0);
        let timestamps = self.timestamps();
        let t = timestamps[id];
        // Every event the scans below may see comes before `end`, so its timestamp is in bounds.
        let end = first_after(timestamps, id + 1, t.saturating_add(horizon_ms));
        if end == id + 1 {
            return;
        }
        let (ids, cells) = (self.tile_event_ids.as_slice(), self.tile_event_cells.as_slice());
        let later = |tile: usize| {
            let positions = self.first_position_from(tile, id + 1)..self.tile_span(tile).end;
            ids[positions.clone()].iter().zip(&cells[positions]).take_while(move |(&e, _)| (e as usize) < end)
        };
        self.nth_per_cell(id, size, 1, later, |at, e, _| {
            grid[at] = ((timestamps[e] - t) as f64 / horizon_ms as f64).min(1.0) as f32;
        });
    }

    /// For each event, the colors placed in its `size`×`size` window (laid out like
    /// [`History::windows`]) by the events before it whose timestamps are at least its own minus
    /// `duration_ms` (> 0): `(B, 2, 32)`, row 0 the count of each color, row 1 the id of the
    /// latest such event of each color (−1 for none). What the `recent` baseline of the
    /// evaluation ranks.
    pub fn recent_colors(&self, ids: &[i64], size: usize, duration_ms: i64) -> Result<Vec<i64>> {
        check_duration("duration_ms", duration_ms)?;
        grid_cells(size)?;
        self.per_event(ids, 2 * N_COLORS, |_: &mut (), id, out| self.recent_into(id, size, duration_ms, out))
    }

    fn recent_into(&self, id: usize, size: usize, duration_ms: i64, out: &mut [i64]) {
        let (counts, latest) = out.split_at_mut(N_COLORS);
        latest.fill(-1);
        let timestamps = self.timestamps();
        let since = timestamps[id].saturating_sub(duration_ms);
        let first = timestamps[..id].partition_point(|&t| t < since);
        let (left, top) = self.corner(id, size);
        let (ids, cells) = (self.tile_event_ids.as_slice(), self.tile_event_cells.as_slice());
        let (xs, ys) = self.window_span(id, left, top, size);
        for part in self.tiles_in(xs, ys) {
            let positions = self.first_position_from(part.tile, first)..self.first_position_from(part.tile, id);
            for (&e, &cell) in ids[positions.clone()].iter().zip(&cells[positions]) {
                let (pixel, color) = (cell_pixel(cell), cell_color(cell) as usize);
                let inside = part.xs.contains(&(part.x0 + pixel % TILE)) && part.ys.contains(&(part.y0 + pixel / TILE));
                if inside && color < N_COLORS {
                    counts[color] += 1;
                    latest[color] = latest[color].max(e as i64);
                }
            }
        }
    }

    /// For each event, on the `size`×`size` grid laid out like [`History::windows`], the
    /// timestamp of the last event before it at each pixel; `i64::MIN` where there is none or
    /// the pixel is off the canvas. `(B, size, size)` milliseconds. What the `recency` baseline
    /// of the evaluation scores.
    pub fn last_change_times(&self, ids: &[i64], size: usize) -> Result<Vec<i64>> {
        self.per_event(ids, grid_cells(size)?, |_: &mut (), id, grid| self.last_changes_into(id, size, grid))
    }

    /// Walks each tile's events backwards from the event until every wanted pixel is found.
    fn last_changes_into(&self, id: usize, size: usize, grid: &mut [i64]) {
        grid.fill(i64::MIN);
        let timestamps = self.timestamps();
        self.nth_per_cell(id, size, 1, |tile| self.earlier_in_tile(tile, id), |at, e, _| grid[at] = timestamps[e]);
    }

    /// Tile `tile`'s events before event `id` (ids below it), the latest first: (id, cell).
    pub(crate) fn earlier_in_tile(&self, tile: usize, id: usize) -> impl Iterator<Item = (&u32, &u16)> + '_ {
        let positions = self.tile_span(tile).start..self.first_position_from(tile, id);
        self.tile_event_ids.as_slice()[positions.clone()].iter().zip(&self.tile_event_cells.as_slice()[positions]).rev()
    }

    /// For each pixel of the `size`×`size` grid centred on event `id` (laid out like
    /// [`History::windows`]), the `nth` event (1 = the first) at that pixel among those
    /// `scan(tile)` yields for its tile: `found(cell, event id, tile cell)`, at most once per
    /// pixel, with `cell` the row-major grid index. A tile's scan stops as soon as every one of
    /// its pixels in the grid is found.
    fn nth_per_cell<'a, I>(&self, id: usize, size: usize, nth: u8, scan: impl Fn(usize) -> I, mut found: impl FnMut(usize, usize, u16))
    where
        I: Iterator<Item = (&'a u32, &'a u16)>,
    {
        let (left, top) = self.corner(id, size);
        let (xs, ys) = self.window_span(id, left, top, size);
        for part in self.tiles_in(xs, ys) {
            let (wanted, mut remaining) = part.mask();
            // Hits still to come before each pixel's `nth`; 0 for the pixels not wanted.
            let mut left_to_see = wanted.map(|w| if w { nth } else { 0 });
            for (&e, &cell) in scan(part.tile) {
                if remaining == 0 {
                    break;
                }
                let pixel = cell_pixel(cell);
                if left_to_see[pixel] > 0 {
                    left_to_see[pixel] -= 1;
                    if left_to_see[pixel] == 0 {
                        remaining -= 1;
                        let (x, y) = (part.x0 + pixel % TILE, part.y0 + pixel / TILE);
                        found((y as i64 - top) as usize * size + (x as i64 - left) as usize, e as usize, cell);
                    }
                }
            }
        }
    }

    /// Ids of the events with `x0 ≤ x < x1`, `y0 ≤ y < y1` (pixels) and `t0 ≤ timestamp < t1`
    /// (milliseconds), ascending; `None` leaves a side open.
    pub fn select(
        &self,
        x0: Option<i64>,
        y0: Option<i64>,
        x1: Option<i64>,
        y1: Option<i64>,
        t0: Option<i64>,
        t1: Option<i64>,
    ) -> Result<Vec<i64>> {
        let timestamps = self.timestamps();
        let first = t0.map_or(0, |t0| timestamps.partition_point(|&t| t < t0));
        let end = t1.map_or(self.len(), |t1| timestamps.partition_point(|&t| t < t1)).max(first);
        if [x0, y0, x1, y1].iter().all(Option::is_none) {
            return Ok((first as i64..end as i64).collect());
        }
        let bounds = |low: Option<i64>, high: Option<i64>, limit: usize| {
            let low = low.unwrap_or(0).clamp(0, limit as i64) as usize;
            low..(high.unwrap_or(limit as i64).clamp(0, limit as i64) as usize).max(low)
        };
        let parts: Vec<TilePart> = self.tiles_in(bounds(x0, x1, self.width), bounds(y0, y1, self.height)).collect();
        let (ids, cells) = (self.tile_event_ids.as_slice(), self.tile_event_cells.as_slice());
        let select = || -> Vec<i64> {
            let mut selected: Vec<i64> = parts
                .par_iter()
                .flat_map_iter(|part| {
                    let range = self.first_position_from(part.tile, first)..self.first_position_from(part.tile, end);
                    ids[range.clone()].iter().zip(&cells[range]).filter_map(move |(&e, &cell)| {
                        let pixel = cell_pixel(cell);
                        let inside = part.xs.contains(&(part.x0 + pixel % TILE)) && part.ys.contains(&(part.y0 + pixel / TILE));
                        inside.then_some(e as i64)
                    })
                })
                .collect();
            selected.par_sort_unstable();
            selected
        };
        self.guarded(select)
    }

    /// Runs `fill(scratch, id, out)` for every id on the rayon pool, each with its own
    /// `per_event` items of one `(B, per_event)` output and a scratch `S` that each rayon job
    /// reuses; checks every id first.
    pub(crate) fn per_event<T, S>(&self, ids: &[i64], per_event: usize, fill: impl Fn(&mut S, usize, &mut [T]) + Sync) -> Result<Vec<T>>
    where
        T: Copy + Default + Send,
        S: Default,
    {
        self.check_ids(ids)?;
        let too_big = || Error::Argument(format!("{} outputs of {per_event} values do not fit in memory", ids.len()));
        let total = ids.len().checked_mul(per_event).ok_or_else(too_big)?;
        let mut out = Vec::new();
        out.try_reserve_exact(total).map_err(|_| too_big())?;
        out.resize(total, T::default());
        self.guarded(|| {
            out.par_chunks_mut(per_event)
                .zip(ids.par_iter())
                .for_each_init(S::default, |scratch, (chunk, &id)| fill(scratch, id as usize, chunk))
        })?;
        Ok(out)
    }

    /// Runs `work` on the pool (see [`crate::pool::in_pool`]); a panic in it can only come from files
    /// that contradict each other, so it is reported as a damaged dataset, naming the file.
    pub(crate) fn guarded<R: Send>(&self, work: impl FnOnce() -> R + Send) -> Result<R> {
        in_pool(work).map_err(|error| match error {
            Error::Internal(_) => self.damage(),
            other => other,
        })
    }

    /// [`Error::Index`] for the first id outside the history.
    fn check_ids(&self, ids: &[i64]) -> Result<()> {
        match ids.iter().find(|&&id| usize::try_from(id).map_or(true, |id| id >= self.len())) {
            Some(&bad) => Err(Error::Index(format!("event id {bad} is out of range for a history of {} events", self.len()))),
            None => Ok(()),
        }
    }

    /// Canvas pixel of the top-left corner of the `size`×`size` grid centred on event `id`.
    fn corner(&self, id: usize, size: usize) -> (i64, i64) {
        let half = (size / 2) as i64;
        (self.xs()[id] as i64 - half, self.ys()[id] as i64 - half)
    }

    /// Positions of tile `tile`'s events in the tile files.
    fn tile_span(&self, tile: usize) -> Range<usize> {
        let offsets = self.tile_offsets.as_slice();
        offsets[tile] as usize..offsets[tile + 1] as usize
    }

    /// The tiles that the canvas rectangle `xs`×`ys` (pixels) meets, row by row.
    fn tiles_in(&self, xs: Range<usize>, ys: Range<usize>) -> impl Iterator<Item = TilePart> + '_ {
        let tile_range = |r: &Range<usize>| if r.is_empty() { 0..0 } else { r.start / TILE..r.end.div_ceil(TILE) };
        let (columns, rows) = (tile_range(&xs), tile_range(&ys));
        rows.flat_map(move |ty| {
            let (xs, ys) = (xs.clone(), ys.clone());
            columns.clone().map(move |tx| {
                let (x0, y0) = (tx * TILE, ty * TILE);
                TilePart {
                    tile: ty * self.tiles_x + tx,
                    x0,
                    y0,
                    xs: xs.start.max(x0)..xs.end.min(x0 + TILE),
                    ys: ys.start.max(y0)..ys.end.min(y0 + TILE),
                }
            })
        })
    }

    /// How many of tile `tile`'s checkpoints hold only events before event `id`.
    fn checkpoints_before(&self, tile: usize, id: usize) -> usize {
        let offsets = self.checkpoint_offsets.as_slice();
        let last_ids = &self.checkpoint_event_ids.as_slice()[offsets[tile] as usize..offsets[tile + 1] as usize];
        last_ids.partition_point(|&e| (e as usize) < id)
    }

    /// Position in the tile files of tile `tile`'s first event with an id ≥ `id` (the end of
    /// the tile's span if none): the checkpoint search, then at most 64 events.
    fn first_position_from(&self, tile: usize, id: usize) -> usize {
        let span = self.tile_span(tile);
        let block = span.start + self.checkpoints_before(tile, id) * CHECKPOINT_EVERY;
        let block_end = (block + CHECKPOINT_EVERY).min(span.end);
        block + self.tile_event_ids.as_slice()[block..block_end].partition_point(|&e| (e as usize) < id)
    }

    /// Where the state of tile `tile` after its first `checkpoints` checkpoints lies (empty for
    /// none: the tile starts white), and the positions of the (at most 64) events that follow.
    fn tile_sources(&self, tile: usize, checkpoints: usize) -> (&[u8], Range<usize>) {
        let state = match checkpoints {
            0 => &[][..],
            _ => {
                let at = (self.checkpoint_offsets.as_slice()[tile] as usize + checkpoints - 1) * TILE * TILE;
                &self.tile_checkpoints.as_slice()[at..at + TILE * TILE]
            }
        };
        let span = self.tile_span(tile);
        let block = span.start + checkpoints * CHECKPOINT_EVERY;
        (state, block..(block + CHECKPOINT_EVERY).min(span.end))
    }

    /// Writes the 16×16 state of tile `tile` strictly before event `id` (palette indices) into
    /// `region`, row `r` at `region[r * stride ..][..16]`: its checkpoint number `checkpoints`
    /// (the last one before `id`), then at most 63 of its events.
    fn tile_into(&self, tile: usize, checkpoints: usize, id: usize, region: &mut [u8], stride: usize) {
        let (state, block) = self.tile_sources(tile, checkpoints);
        for row in 0..TILE {
            let pixels = &mut region[row * stride..row * stride + TILE];
            // No checkpoint yet: an empty state, a white tile.
            match state.get(row * TILE..(row + 1) * TILE) {
                Some(from) => pixels.copy_from_slice(from),
                None => pixels.fill(self.white),
            }
        }
        let (ids, cells) = (&self.tile_event_ids.as_slice()[block.clone()], &self.tile_event_cells.as_slice()[block]);
        for (&e, &cell) in ids.iter().zip(cells) {
            if e as usize >= id {
                break;
            }
            let pixel = cell_pixel(cell);
            region[pixel / TILE * stride + pixel % TILE] = cell_color(cell);
        }
    }
}

/// Opens the offsets files of a tile index of `tiles` tiles over `n` events, `[tile offsets,
/// checkpoint offsets]`, with a checkpoint every `every` events of a tile; [`Error::Dataset`]
/// names the first whose offsets do not split the events into tiles or their checkpoints.
/// `meta.sqlite` of `folder`, read-only and `immutable` (a published dataset never changes:
/// SQLite then takes no locks and looks for no journal by name, which matters once the folder
/// may have been replaced).
fn open_meta(folder: &Folder) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let path = folder.path().join(dataset::META_FILE);
    let through = folder.path_of(dataset::META_FILE).to_string_lossy().replace('%', "%25").replace('?', "%3f").replace('#', "%23");
    let meta = rusqlite::Connection::open_with_flags(format!("file:{through}?immutable=1"), OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
        .at(&path)?;
    // Reading the schema now checks the file is there (SQLite would wait for the first query).
    meta.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).at(&path)?;
    Ok(meta)
}

fn open_tiling(folder: &Folder, n: usize, tiles: usize, every: usize, files: [&str; 2]) -> Result<(Array<u64>, Array<u64>)> {
    let damaged =
        |file: &str, reason: &str| Error::Dataset { path: folder.path().join(file), reason: format!("{reason}: ingest the dataset again") };
    let tile_offsets = Array::<u64>::open(folder, files[0], &[tiles + 1])?;
    let offsets = tile_offsets.as_slice();
    if offsets[0] != 0 || offsets[tiles] != n as u64 || offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(damaged(files[0], "offsets do not split the events into tiles"));
    }
    let checkpoint_offsets = Array::<u64>::open(folder, files[1], &[tiles + 1])?;
    let checkpoints = checkpoint_offsets.as_slice();
    let consistent = checkpoints[0] == 0
        && (0..tiles).all(|t| checkpoints[t + 1].checked_sub(checkpoints[t]) == Some((offsets[t + 1] - offsets[t]) / every as u64));
    if !consistent {
        return Err(damaged(files[1], "offsets do not match the tiles' event counts"));
    }
    Ok((tile_offsets, checkpoint_offsets))
}

/// What [`History::windows`] reuses from one window to the next.
#[derive(Default)]
struct WindowScratch {
    /// The tiles under the window, whole, row-major.
    region: Vec<u8>,
    /// The number of the checkpoint each tile starts from.
    checkpoints: Vec<usize>,
}

/// Asks the CPU to start loading `items` into its caches, without waiting for them.
#[inline]
fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        const LINE: usize = 64;
        let misalignment = items.as_ptr() as usize % LINE;
        let first_line = items.as_ptr().cast::<i8>().wrapping_sub(misalignment);
        for line in 0..(misalignment + size_of_val(items)).div_ceil(LINE) {
            // SAFETY: a prefetch is only a hint, never a memory access: it cannot fault.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(first_line.wrapping_add(line * LINE)) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// The largest of `values` (0 for none), in a form the compiler vectorises.
fn largest(values: &[u8]) -> u8 {
    values.iter().fold(0, |m, &v| m.max(v))
}

/// A window on the canvas and the whole tiles under it, which a reader rebuilds into a scratch
/// region (row-major, `stride` cells a row, from pixel `(x0, y0)`) before cropping the window
/// out of it.
#[derive(Clone)]
pub(crate) struct Under {
    size: usize,
    /// The window's top-left pixel (may lie off the canvas).
    left: i64,
    top: i64,
    /// The window's pixels on the canvas.
    pub(crate) xs: Range<usize>,
    pub(crate) ys: Range<usize>,
    pub(crate) x0: usize,
    pub(crate) y0: usize,
    pub(crate) stride: usize,
    rows: usize,
}

impl Under {
    /// The cells of the scratch region.
    pub(crate) fn cells(&self) -> usize {
        self.stride * self.rows
    }

    /// Crops the window out of `region` into `window` (`size`×`size`, row-major), `outside`
    /// off the canvas. Rows are copied in 32-byte pieces, which compile to vector moves: a call
    /// to `memcpy` and two to `memset` for each row took longer than the copy (see
    /// BENCHMARKS.md).
    pub(crate) fn crop(&self, region: &[u8], window: &mut [u8], outside: u8) {
        const PIECE: usize = 32;
        let on = (self.xs.start as i64 - self.left) as usize..(self.xs.end as i64 - self.left) as usize;
        for (row, out) in (self.top..).zip(window.chunks_exact_mut(self.size)) {
            let Some(row) = usize::try_from(row).ok().filter(|row| self.ys.contains(row)) else {
                out.fill(outside);
                continue;
            };
            let from = (row - self.y0) * self.stride + self.xs.start - self.x0;
            let (left, rest) = out.split_at_mut(on.start);
            let (middle, right) = rest.split_at_mut(on.len());
            let (mut outs, mut cells) = (middle.chunks_exact_mut(PIECE), region[from..from + on.len()].chunks_exact(PIECE));
            for (out, cells) in (&mut outs).zip(&mut cells) {
                out.copy_from_slice(cells);
            }
            let tail = outs.into_remainder();
            if !tail.is_empty() {
                tail.copy_from_slice(cells.remainder());
            }
            for part in [left, right] {
                if !part.is_empty() {
                    part.fill(outside);
                }
            }
        }
    }
}

/// The pixels `start .. start + size` that lie in `limit`; when none do (a window off the part
/// of the canvas open at its time), an empty range inside `start ..= start + size`, so that a
/// window's crop of it stays inside the window.
fn clip(start: i64, size: usize, limit: Range<usize>) -> Range<usize> {
    let end = start.saturating_add(size as i64);
    let low = start.max(limit.start as i64).min(end).max(0);
    let high = end.min(limit.end as i64).max(low);
    low as usize..high as usize
}

/// The first index ≥ `from` whose timestamp is after `t_ms`: an exponential search from `from`,
/// so the cost grows with the distance to the answer, not with the length of the history.
fn first_after(timestamps: &[i64], from: usize, t_ms: i64) -> usize {
    let rest = &timestamps[from..];
    let mut bound = 1;
    while bound < rest.len() && rest[bound] <= t_ms {
        bound *= 2;
    }
    let low = bound / 2;
    from + low + rest[low..bound.min(rest.len())].partition_point(|&t| t <= t_ms)
}

/// Cells of a `size`×`size` grid; refuses 0 and sizes whose square overflows.
fn grid_cells(size: usize) -> Result<usize> {
    size.checked_mul(size).filter(|&cells| cells > 0).ok_or_else(|| grid_size_error(size))
}

/// [`Error::Argument`] naming `name` unless `milliseconds` > 0.
fn check_duration(name: &str, milliseconds: i64) -> Result<()> {
    if milliseconds <= 0 {
        return Err(Error::Argument(format!("`{name}` must be a positive number of milliseconds, not {milliseconds}")));
    }
    Ok(())
}

pub mod ages;
mod checks;
#[cfg(test)]
mod tests;
pub mod users;

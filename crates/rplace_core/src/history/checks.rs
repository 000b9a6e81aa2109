//! What the reader checks beyond the files' sizes and headers: the values it would hand on
//! (a color outside the palette, a pixel off the canvas), which file explains a wrong result, and
//! the cross-checks of `rplacevit verify` (snapshots, the tile index and the ages index against a
//! replay of the event columns).

use super::History;
use crate::dataset;
use crate::error::{Error, Result};
use crate::index::{
    self, cell_color, cell_pixel, AGE_CHANGE_RESTS_FILE, AGE_CHANGE_TICKS_FILE, AGE_CHECKPOINT_EVENT_IDS_FILE, AGE_CHECKPOINT_EVERY,
    AGE_TILE, AGE_TILE_EVENT_IDS_FILE, AGE_TILE_EVENT_PIXELS_FILE, AGE_TILE_EVENT_TIMES_FILE, CHECKPOINT_EVENT_IDS_FILE, CHECKPOINT_EVERY,
    COLOR_FILE, INDEX_DIR, TILE, TILE_CHECKPOINTS_FILE, TILE_EVENT_CELLS_FILE, TILE_EVENT_IDS_FILE, TILE_EVENT_TIMES_FILE, TIMESTAMP_FILE,
    USER_ID_FILE, X_FILE, Y_FILE,
};
use crate::palette::N_COLORS;
use crate::stop::check;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

impl History {
    /// `Ok` when the largest color of a result, `largest`, is at most `highest` (the last palette
    /// index, or OUTSIDE), else the damaged file that let it through: a damaged byte must not
    /// reach the caller, where it would index the palette out of range.
    pub(super) fn check_largest(&self, largest: i64, highest: u8) -> Result<()> {
        if largest <= highest as i64 {
            Ok(())
        } else {
            Err(self.damage())
        }
    }

    /// The first file whose values are impossible (a color outside the palette, a pixel outside
    /// the canvas): what explains a wrong result or a panic in a read. Scans the files, so it is
    /// only called once something went wrong.
    pub(crate) fn damage(&self) -> Error {
        let damaged = |file: &str, reason: String| Error::Dataset {
            path: self.path.join(file),
            reason: format!("damaged: {reason}; `rplacevit verify` checks every file; ingest the dataset again"),
        };
        if let Some((file, reason)) = self.column_problem() {
            return damaged(&file, reason);
        }
        let palette = |values: &[u8]| values.iter().position(|&c| c as usize >= N_COLORS);
        if let Some(at) = palette(self.snapshots.as_slice()) {
            return damaged(
                dataset::SNAPSHOTS_FILE,
                format!("byte {at} holds color {}, outside the palette", self.snapshots.as_slice()[at]),
            );
        }
        if let Some(at) = palette(self.tile_checkpoints.as_slice()) {
            return damaged(
                TILE_CHECKPOINTS_FILE,
                format!("byte {at} holds color {}, outside the palette", self.tile_checkpoints.as_slice()[at]),
            );
        }
        if let Some(at) = self.tile_event_cells.as_slice().iter().position(|&cell| cell_color(cell) as usize >= N_COLORS) {
            return damaged(TILE_EVENT_CELLS_FILE, format!("entry {at} holds a color outside the palette"));
        }
        damaged(INDEX_DIR, "its files contradict each other".into())
    }

    /// The first impossible value of the event columns, as (file, reason); checked once.
    fn column_problem(&self) -> Option<(String, String)> {
        self.columns_checked
            .get_or_init(|| {
                let first = |file: &str, at: Option<usize>, what: &dyn Fn(usize) -> String| at.map(|at| (file.to_string(), what(at)));
                let colors = self.colors();
                first(COLOR_FILE, colors.iter().position(|&c| c as usize >= N_COLORS), &|at| {
                    format!("event {at} has color {}, outside the palette", colors[at])
                })
                .or_else(|| {
                    first(X_FILE, self.xs().iter().position(|&x| x as usize >= self.width), &|at| format!("event {at} lies off the canvas"))
                })
                .or_else(|| {
                    first(Y_FILE, self.ys().iter().position(|&y| y as usize >= self.height), &|at| {
                        format!("event {at} lies off the canvas")
                    })
                })
                .or_else(|| {
                    let users = self.info.users;
                    first(USER_ID_FILE, self.user_ids().iter().position(|&u| u as u64 >= users), &|at| {
                        format!("event {at} has a user id beyond the {users} users")
                    })
                })
                .or_else(|| {
                    first(TIMESTAMP_FILE, self.timestamps().windows(2).position(|w| w[0] > w[1]), &|at| {
                        format!("events {at} and {} are out of time order", at + 1)
                    })
                })
            })
            .clone()
    }

    /// [`Error::Dataset`] unless every value of the event columns is possible: what a caller
    /// that hands the columns on as they are (`History.events()` in Python) checks first.
    pub fn check_columns(&self) -> Result<()> {
        match self.column_problem() {
            None => Ok(()),
            Some((file, reason)) => Err(Error::Dataset {
                path: self.path.join(file),
                reason: format!("damaged: {reason}; `rplacevit verify` checks every file; ingest the dataset again"),
            }),
        }
    }

    /// What differs between `snapshots.npy` and a replay of the event columns: the number of
    /// each snapshot that does, and its first wrong pixel. Assumes [`History::check_columns`].
    pub fn snapshot_problems(&self, stop: &AtomicBool) -> Result<Vec<String>> {
        let area = self.width * self.height;
        let mut canvas = vec![self.white; area];
        let mut problems = Vec::new();
        let rows = self.len().div_ceil(self.partition_size) + 1;
        for row in 0..rows {
            check(stop)?;
            let first = (row * self.partition_size).min(self.len());
            if row > 0 {
                let start = ((row - 1) * self.partition_size).min(self.len());
                for id in start..first {
                    canvas[self.ys()[id] as usize * self.width + self.xs()[id] as usize] = self.colors()[id];
                }
            }
            let snapshot = &self.snapshots.as_slice()[row * area..(row + 1) * area];
            if let Some(at) = snapshot.iter().zip(&canvas).position(|(a, b)| a != b) {
                let what = if row + 1 == rows {
                    "the last snapshot (after every event)".to_string()
                } else {
                    format!("snapshot {row} (before event {first})")
                };
                problems.push(format!("{what} differs from the replay of the events at pixel ({}, {})", at % self.width, at / self.width));
            }
        }
        Ok(problems)
    }

    /// What in the tile index or the ages index disagrees with the event columns, as (file,
    /// reason), the first problem of each file. Assumes [`History::check_columns`].
    pub fn index_problems(&self, stop: &AtomicBool) -> Result<Vec<(String, String)>> {
        let tiles = self.tile_offsets.len - 1;
        let age_tiles = self.age_tile_offsets.len - 1;
        let found: Vec<(usize, &'static str, String)> = self.guarded(|| {
            (0..tiles + age_tiles)
                .into_par_iter()
                .filter_map(|k| {
                    let problem = match k.checked_sub(tiles) {
                        _ if stop.load(Ordering::Relaxed) => None,
                        None => self.tile_problem(k),
                        Some(age_tile) => self.age_tile_problem(age_tile),
                    };
                    problem.map(|(file, reason)| (k, file, reason))
                })
                .collect()
        })?;
        check(stop)?;
        let mut problems: Vec<(String, String)> = Vec::new();
        for (_, file, reason) in found {
            if !problems.iter().any(|(f, _)| f == file) {
                problems.push((file.to_string(), reason));
            }
        }
        Ok(problems)
    }

    /// Event `e` of a tile's list, after `previous`: its id and pixel where it is a later id of
    /// the history that lies in tile `(tx, ty)` of `side`-pixel tiles; else what is wrong, to
    /// follow the tile's name.
    fn listed_event(
        &self,
        e: u32,
        previous: &mut Option<usize>,
        (tx, ty): (usize, usize),
        side: usize,
    ) -> Result<(usize, usize, usize), String> {
        let id = e as usize;
        if id >= self.len() || previous.is_some_and(|p| p >= id) {
            return Err(": its events are not ascending ids of the history".into());
        }
        *previous = Some(id);
        let (x, y) = (self.xs()[id] as usize, self.ys()[id] as usize);
        if (x / side, y / side) != (tx, ty) {
            return Err(format!(" lists event {id}, which lies in another tile"));
        }
        Ok((id, x, y))
    }

    /// The first disagreement of tile `tile` with the columns: its event list, cells, checkpoints.
    fn tile_problem(&self, tile: usize) -> Option<(&'static str, String)> {
        let span = self.tile_span(tile);
        let (ids, cells) = (&self.tile_event_ids.as_slice()[span.clone()], &self.tile_event_cells.as_slice()[span]);
        let (tx, ty) = (tile % self.tiles_x, tile / self.tiles_x);
        let checkpoints = &self.checkpoint_offsets.as_slice()[tile..tile + 2];
        let mut state = [self.white; TILE * TILE];
        let mut previous = None;
        for (k, (&e, &cell)) in ids.iter().zip(cells).enumerate() {
            let (id, x, y) = match self.listed_event(e, &mut previous, (tx, ty), TILE) {
                Ok(event) => event,
                Err(reason) => return Some((TILE_EVENT_IDS_FILE, format!("tile {tile}{reason}"))),
            };
            if cell != index::cell(y % TILE * TILE + x % TILE, self.colors()[id]) {
                return Some((TILE_EVENT_CELLS_FILE, format!("tile {tile}: the cell of event {id} differs from its pixel and color")));
            }
            state[cell_pixel(cell)] = cell_color(cell);
            let time = self.tile_event_times.as_slice()[self.tile_span(tile).start + k];
            if time != index::event_time(self.timestamps()[id], self.timestamps()[0]) {
                return Some((TILE_EVENT_TIMES_FILE, format!("tile {tile}: the time of event {id} differs from its timestamp")));
            }
            if (k + 1) % CHECKPOINT_EVERY == 0 {
                let row = checkpoints[0] as usize + k / CHECKPOINT_EVERY;
                if self.checkpoint_event_ids.as_slice()[row] != e {
                    return Some((CHECKPOINT_EVENT_IDS_FILE, format!("checkpoint {row} (tile {tile}) names the wrong event")));
                }
                if self.tile_checkpoints.as_slice()[row * TILE * TILE..(row + 1) * TILE * TILE] != state {
                    return Some((TILE_CHECKPOINTS_FILE, format!("checkpoint {row} (tile {tile}) differs from the replay of its events")));
                }
            }
        }
        None
    }

    /// The first disagreement of age tile `tile` with the columns: its event list, times, pixels,
    /// checkpoints.
    fn age_tile_problem(&self, tile: usize) -> Option<(&'static str, String)> {
        const CELLS: usize = AGE_TILE * AGE_TILE;
        let offsets = self.age_tile_offsets.as_slice();
        let span = offsets[tile] as usize..offsets[tile + 1] as usize;
        let ids = &self.age_tile_event_ids.as_slice()[span.clone()];
        let (times, pixels) = (&self.age_tile_event_times.as_slice()[span.clone()], &self.age_tile_event_pixels.as_slice()[span]);
        let (tx, ty) = (tile % self.age_tiles_x, tile / self.age_tiles_x);
        let first_checkpoint = self.age_checkpoint_offsets.as_slice()[tile] as usize;
        let mut placed_at = [i64::MIN; CELLS];
        let mut previous = None;
        for (k, ((&e, &time), &pixel)) in ids.iter().zip(times).zip(pixels).enumerate() {
            let (id, x, y) = match self.listed_event(e, &mut previous, (tx, ty), AGE_TILE) {
                Ok(event) => event,
                Err(reason) => return Some((AGE_TILE_EVENT_IDS_FILE, format!("age tile {tile}{reason}"))),
            };
            if pixel as usize != y % AGE_TILE * AGE_TILE + x % AGE_TILE {
                return Some((AGE_TILE_EVENT_PIXELS_FILE, format!("age tile {tile}: the pixel of event {id} differs from its own")));
            }
            if time != index::event_time(self.timestamps()[id], self.timestamps()[0]) {
                return Some((AGE_TILE_EVENT_TIMES_FILE, format!("age tile {tile}: the time of event {id} differs from its timestamp")));
            }
            placed_at[pixel as usize] = self.timestamps()[id];
            if (k + 1) % AGE_CHECKPOINT_EVERY == 0 {
                let row = first_checkpoint + k / AGE_CHECKPOINT_EVERY;
                if self.age_checkpoint_event_ids.as_slice()[row] != e {
                    return Some((AGE_CHECKPOINT_EVENT_IDS_FILE, format!("checkpoint {row} (age tile {tile}) names the wrong event")));
                }
                let now = self.timestamps()[id];
                let cells = row * CELLS..(row + 1) * CELLS;
                let expected = placed_at.map(|at| index::change_ticks(now, at));
                let ticks_differ = self.age_change_ticks.as_slice()[cells.clone()].iter().zip(&expected).any(|(&t, e)| t != e.0);
                let rests_differ = self.age_change_rests.as_slice()[cells].iter().zip(&expected).any(|(&r, e)| r != e.1);
                for (file, differs) in [(AGE_CHANGE_TICKS_FILE, ticks_differ), (AGE_CHANGE_RESTS_FILE, rests_differ)] {
                    if differs {
                        return Some((file, format!("checkpoint {row} (age tile {tile}) has ages other than its events give")));
                    }
                }
            }
        }
        None
    }
}

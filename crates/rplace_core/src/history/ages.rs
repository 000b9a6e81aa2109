//! What the canvas around an event looked like in time: how long ago each pixel of a window was
//! last placed on (bucketed, for the models' `age` input), who placed it last (`users`) and what
//! it showed before that (`previous`).

use super::{grid_cells, largest, prefetch, History, Under};
use crate::error::Result;
use crate::index::{cell_color, cell_pixel, NEVER, TILE};
use crate::palette::{N_COLORS, OUTSIDE};
use std::ops::Range;

/// Age buckets: 0 for an age under 2¹³ ms (8.2 s), then two per doubling up to 2²⁷ ms (37.3 h):
/// bucket `1 + 2 (h − 13) + b` for an age with highest bit `h` and next bit `b`; 29 from 37.3 h
/// on. Log-scaled, so a minute and an hour are as far apart as an hour and two days.
pub const AGE_BUCKETS: u8 = 30;
/// The bucket of a pixel never placed on before the event.
pub const AGE_NEVER: u8 = AGE_BUCKETS;
/// The bucket of a cell off the canvas.
pub const AGE_OUTSIDE: u8 = AGE_BUCKETS + 1;

/// The bucket of an age in milliseconds (see [`AGE_BUCKETS`]). Without branches, so that a
/// window's 4,096 cells are bucketed by vector instructions: the age, clamped to
/// [1.5 × 2¹², 2²⁷], as an f64 (exact: below 2⁵³) has its highest bit `h` in the exponent and
/// the next bit `b` first in the mantissa; their bits above position 51 read `2 (h + 1023) + b`.
pub fn age_bucket(age_ms: i64) -> u8 {
    let clamped = age_ms.clamp(6_144, 1 << 27) as f64;
    ((clamped.to_bits() >> 51) as i64 - 2 * 1023 - 25) as u8
}

/// A pixel's age as the scratch region holds it: milliseconds before the event, saturated at
/// [`LONG_AGO`] (where the last bucket starts), or never placed on. As i32, so that the loops
/// over a region compile to the vector instructions every x86-64 has (SSE2 converts i32 to f64,
/// not i64).
const NEVER_PLACED: i32 = -1;
const LONG_AGO: i32 = 1 << 27;

/// `age` as the region holds it.
fn saturated(age: i64) -> i32 {
    age.clamp(0, LONG_AGO as i64) as i32
}

/// [`age_bucket`] of an age the region holds (not [`NEVER_PLACED`]): the same bits, from an i32.
fn region_bucket(age: i32) -> u8 {
    let clamped = age.clamp(6_144, LONG_AGO) as f64;
    ((clamped.to_bits() >> 51) as i64 - 2 * 1023 - 25) as u8
}

impl History {
    /// For each event, on the `size`×`size` grid laid out like [`History::windows`], the age
    /// bucket ([`age_bucket`]) of the time from each pixel's last event before it to the event;
    /// [`AGE_NEVER`] for a pixel without one, [`AGE_OUTSIDE`] off the canvas. `(B, size, size)`.
    pub fn age_buckets(&self, ids: &[i64], size: usize) -> Result<Vec<u8>> {
        self.per_event(ids, grid_cells(size)?, |scratch: &mut AgeScratch, id, out| self.ages_into(id, size, out, scratch))
    }

    fn ages_into(&self, id: usize, size: usize, out: &mut [u8], scratch: &mut AgeScratch) {
        let under = self.under(id, size);
        let Under { xs, ys, x0, y0, stride, .. } = under.clone();
        scratch.region.resize(under.cells(), NEVER_PLACED);
        let timestamps = self.timestamps();
        let t = timestamps[id];
        // First find every tile's checkpoint and start loading what the tile needs (as
        // `windows` does), so that the cache misses of all tiles overlap.
        for part in self.tiles_in(xs.clone(), ys.clone()) {
            let done = self.checkpoints_before(part.tile, id);
            let block = self.tile_sources(part.tile, done).1;
            prefetch(&self.tile_event_ids.as_slice()[block.clone()]);
            prefetch(&self.tile_event_times.as_slice()[block.clone()]);
            prefetch(&self.tile_event_cells.as_slice()[block]);
            if let Some(c) = done.checked_sub(1).map(|d| self.checkpoint_offsets.as_slice()[part.tile] as usize + d) {
                prefetch(&self.tile_change_ages.as_slice()[c * TILE * TILE..(c + 1) * TILE * TILE]);
                prefetch(std::slice::from_ref(&timestamps[self.checkpoint_event_ids.as_slice()[c] as usize]));
            }
            let span = self.tile_span(part.tile);
            if !span.is_empty() {
                prefetch(std::slice::from_ref(&timestamps[self.tile_event_ids.as_slice()[span.start] as usize]));
            }
            scratch.checkpoints.push(done);
        }
        for (part, done) in self.tiles_in(xs.clone(), ys.clone()).zip(scratch.checkpoints.drain(..)) {
            let region = &mut scratch.region[(part.y0 - y0) * stride + part.x0 - x0..];
            // The tile's pixels at its checkpoint: when each was last placed on.
            let checkpoint = done.checked_sub(1).map(|d| self.checkpoint_offsets.as_slice()[part.tile] as usize + d);
            let at = checkpoint.map_or(0, |c| timestamps[self.checkpoint_event_ids.as_slice()[c] as usize]);
            for row in 0..TILE {
                let pixels = &mut region[row * stride..row * stride + TILE];
                match checkpoint {
                    None => pixels.fill(NEVER_PLACED),
                    Some(c) => {
                        let ages = &self.tile_change_ages.as_slice()[c * TILE * TILE + row * TILE..][..TILE];
                        // The age at the event: the age at the checkpoint, plus the time since.
                        let since = saturated(t - at);
                        for (pixel, &age) in pixels.iter_mut().zip(ages) {
                            let aged = (age.min(LONG_AGO as u32) as i32 + since).min(LONG_AGO);
                            *pixel = if age == NEVER { NEVER_PLACED } else { aged };
                        }
                    }
                }
            }
            // Then the tile's events after the checkpoint, up to the event, their times read in
            // the tile's order (from the tile's first event), not in the timestamp column.
            let block = self.tile_sources(part.tile, done).1;
            let span = self.tile_span(part.tile);
            let base = if span.is_empty() { 0 } else { timestamps[self.tile_event_ids.as_slice()[span.start] as usize] };
            let (tile_ids, cells, times) = (
                &self.tile_event_ids.as_slice()[block.clone()],
                &self.tile_event_cells.as_slice()[block.clone()],
                &self.tile_event_times.as_slice()[block],
            );
            for ((&e, &cell), &time) in tile_ids.iter().zip(cells).zip(times) {
                if e as usize >= id {
                    break;
                }
                let pixel = cell_pixel(cell);
                let placed = if time == NEVER { timestamps[e as usize] } else { base + time as i64 };
                region[pixel / TILE * stride + pixel % TILE] = saturated(t - placed);
            }
        }
        under.crop(&scratch.region, out, AGE_OUTSIDE, |cells, ages| {
            for (cell, &age) in cells.iter_mut().zip(ages) {
                let bucket = region_bucket(age);
                *cell = if age == NEVER_PLACED { AGE_NEVER } else { bucket };
            }
        });
    }

    /// When each pixel of the rectangle `xs`×`ys` (on the canvas) was last placed on by the
    /// events with timestamp ≤ `t_ms`: `(ys.len(), xs.len())` milliseconds, `i64::MIN` where
    /// never. A walk back through each tile's events, the tiles in parallel: what a painting
    /// that starts from the real canvas of a moment needs once, and the viewer's models.
    pub fn placement_times_at(&self, t_ms: i64, xs: Range<usize>, ys: Range<usize>) -> Result<Vec<i64>> {
        let timestamps = self.timestamps();
        self.nth_in_region(t_ms, xs, ys, 1, i64::MIN, "the canvas of placement times", |e, _| timestamps[e])
    }

    /// The color each pixel of the rectangle `xs`×`ys` (on the canvas) showed before its last
    /// placement by the events with timestamp ≤ `t_ms`: `(ys.len(), xs.len())` palette indices,
    /// white where it had fewer than two, and white too where the canvas was not open yet (as
    /// [`History::region_at`] shows it; [`History::previous_colors`] marks those cells OUTSIDE in
    /// a window). What a painting that starts from the real canvas of a moment needs for the
    /// models' `previous` input.
    pub fn previous_colors_at(&self, t_ms: i64, xs: Range<usize>, ys: Range<usize>) -> Result<Vec<u8>> {
        let colors = self.nth_in_region(t_ms, xs, ys, 2, self.white, "the canvas of previous colors", |_, cell| cell_color(cell))?;
        self.check_largest(largest(&colors) as i64, N_COLORS as u8 - 1)?;
        Ok(colors)
    }

    /// For each pixel of the rectangle, `value(id, cell)` of the `nth` latest event at it with
    /// timestamp ≤ `t_ms` (1 = the last), `none` where there are fewer: a walk back through
    /// each tile's events, the tiles in parallel.
    fn nth_in_region<T: Copy + Send + Sync>(
        &self,
        t_ms: i64,
        xs: Range<usize>,
        ys: Range<usize>,
        nth: u8,
        none: T,
        what: &str,
        value: impl Fn(usize, u16) -> T + Sync + Send,
    ) -> Result<Vec<T>> {
        self.check_region(&xs, &ys)?;
        let count = self.timestamps().partition_point(|&t| t <= t_ms);
        self.per_tile_in(xs, ys, none, what, |part| {
            let mut values = [none; TILE * TILE];
            let mut left_to_see = [nth; TILE * TILE];
            let mut remaining = TILE * TILE;
            for (&e, &cell) in self.earlier_in_tile(part.tile, count) {
                let pixel = cell_pixel(cell);
                if left_to_see[pixel] > 0 {
                    left_to_see[pixel] -= 1;
                    if left_to_see[pixel] == 0 {
                        values[pixel] = value(e as usize, cell);
                        remaining -= 1;
                        if remaining == 0 {
                            break;
                        }
                    }
                }
            }
            values
        })
    }

    /// For each event, on the `size`×`size` grid laid out like [`History::windows`], the user id
    /// of the last event before it at each pixel; −1 where there is none or the pixel is off the
    /// canvas. `(B, size, size)`. What the models' `users` input reads.
    pub fn last_placers(&self, ids: &[i64], size: usize) -> Result<Vec<i64>> {
        let user_ids = self.user_ids();
        self.per_event(ids, grid_cells(size)?, |_: &mut (), id, grid| {
            grid.fill(-1);
            self.nth_per_cell(id, size, 1, |tile| self.earlier_in_tile(tile, id), |at, e, _| grid[at] = user_ids[e] as i64);
        })
    }

    /// For each event, on the `size`×`size` grid laid out like [`History::windows`], the color
    /// each pixel showed before its last event before the event: the color placed by the event
    /// before that one, white where that was the pixel's first (the canvas starts white) or where
    /// the pixel was never placed on; [`OUTSIDE`] where [`History::windows`] has it. `(B, size,
    /// size)` palette indices. What the models' `previous` input reads: on r/place a damaged
    /// pixel is mostly restored to what it showed before.
    pub fn previous_colors(&self, ids: &[i64], size: usize) -> Result<Vec<u8>> {
        let colors = self.per_event(ids, grid_cells(size)?, |_: &mut (), id, grid| {
            let under = self.under(id, size);
            grid.fill(OUTSIDE);
            for y in under.ys.clone() {
                let row = (y as i64 - under.top) as usize * size;
                let (first, last) = ((under.xs.start as i64 - under.left) as usize, (under.xs.end as i64 - under.left) as usize);
                grid[row + first..row + last].fill(self.white);
            }
            self.nth_per_cell(id, size, 2, |tile| self.earlier_in_tile(tile, id), |at, _, cell| grid[at] = cell_color(cell));
        })?;
        self.check_largest(largest(&colors) as i64, OUTSIDE)?;
        Ok(colors)
    }
}

/// What [`History::age_buckets`] reuses from one window to the next.
#[derive(Default)]
pub(super) struct AgeScratch {
    /// How long before the event each pixel of the tiles under the window was last placed on,
    /// row-major.
    region: Vec<i32>,
    checkpoints: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_every_two() {
        assert_eq!(age_bucket(0), 0);
        assert_eq!(age_bucket(8_191), 0);
        assert_eq!(age_bucket(8_192), 1);
        assert_eq!(age_bucket(12_288), 2); // 1.5 × 2¹³
        assert_eq!(age_bucket(16_384), 3);
        assert_eq!(age_bucket((1 << 27) - 1), 28);
        assert_eq!(age_bucket(1 << 27), 29);
        assert_eq!(age_bucket(i64::MAX), 29);
        let mut previous = 0;
        for age in (0..1 << 28).step_by(997) {
            let bucket = age_bucket(age);
            assert!(bucket >= previous && bucket < AGE_BUCKETS);
            previous = bucket;
        }
    }

    #[test]
    fn the_region_buckets_are_the_buckets() {
        for age in (0..LONG_AGO).step_by(331).chain((0..28).flat_map(|h| [(1 << h) - 1, 1 << h, (3 << h) - 1, 3 << h])) {
            let held = saturated(age as i64);
            assert_eq!(region_bucket(held), age_bucket(age as i64), "age {age}");
        }
        for age in [LONG_AGO as i64, LONG_AGO as i64 + 1, u32::MAX as i64, i64::MAX] {
            assert_eq!(region_bucket(saturated(age)), age_bucket(age), "age {age}");
        }
    }
}

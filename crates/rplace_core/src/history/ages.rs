//! What the canvas around an event looked like in time: how long ago each pixel of a window was
//! last placed on (bucketed, for the models' `age` input), who placed it last (`users`) and what
//! it showed before that (`previous`).

use super::{grid_cells, largest, prefetch, History, Under};
use crate::error::Result;
use crate::index::{
    cell_color, cell_pixel, event_time, AGE_CHECKPOINT_EVERY, AGE_TICK_MS, AGE_TILE, NEVER, TICKS_LONG_AGO, TICKS_NEVER, TILE,
};
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

/// The bucket of an age in milliseconds (see [`AGE_BUCKETS`]), without branches: the age,
/// clamped to [1.5 × 2¹², 2²⁷], as an f64 (exact: below 2⁵³) has its highest bit `h` in the
/// exponent and the next bit `b` first in the mantissa; their bits above position 51 read
/// `2 (h + 1023) + b`.
pub fn age_bucket(age_ms: i64) -> u8 {
    let clamped = age_ms.clamp(6_144, 1 << 27) as f64;
    ((clamped.to_bits() >> 51) as i64 - 2 * 1023 - 25) as u8
}

/// The bucket of every age from `ticks` to `ticks + 1` ticks of [`AGE_TICK_MS`] (excluded): the
/// bucket edges are whole ticks (2 ticks, 3, 4, 6, 8, …, [`TICKS_LONG_AGO`]). The same bits as
/// [`age_bucket`], from an f32 (exact: below 2²⁴), which vectorises with the instructions every
/// x86-64 has. What buckets the events after a checkpoint (before 49.7 days) and redoes the
/// checkpoint rows whose rests decide; [`bucket_below`] is its form for the first pass over every
/// checkpoint row (`tick_bucket(t)` is `bucket_below(t + 1).0`, tested, in fewer instructions:
/// see BENCHMARKS.md).
#[inline(always)]
fn tick_bucket(ticks: u32) -> u8 {
    let clamped = (ticks.min(TICKS_LONG_AGO as u32) as i32 as f32).max(1.5);
    ((clamped.to_bits() >> 22) as i32 - 2 * 127 - 1) as u8
}

/// For ages of `ticks - 1` whole ticks: their bucket ([`tick_bucket`]), and whether `ticks` is a
/// bucket edge, where one more tick moves the age into the next bucket. One conversion: an edge
/// (2, 3, 4, 6, 8, …, [`TICKS_LONG_AGO`]) is a float whose mantissa has no bits below its first.
#[inline(always)]
fn bucket_below(ticks: u32) -> (u8, bool) {
    // Clamped to [1.75, one past the last edge]: in bucket 0 and long ago, neither an edge.
    let bits = (ticks.min(TICKS_LONG_AGO as u32 + 1) as i32 as f32).max(1.75).to_bits();
    let edge = bits & ((1 << 22) - 1) == 0;
    (((bits >> 22) as i32 - 2 * 127 - 1 - edge as i32) as u8, edge)
}

/// Buckets one checkpoint row: a pixel's age is its ticks plus `since_ticks`, or one more where
/// its rest and the milliseconds left of the time since the checkpoint add up to a tick, so each
/// gets the bucket of its ticks plus `since_ticks` ([`bucket_below`]), or [`AGE_NEVER`] where its
/// ticks are [`TICKS_NEVER`]. `false` where that one more tick would cross a bucket edge for some
/// pixel: then the rests decide (never for TICKS_NEVER, whose sum is past the last edge).
#[inline(always)]
fn bucket_row(ticks: &[u16; AGE_TILE], since_ticks: u32, buckets: &mut [u8; AGE_TILE]) -> bool {
    let mut decided = true;
    for (bucket, &tick) in buckets.iter_mut().zip(ticks) {
        let (below, edge) = bucket_below(tick as u32 + since_ticks + 1);
        *bucket = if tick == TICKS_NEVER { AGE_NEVER } else { below };
        decided &= !edge;
    }
    decided
}

/// [`bucket_row`] in AVX2 instructions, the sums in 16-bit lanes and only the float conversion
/// of [`bucket_below`] in 32-bit ones: fewer instructions than the compiler's vectorisation of
/// `bucket_row` (measured: see BENCHMARKS.md; tested against it for every tick).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bucket_row_avx2(ticks: &[u16; AGE_TILE], since_ticks: u32, buckets: &mut [u8; AGE_TILE]) -> bool {
    use std::arch::x86_64::*;
    // Two loads of 16 ticks and one store of 32 buckets: a row of 32 pixels.
    const { assert!(AGE_TILE == 32) };
    const HALF: usize = AGE_TILE / 2;
    // The sums clamped at one past the last edge, as `bucket_below` clamps them: a saturating
    // add of the clamped `since_ticks + 1` then a clamp give the same for every tick.
    let since = _mm256_set1_epi16((since_ticks + 1).min(TICKS_LONG_AGO as u32 + 1) as u16 as i16);
    let past_last = _mm256_set1_epi16((TICKS_LONG_AGO + 1) as i16);
    let (zero, least, mantissa) = (_mm256_setzero_si256(), _mm256_set1_ps(1.75), _mm256_set1_epi32((1 << 22) - 1));
    let (offset, never, never_bucket) =
        (_mm256_set1_epi16(2 * 127 + 1), _mm256_set1_epi16(TICKS_NEVER as i16), _mm256_set1_epi16(AGE_NEVER as i16));
    let mut halves = [zero; 2];
    let mut edges = zero;
    for (half, out) in halves.iter_mut().enumerate() {
        // SAFETY: 16 ticks from `16 * half` lie inside the row of 32.
        let tick = unsafe { _mm256_loadu_si256(ticks.as_ptr().add(HALF * half).cast()) };
        let sum = _mm256_min_epu16(_mm256_adds_epu16(tick, since), past_last);
        // Widened in lane order (the low and high four of each 128-bit lane) and packed back
        // the same way, so the pixels keep their places.
        let bits = [_mm256_unpacklo_epi16(sum, zero), _mm256_unpackhi_epi16(sum, zero)]
            .map(|wide| _mm256_castps_si256(_mm256_max_ps(_mm256_cvtepi32_ps(wide), least)));
        let edge = bits.map(|b| _mm256_cmpeq_epi32(_mm256_and_si256(b, mantissa), zero));
        let exponent = _mm256_packus_epi32(_mm256_srli_epi32::<22>(bits[0]), _mm256_srli_epi32::<22>(bits[1]));
        let edge = _mm256_packs_epi32(edge[0], edge[1]);
        edges = _mm256_or_si256(edges, edge);
        // The bucket below the sum: one less at an edge (where `edge` is -1).
        let bucket = _mm256_sub_epi16(_mm256_add_epi16(exponent, edge), offset);
        *out = _mm256_blendv_epi8(bucket, never_bucket, _mm256_cmpeq_epi16(tick, never));
    }
    // Packing two vectors interleaves their 128-bit lanes; the permutation puts them back.
    let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(halves[0], halves[1]));
    // SAFETY: 32 bytes, the whole row.
    unsafe { _mm256_storeu_si256(buckets.as_mut_ptr().cast(), packed) };
    _mm256_testz_si256(edges, edges) == 1
}

impl History {
    /// For each event, on the `size`×`size` grid laid out like [`History::windows`], the age
    /// bucket ([`age_bucket`]) of the time from each pixel's last event before it to the event;
    /// [`AGE_NEVER`] for a pixel without one, [`AGE_OUTSIDE`] off the canvas. `(B, size, size)`.
    pub fn age_buckets(&self, ids: &[i64], size: usize) -> Result<Vec<u8>> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return self.per_event(ids, grid_cells(size)?, |scratch: &mut AgeScratch, id, out| unsafe {
                self.ages_into_avx2(id, size, out, scratch)
            });
        }
        self.portable_age_buckets(ids, size)
    }

    /// [`History::age_buckets`] for any CPU: what runs where AVX2 is missing (and what the tests
    /// compare the AVX2 build with).
    pub(crate) fn portable_age_buckets(&self, ids: &[i64], size: usize) -> Result<Vec<u8>> {
        self.per_event(ids, grid_cells(size)?, |scratch: &mut AgeScratch, id, out| self.ages_into(id, size, out, scratch, bucket_row))
    }

    /// [`History::ages_into`] compiled for AVX2, whose vectors bucket a checkpoint row in a
    /// fraction of the instructions, with [`bucket_row_avx2`] (each measured faster: see
    /// BENCHMARKS.md).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn ages_into_avx2(&self, id: usize, size: usize, out: &mut [u8], scratch: &mut AgeScratch) {
        // SAFETY: the caller's CPU has AVX2.
        self.ages_into(id, size, out, scratch, |ticks, since_ticks, buckets| unsafe { bucket_row_avx2(ticks, since_ticks, buckets) })
    }

    /// The age window of event `id`, from the ages index (see [`crate::index`]): each age
    /// tile's checkpoint ticks for the rows under the window, the rests where they decide, then
    /// the tile's events since its checkpoint, all into a scratch region of buckets, cropped at
    /// the end; each checkpoint row through `bucket_row` ([`bucket_row`] or its AVX2 form).
    /// Inlined into both builds.
    #[inline(always)]
    fn ages_into(
        &self,
        id: usize,
        size: usize,
        out: &mut [u8],
        scratch: &mut AgeScratch,
        bucket_row: impl Fn(&[u16; AGE_TILE], u32, &mut [u8; AGE_TILE]) -> bool,
    ) {
        const CELLS: usize = AGE_TILE * AGE_TILE;
        let under = self.under_tiles(id, size, AGE_TILE);
        let Under { xs, ys, x0, y0, stride, .. } = under.clone();
        let AgeScratch { region, tiles, undecided } = scratch;
        region.resize(under.cells(), AGE_NEVER);
        let timestamps = self.timestamps();
        let (t, first) = (timestamps[id], timestamps[0]);
        let (ticks, rests, times, pixels, event_ids) = (
            self.age_change_ticks.as_slice(),
            self.age_change_rests.as_slice(),
            self.age_tile_event_times.as_slice(),
            self.age_tile_event_pixels.as_slice(),
            self.age_tile_event_ids.as_slice(),
        );
        let (tile_offsets, checkpoint_offsets) = (self.age_tile_offsets.as_slice(), self.age_checkpoint_offsets.as_slice());
        // First find every tile's checkpoint and start loading what the window needs of it (the
        // rows under the window, the events since), so that the cache misses of all tiles overlap.
        tiles.clear();
        if !xs.is_empty() && !ys.is_empty() {
            for ty in ys.start / AGE_TILE..ys.end.div_ceil(AGE_TILE) {
                for tx in xs.start / AGE_TILE..xs.end.div_ceil(AGE_TILE) {
                    let tile = ty * self.age_tiles_x + tx;
                    let checkpoints = checkpoint_offsets[tile] as usize..checkpoint_offsets[tile + 1] as usize;
                    let done = self.age_checkpoint_event_ids.as_slice()[checkpoints.clone()].partition_point(|&e| (e as usize) < id);
                    let start = tile_offsets[tile] as usize + done * AGE_CHECKPOINT_EVERY;
                    let block = start..(start + AGE_CHECKPOINT_EVERY).min(tile_offsets[tile + 1] as usize);
                    let rows = ys.start.max(ty * AGE_TILE) - ty * AGE_TILE..ys.end.min((ty + 1) * AGE_TILE) - ty * AGE_TILE;
                    let checkpoint = done.checked_sub(1).map(|d| (checkpoints.start + d) * CELLS);
                    if let Some(at) = checkpoint {
                        prefetch(&ticks[at + rows.start * AGE_TILE..at + rows.end * AGE_TILE]);
                    }
                    // The checkpoint's own time comes first: its last event ends the block before.
                    prefetch(&times[block.start.saturating_sub(1)..block.end]);
                    prefetch(&pixels[block.clone()]);
                    let corner = (ty * AGE_TILE - y0) * stride + tx * AGE_TILE - x0;
                    tiles.push(AgeTile { checkpoint, block, rows, corner });
                }
            }
        }
        undecided.clear();
        for AgeTile { checkpoint, block, rows, corner } in tiles.iter() {
            let Some(at) = *checkpoint else {
                for row in rows.clone() {
                    region[corner + row * stride..][..AGE_TILE].fill(AGE_NEVER);
                }
                continue;
            };
            // The time since the checkpoint, in whole ticks and the milliseconds left (never
            // negative: the timestamps ascend with the ids, which `verify` checks).
            let since = (t - self.age_event_time(block.start - 1, times[block.start - 1], first)).max(0);
            let (since_ticks, since_left) = ((since / AGE_TICK_MS).min(TICKS_LONG_AGO as i64) as u32, (since % AGE_TICK_MS) as u16);
            for row in rows.clone() {
                let from = at + row * AGE_TILE;
                let row_ticks: &[u16; AGE_TILE] = ticks[from..from + AGE_TILE].try_into().expect("a tile row");
                let buckets: &mut [u8; AGE_TILE] = (&mut region[corner + row * stride..][..AGE_TILE]).try_into().expect("a tile row");
                if !bucket_row(row_ticks, since_ticks, buckets) {
                    prefetch(&rests[from..from + AGE_TILE]);
                    undecided.push((from, corner + row * stride, since_ticks, since_left));
                }
            }
        }
        for &(from, row, since_ticks, since_left) in undecided.iter() {
            let row_ticks = ticks[from..from + AGE_TILE].iter().zip(&rests[from..from + AGE_TILE]);
            // Every pixel bucketed, then the never-placed ones chosen out: a loop without a
            // branch, which vectorises (faster than skipping them: see BENCHMARKS.md).
            for (bucket, (&tick, &left)) in region[row..row + AGE_TILE].iter_mut().zip(row_ticks) {
                let carry = u32::from(left as u32 + since_left as u32 >= AGE_TICK_MS as u32);
                let aged = tick_bucket(tick as u32 + since_ticks + carry);
                *bucket = if tick == TICKS_NEVER { AGE_NEVER } else { aged };
            }
        }
        // Then the tiles' events since their checkpoints, up to the event: a block's times
        // ascend, so those at earlier times come before it and those at later times after; only at
        // its own time (or where both times ran out, 49.7 days on) do the ids tell.
        let event_time = event_time(t, first);
        for AgeTile { block, corner, .. } in tiles.iter() {
            let (pixels, times) = (&pixels[block.clone()], &times[block.clone()]);
            let mut before = times.iter().filter(|&&time| time < event_time).count();
            while times.get(before) == Some(&event_time) && (event_ids[block.start + before] as usize) < id {
                before += 1;
            }
            let set = |region: &mut [u8], pixel: u16, bucket: u8| {
                let pixel = pixel as usize;
                region[corner + pixel / AGE_TILE * stride + pixel % AGE_TILE] = bucket;
            };
            if event_time == NEVER {
                for (position, (&pixel, &time)) in block.clone().zip(pixels[..before].iter().zip(&times[..before])) {
                    set(region, pixel, age_bucket(t - self.age_event_time(position, time, first)));
                }
            } else {
                // Every time before the event's is a plain one, and the age in whole ticks has
                // the bucket of the age (see `tick_bucket`).
                for (&pixel, &time) in pixels[..before].iter().zip(&times[..before]) {
                    set(region, pixel, tick_bucket(event_time.saturating_sub(time) >> AGE_TICK_MS.trailing_zeros()));
                }
            }
        }
        under.crop(region, out, AGE_OUTSIDE);
    }

    /// The timestamp of the event at `position` in the ages index, whose
    /// `age_tile_event_times` entry is `time` (the dataset's first event at `first`): from the
    /// timestamp column where the times ran out.
    #[inline(always)]
    fn age_event_time(&self, position: usize, time: u32, first: i64) -> i64 {
        match time {
            NEVER => self.timestamps()[self.age_tile_event_ids.as_slice()[position] as usize],
            time => first + time as i64,
        }
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
    /// The age bucket of each pixel of the tiles under the window, row-major.
    region: Vec<u8>,
    /// The age tiles under the window.
    tiles: Vec<AgeTile>,
    /// The checkpoint rows whose rests decide: where their ticks start, where the row starts in
    /// the region, and the time from the checkpoint to the event (whole ticks, milliseconds
    /// left).
    undecided: Vec<(usize, usize, u32, u16)>,
}

/// An age tile under a window.
struct AgeTile {
    /// Where its checkpoint's ticks start (none before its first).
    checkpoint: Option<usize>,
    /// The positions of its events since.
    block: Range<usize>,
    /// Its rows under the window.
    rows: Range<usize>,
    /// Where it starts in the scratch region.
    corner: usize,
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
    fn the_bucket_below_a_tick_and_its_edges() {
        for ticks in 1..u16::MAX as u32 * 2 {
            let (bucket, edge) = bucket_below(ticks);
            assert_eq!(bucket, tick_bucket(ticks - 1), "ticks {ticks}");
            assert_eq!(edge, tick_bucket(ticks) != tick_bucket(ticks - 1), "ticks {ticks}");
        }
    }

    /// Every tick value (and rows where some are never placed on) at times since the checkpoint
    /// around every edge and at the extremes: the same buckets and the same verdict on the rests.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_rows_match_the_portable_rows() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let mut since_values =
            vec![0, 1, 2, 3, 4, 5, 7, 100, 4_095, 4_096, 16_383, 32_766, 32_767, 32_768, 32_769, 65_535, 65_536, 1 << 20];
        since_values.extend((1..16).flat_map(|k| [(1 << k) - 2, (3 << k) / 2 - 2, (1 << k) - 1]));
        let every_tick: Vec<u16> = (0..=u16::MAX).collect();
        let mixed: Vec<u16> = (0..=u16::MAX).map(|t| if t % 3 == 0 { TICKS_NEVER } else { t / 2 }).collect();
        for since_ticks in since_values {
            for row in every_tick.chunks_exact(AGE_TILE).chain(mixed.chunks_exact(AGE_TILE)) {
                let row: &[u16; AGE_TILE] = row.try_into().unwrap();
                let (mut portable, mut avx2) = ([0u8; AGE_TILE], [0u8; AGE_TILE]);
                let decided = bucket_row(row, since_ticks, &mut portable);
                // SAFETY: the CPU has AVX2 (checked above).
                let decided_avx2 = unsafe { bucket_row_avx2(row, since_ticks, &mut avx2) };
                assert_eq!((avx2, decided_avx2), (portable, decided), "ticks from {}, {since_ticks} ticks since", row[0]);
            }
        }
    }

    #[test]
    fn a_tick_has_one_bucket() {
        // Every tick up to long ago and beyond, with the first, a middle and the last millisecond
        // of it: tick_bucket is age_bucket of all of them.
        for tick in 0..TICKS_LONG_AGO as i64 + 3 {
            for left in [0, 1, 2_047, AGE_TICK_MS - 1] {
                let age = tick * AGE_TICK_MS + left;
                assert_eq!(tick_bucket(tick as u32), age_bucket(age), "age {age}");
            }
        }
        for ticks in [u16::MAX as u32, TICKS_LONG_AGO as u32 * 3 + 1] {
            assert_eq!(tick_bucket(ticks), AGE_BUCKETS - 1);
        }
    }
}

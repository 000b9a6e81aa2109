//! Per-user features over the events before a moment: how much, where, when, which colors, and
//! how each user plays (how often their pixel changed the canvas, how soon it was overwritten,
//! how regular their rhythm is). The events are flagged from the tile index, then grouped by
//! buckets of users in two streaming passes ([`Grouped`]); each bucket is sorted by user in a
//! core's cache and its users summarised there, the buckets in parallel. Only events with a
//! timestamp before `until` count, so a model given these features for its training period sees
//! nothing of the future.

use crate::error::{filled, huge_pages, reserve, Error, Result};
use crate::history::users::{CHANGED, OVERWRITTEN};
use crate::history::History;
use crate::palette::N_COLORS;
use crate::pool::Disjoint;
use rayon::prelude::*;

/// "Overwritten soon": the next event at the pixel came within this many milliseconds.
pub const OVERWRITTEN_WITHIN_MS: i64 = 5 * 60_000;

/// Gaps (consecutive placements) a user needs for a [`UserFeatures::gap_spread`].
pub const MIN_GAPS_FOR_SPREAD: usize = 4;

/// `first_ms` and `last_ms` of a user without events before `until`.
pub const NO_EVENT: i64 = i64::MIN;

/// One value per user id (`U` of them), or 32 per user for `colors`; the floating columns are
/// NaN for a user without events before `until` (and `median_gap_ms` for a user with one).
#[derive(Clone, Debug, Default)]
pub struct UserFeatures {
    /// Placements before `until`.
    pub count: Vec<u32>,
    /// Timestamps (ms) of the first and the last of them; [`NO_EVENT`] without any.
    pub first_ms: Vec<i64>,
    pub last_ms: Vec<i64>,
    /// Mean and (population) standard deviation of their pixels' columns and rows.
    pub mean_x: Vec<f64>,
    pub std_x: Vec<f64>,
    pub mean_y: Vec<f64>,
    pub std_y: Vec<f64>,
    /// Mean timestamp (ms).
    pub mean_ms: Vec<f64>,
    /// `(U, 32)`: placements of each palette color.
    pub colors: Vec<u32>,
    /// Distinct pixels placed on.
    pub distinct_pixels: Vec<u32>,
    /// Share of the placements that changed their pixel's color.
    pub changed_share: Vec<f64>,
    /// Median time between consecutive placements (ms): the cooldown-regular and the bots show.
    pub median_gap_ms: Vec<f64>,
    /// How irregular those times are: (third quartile − first quartile) / median, quartiles by
    /// the nearest rank below (numpy's `method="lower"`); NaN with fewer than
    /// [`MIN_GAPS_FOR_SPREAD`] gaps. Near 0 for a bot placing every cooldown.
    pub gap_spread: Vec<f64>,
    /// Share of the placements whose pixel the next event (before `until`) changed within
    /// [`OVERWRITTEN_WITHIN_MS`].
    pub overwritten_share: Vec<f64>,
    /// The events counted: those with a timestamp before `until`, ids `0 .. events`.
    pub events: usize,
}

/// The features of every user of `history` over the events with timestamp < `until_ms` (all
/// events for `None`).
pub fn features(history: &History, until_ms: Option<i64>) -> Result<UserFeatures> {
    let events = until_ms.map_or(history.len(), |until| history.timestamps().partition_point(|&t| t < until));
    let users = history.users();
    let flags = history.pixel_flags(events, OVERWRITTEN_WITHIN_MS)?;
    let grouped = Grouped::new(history, events, &flags)?;
    drop(flags);
    let mut out = UserFeatures {
        count: filled(users, 0, "the user features")?,
        first_ms: filled(users, NO_EVENT, "the user features")?,
        last_ms: filled(users, NO_EVENT, "the user features")?,
        mean_x: filled(users, f64::NAN, "the user features")?,
        std_x: filled(users, f64::NAN, "the user features")?,
        mean_y: filled(users, f64::NAN, "the user features")?,
        std_y: filled(users, f64::NAN, "the user features")?,
        mean_ms: filled(users, f64::NAN, "the user features")?,
        colors: filled(users * N_COLORS, 0, "the user features")?,
        distinct_pixels: filled(users, 0, "the user features")?,
        changed_share: filled(users, f64::NAN, "the user features")?,
        median_gap_ms: filled(users, f64::NAN, "the user features")?,
        gap_spread: filled(users, f64::NAN, "the user features")?,
        overwritten_share: filled(users, f64::NAN, "the user features")?,
        events,
    };
    let columns = Columns::new(&mut out);
    history.guarded(|| {
        (0..grouped.buckets()).into_par_iter().for_each_init(
            || (Bucket::default(), Scratch::new(history.width(), history.height())),
            |(sorted, scratch), bucket| {
                let first_user = bucket << grouped.shift;
                grouped.sort_bucket(bucket, sorted);
                for local in 0..(1usize << grouped.shift).min(users.saturating_sub(first_user)) {
                    let mine = &sorted.records[sorted.offsets[local]..sorted.offsets[local + 1]];
                    if !mine.is_empty() {
                        let summary = summarise(mine, scratch);
                        // SAFETY: each user belongs to one bucket, summarised by one job.
                        unsafe { columns.write(first_user + local, &summary) };
                    }
                }
            },
        )
    })?;
    Ok(out)
}

/// One user's features from their events `mine` (not empty), in time order.
fn summarise(mine: &[Record], scratch: &mut Scratch) -> Summary {
    let n = mine.len();
    let mut summary = Summary { count: n as u32, median_gap_ms: f64::NAN, gap_spread: f64::NAN, ..Summary::default() };
    let first = mine[0].timestamp_ms;
    summary.first_ms = first;
    summary.last_ms = mine[n - 1].timestamp_ms;
    // Two passes (the means, then the squared deviations from them): exact to rounding.
    let (mut sum_x, mut sum_y, mut sum_t) = (0u64, 0u64, 0i64);
    let (mut changed, mut overwritten) = (0usize, 0usize);
    for r in mine {
        sum_x += r.x as u64;
        sum_y += r.y as u64;
        // Offsets from the first timestamp keep the sum exact in an i64.
        sum_t += r.timestamp_ms - first;
        summary.colors[r.color as usize % N_COLORS] += 1;
        changed += (r.flags & CHANGED != 0) as usize;
        overwritten += (r.flags & OVERWRITTEN != 0) as usize;
    }
    let (mean_x, mean_y) = (sum_x as f64 / n as f64, sum_y as f64 / n as f64);
    let (mut square_x, mut square_y) = (0f64, 0f64);
    for r in mine {
        square_x += (r.x as f64 - mean_x).powi(2);
        square_y += (r.y as f64 - mean_y).powi(2);
    }
    summary.mean_x = mean_x;
    summary.std_x = (square_x / n as f64).sqrt();
    summary.mean_y = mean_y;
    summary.std_y = (square_y / n as f64).sqrt();
    summary.mean_ms = first as f64 + sum_t as f64 / n as f64;
    summary.changed_share = changed as f64 / n as f64;
    summary.overwritten_share = overwritten as f64 / n as f64;
    summary.distinct_pixels = scratch.placed.distinct(mine.iter().map(|r| (r.x, r.y)));
    if n >= 2 {
        let gaps = mine.windows(2).map(|w| w[1].timestamp_ms - w[0].timestamp_ms);
        // In 32 bits when they fit (a user's span under 49 days): half the memory to select in.
        let [q1, lower, upper, q3] = if summary.last_ms - first <= u32::MAX as i64 {
            scratch.short_gaps.clear();
            scratch.short_gaps.extend(gaps.map(|gap| gap as u32));
            quartiles(&mut scratch.short_gaps).map(i64::from)
        } else {
            scratch.gaps.clear();
            scratch.gaps.extend(gaps);
            quartiles(&mut scratch.gaps)
        };
        let m = n - 1;
        summary.median_gap_ms = (lower as f64 + upper as f64) / 2.0;
        if m >= MIN_GAPS_FOR_SPREAD {
            summary.gap_spread = (q3 - q1) as f64 / summary.median_gap_ms.max(1.0);
        }
    }
    summary
}

/// About how many events a bucket of users holds: its records, and their copy sorted by user,
/// then stay in a core's cache while its users are summarised.
const BUCKET_EVENTS: usize = 1 << 14;

/// The events (ids `0 .. events`) grouped by buckets of `2^shift` consecutive user ids, in time
/// order inside each bucket. Two streaming passes build it (count the events of each bucket in
/// each run of events, then copy each event to its bucket's next slot), each run of events on
/// its own core; a bucket is later sorted by user in cache ([`Grouped::sort_bucket`]). Writing
/// each event straight to its user's slot instead misses the cache at every event.
struct Grouped {
    records: Vec<Record>,
    /// Bucket `b` holds `records[starts[b] .. starts[b + 1]]`.
    starts: Vec<usize>,
    shift: u32,
}

impl Grouped {
    fn new(history: &History, events: usize, flags: &[u8]) -> Result<Grouped> {
        let users = history.users();
        let (timestamps, user_ids, colors, xs, ys) =
            (history.timestamps(), &history.user_ids()[..events], history.colors(), history.xs(), history.ys());
        // 2^shift users hold about BUCKET_EVENTS events; at most 2^16, a user's place in its
        // bucket is a u16.
        let per_bucket = (BUCKET_EVENTS as f64 * users as f64 / events.max(1) as f64).max(1.0);
        let shift = (per_bucket.log2().floor() as u32).min(16);
        let buckets = (users >> shift) + 1;
        let run = (events / (4 * rayon::current_num_threads().max(1))).max(1 << 16);
        let runs: Vec<std::ops::Range<usize>> = (0..events).step_by(run).map(|start| start..(start + run).min(events)).collect();
        let counts: Vec<Vec<usize>> = history.guarded(|| {
            runs.par_iter()
                .map(|range| {
                    let mut count = filled(buckets, 0usize, "grouping the events by user")?;
                    for &user in &user_ids[range.clone()] {
                        if user as usize >= users {
                            return Err(bad_user(user, users));
                        }
                        count[(user >> shift) as usize] += 1;
                    }
                    Ok(count)
                })
                .collect::<Result<Vec<_>>>()
        })??;
        // Bucket by bucket, the runs in order: each bucket's events stay in time order.
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut cursors = vec![vec![0usize; buckets]; runs.len()];
        let mut next = 0;
        for bucket in 0..buckets {
            starts.push(next);
            for (cursor, count) in cursors.iter_mut().zip(&counts) {
                cursor[bucket] = next;
                next += count[bucket];
            }
        }
        starts.push(next);
        let mut records = Vec::new();
        reserve(&mut records, events, "grouping the events by user")?;
        huge_pages(&records);
        let mask = (1u32 << shift) - 1;
        let ends: Vec<Vec<usize>> = {
            let out = Disjoint::new(&mut records.spare_capacity_mut()[..events]);
            history.guarded(|| {
                runs.par_iter()
                    .zip(cursors.clone())
                    .map(|(range, mut cursor)| {
                        for e in range.clone() {
                            let user = user_ids[e];
                            let slot = &mut cursor[(user >> shift) as usize];
                            let record = Record {
                                timestamp_ms: timestamps[e],
                                x: xs[e],
                                y: ys[e],
                                color: colors[e],
                                flags: flags[e],
                                local: (user & mask) as u16,
                            };
                            // SAFETY: each run writes its own share of each bucket's slots.
                            unsafe { out.at(*slot).write(record) };
                            *slot += 1;
                        }
                        cursor
                    })
                    .collect()
            })?
        };
        // Each run filled its share of each bucket exactly, and the shares tile `0 .. events`
        // (the prefix sums above): every record is written.
        let exact = (0..runs.len()).all(|r| (0..buckets).all(|b| ends[r][b] == cursors[r][b] + counts[r][b]));
        if !exact {
            return Err(Error::Internal("the events changed while they were grouped by user".into()));
        }
        // SAFETY: all `events` records are written (checked above).
        unsafe { records.set_len(events) };
        Ok(Grouped { records, starts, shift })
    }

    fn buckets(&self) -> usize {
        self.starts.len() - 1
    }

    /// Sorts the events of bucket `bucket` by user, into `sorted`.
    fn sort_bucket(&self, bucket: usize, sorted: &mut Bucket) {
        let mine = &self.records[self.starts[bucket]..self.starts[bucket + 1]];
        let offsets = &mut sorted.offsets;
        offsets.clear();
        offsets.resize((1 << self.shift) + 1, 0);
        for r in mine {
            offsets[r.local as usize + 1] += 1;
        }
        for local in 1..offsets.len() {
            offsets[local] += offsets[local - 1];
        }
        sorted.cursor.clear();
        sorted.cursor.extend_from_slice(&offsets[..offsets.len() - 1]);
        sorted.records.clear();
        sorted.records.resize(mine.len(), Record::default());
        for r in mine {
            let slot = &mut sorted.cursor[r.local as usize];
            sorted.records[*slot] = *r;
            *slot += 1;
        }
    }
}

/// The columns of [`UserFeatures`], written by the jobs summarising users (each user's row by
/// one job).
struct Columns<'a> {
    count: Disjoint<'a, u32>,
    first_ms: Disjoint<'a, i64>,
    last_ms: Disjoint<'a, i64>,
    mean_x: Disjoint<'a, f64>,
    std_x: Disjoint<'a, f64>,
    mean_y: Disjoint<'a, f64>,
    std_y: Disjoint<'a, f64>,
    mean_ms: Disjoint<'a, f64>,
    colors: Disjoint<'a, u32>,
    distinct_pixels: Disjoint<'a, u32>,
    changed_share: Disjoint<'a, f64>,
    median_gap_ms: Disjoint<'a, f64>,
    gap_spread: Disjoint<'a, f64>,
    overwritten_share: Disjoint<'a, f64>,
}

impl<'a> Columns<'a> {
    fn new(f: &'a mut UserFeatures) -> Self {
        Columns {
            count: Disjoint::new(&mut f.count),
            first_ms: Disjoint::new(&mut f.first_ms),
            last_ms: Disjoint::new(&mut f.last_ms),
            mean_x: Disjoint::new(&mut f.mean_x),
            std_x: Disjoint::new(&mut f.std_x),
            mean_y: Disjoint::new(&mut f.mean_y),
            std_y: Disjoint::new(&mut f.std_y),
            mean_ms: Disjoint::new(&mut f.mean_ms),
            colors: Disjoint::new(&mut f.colors),
            distinct_pixels: Disjoint::new(&mut f.distinct_pixels),
            changed_share: Disjoint::new(&mut f.changed_share),
            median_gap_ms: Disjoint::new(&mut f.median_gap_ms),
            gap_spread: Disjoint::new(&mut f.gap_spread),
            overwritten_share: Disjoint::new(&mut f.overwritten_share),
        }
    }

    /// # Safety
    /// No other job writes user `user`'s row.
    unsafe fn write(&self, user: usize, s: &Summary) {
        // SAFETY: the caller's promise.
        unsafe {
            *self.count.at(user) = s.count;
            *self.first_ms.at(user) = s.first_ms;
            *self.last_ms.at(user) = s.last_ms;
            *self.mean_x.at(user) = s.mean_x;
            *self.std_x.at(user) = s.std_x;
            *self.mean_y.at(user) = s.mean_y;
            *self.std_y.at(user) = s.std_y;
            *self.mean_ms.at(user) = s.mean_ms;
            for (c, &n) in s.colors.iter().enumerate() {
                *self.colors.at(user * N_COLORS + c) = n;
            }
            *self.distinct_pixels.at(user) = s.distinct_pixels;
            *self.changed_share.at(user) = s.changed_share;
            *self.median_gap_ms.at(user) = s.median_gap_ms;
            *self.gap_spread.at(user) = s.gap_spread;
            *self.overwritten_share.at(user) = s.overwritten_share;
        }
    }
}

/// One user's row of [`UserFeatures`].
#[derive(Default)]
struct Summary {
    count: u32,
    first_ms: i64,
    last_ms: i64,
    mean_x: f64,
    std_x: f64,
    mean_y: f64,
    std_y: f64,
    mean_ms: f64,
    colors: [u32; N_COLORS],
    distinct_pixels: u32,
    changed_share: f64,
    median_gap_ms: f64,
    gap_spread: f64,
    overwritten_share: f64,
}

/// One event as the summaries read it.
#[derive(Clone, Copy, Default)]
struct Record {
    timestamp_ms: i64,
    x: u16,
    y: u16,
    color: u8,
    /// [`CHANGED`], [`OVERWRITTEN`] (see [`History::pixel_flags`]).
    flags: u8,
    /// The user's place in its bucket of [`Grouped`].
    local: u16,
}

/// A bucket's events sorted by user ([`Grouped::sort_bucket`]): user `(bucket << shift) + local`
/// has `records[offsets[local] .. offsets[local + 1]]`, in time order.
#[derive(Default)]
struct Bucket {
    records: Vec<Record>,
    offsets: Vec<usize>,
    cursor: Vec<usize>,
}

/// What summarising one user needs, reused from user to user.
struct Scratch {
    placed: PixelSet,
    gaps: Vec<i64>,
    short_gaps: Vec<u32>,
}

impl Scratch {
    fn new(width: usize, height: usize) -> Self {
        Scratch { placed: PixelSet { width, bits: vec![0; (width * height).div_ceil(64)] }, gaps: Vec::new(), short_gaps: Vec::new() }
    }
}

/// A set of the canvas's pixels (`y * width + x`), a bit each: about 0.5 MB for 2000×2000, so it
/// stays in a core's cache, and counting a user's distinct pixels costs a bit test per event
/// where sorting them costs `n log n`.
struct PixelSet {
    width: usize,
    bits: Vec<u64>,
}

impl PixelSet {
    /// How many distinct pixels `pixels` (`(x, y)`) names; the set is empty again afterwards.
    fn distinct(&mut self, pixels: impl Iterator<Item = (u16, u16)> + Clone) -> u32 {
        let width = self.width;
        let pixels = pixels.map(|(x, y)| y as usize * width + x as usize);
        let mut distinct = 0;
        for pixel in pixels.clone() {
            let (word, bit) = (pixel / 64, 1u64 << (pixel % 64));
            distinct += (self.bits[word] & bit == 0) as u32;
            self.bits[word] |= bit;
        }
        for pixel in pixels {
            self.bits[pixel / 64] = 0;
        }
        distinct
    }
}

/// The values of ranks `(m − 1) / 4`, `(m − 1) / 2`, `m / 2` and `3 (m − 1) / 4` among the `m`
/// values (not empty), as sorting them would give: the first quartile, the two middle values
/// and the third quartile. A sort for a few values, else a selection of the middle and one in
/// each half it leaves.
fn quartiles<T: Ord + Copy>(values: &mut [T]) -> [T; 4] {
    let m = values.len();
    let ranks = [(m - 1) / 4, (m - 1) / 2, m / 2, 3 * (m - 1) / 4];
    if m <= 32 {
        values.sort_unstable();
        return ranks.map(|rank| values[rank]);
    }
    let (below, &mut upper, _) = values.select_nth_unstable(ranks[2]);
    let lower = if ranks[1] == ranks[2] { upper } else { *below.iter().max().expect("m > 32") };
    let q1 = *below.select_nth_unstable(ranks[0]).1;
    let q3 = *values[ranks[2]..].select_nth_unstable(ranks[3] - ranks[2]).1;
    [q1, lower, upper, q3]
}

fn bad_user(user: u32, users: usize) -> Error {
    Error::Index(format!("an event has user id {user}, beyond the {users} users of the dataset"))
}

#[cfg(test)]
mod tests {
    use super::{quartiles, PixelSet};
    use crate::random::Rng;

    /// Against sorting, for every count up to 200 (the sort and the selections) and values
    /// with many ties.
    #[test]
    fn quartiles_are_those_of_the_sorted_values() {
        let mut rng = Rng::new(7, 0, 0);
        for m in 1..200usize {
            let values: Vec<i64> = (0..m).map(|_| rng.below(if m % 2 == 0 { 5 } else { 1000 }) as i64).collect();
            let mut sorted = values.clone();
            sorted.sort();
            let ranks = [(m - 1) / 4, (m - 1) / 2, m / 2, 3 * (m - 1) / 4];
            assert_eq!(quartiles(&mut values.clone()), ranks.map(|r| sorted[r]), "{m} values");
        }
    }

    #[test]
    fn pixel_set_counts_distinct_pixels_and_empties_itself() {
        let mut rng = Rng::new(3, 0, 0);
        let mut set = PixelSet { width: 70, bits: vec![0; (70 * 30usize).div_ceil(64)] };
        for n in [0usize, 1, 5, 300] {
            let pixels: Vec<(u16, u16)> = (0..n).map(|_| (rng.below(70) as u16, rng.below(30) as u16)).collect();
            let mut unique = pixels.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(set.distinct(pixels.iter().copied()), unique.len() as u32);
            assert!(set.bits.iter().all(|&word| word == 0));
        }
    }
}

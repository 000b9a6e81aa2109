//! Per-user features over the events before a moment: how much, where, when, which colors, and
//! how each user plays (how often their pixel changed the canvas, how soon it was overwritten,
//! how regular their rhythm is). The events are flagged from the tile index and grouped by user,
//! both in parallel; the users are then summarised in parallel, each reading its events in
//! sequence. Only events with a timestamp before `until` count, so a model given
//! these features for its training period sees nothing of the future.

use crate::error::{filled, Error, Result};
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
    let (timestamps, user_ids, colors, xs, ys) = (history.timestamps(), history.user_ids(), history.colors(), history.xs(), history.ys());
    let width = history.width();

    let flags = history.pixel_flags(events, OVERWRITTEN_WITHIN_MS)?;
    // Group the events by user: user u's events go to slots offsets[u] .. offsets[u + 1], each
    // at its rank among them (kept in the index), so every event knows its slot and the events
    // are placed in parallel; each user's events then stay in time order, in records holding
    // what the summaries read, in sequence.
    let mut offsets = filled(users + 1, 0usize, "grouping the events by user")?;
    for &user in &user_ids[..events] {
        *offsets.get_mut(user as usize + 1).ok_or_else(|| bad_user(user, users))? += 1;
    }
    for u in 1..offsets.len() {
        offsets[u] += offsets[u - 1];
    }
    let ranks = history.user_ranks()?;
    let mut records = filled(events, Record::default(), "grouping the events by user")?;
    {
        let out = Disjoint::new(&mut records);
        history.guarded(|| {
            (0..events).into_par_iter().with_min_len(1 << 16).for_each(|e| {
                let slot = offsets[user_ids[e] as usize] + ranks[e] as usize;
                let pixel = (ys[e] as usize * width + xs[e] as usize) as u32;
                // SAFETY: (user, rank) pairs are distinct, so no two events share a slot.
                unsafe { *out.at(slot) = Record { timestamp_ms: timestamps[e], pixel, color: colors[e], flags: flags[e] } };
            })
        })?;
    }
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
    let summarise = |user: usize, scratch: &mut Scratch| -> Summary {
        let mine = &records[offsets[user]..offsets[user + 1]];
        let n = mine.len();
        let mut summary = Summary { count: n as u32, median_gap_ms: f64::NAN, gap_spread: f64::NAN, ..Summary::default() };
        if n == 0 {
            return summary;
        }
        let first = mine[0].timestamp_ms;
        summary.first_ms = first;
        summary.last_ms = mine[n - 1].timestamp_ms;
        // Two passes (the means, then the squared deviations from them): exact to rounding.
        let (mut sum_x, mut sum_y, mut sum_t) = (0u64, 0u64, 0i64);
        for r in mine {
            sum_x += r.pixel as u64 % width as u64;
            sum_y += r.pixel as u64 / width as u64;
            // Offsets from the first timestamp keep the sum exact in an i64.
            sum_t += r.timestamp_ms - first;
        }
        let (mean_x, mean_y) = (sum_x as f64 / n as f64, sum_y as f64 / n as f64);
        let (mut square_x, mut square_y) = (0f64, 0f64);
        for r in mine {
            square_x += ((r.pixel as usize % width) as f64 - mean_x).powi(2);
            square_y += ((r.pixel as usize / width) as f64 - mean_y).powi(2);
        }
        summary.mean_x = mean_x;
        summary.std_x = (square_x / n as f64).sqrt();
        summary.mean_y = mean_y;
        summary.std_y = (square_y / n as f64).sqrt();
        summary.mean_ms = first as f64 + sum_t as f64 / n as f64;
        let (mut changed, mut overwritten) = (0usize, 0usize);
        for r in mine {
            summary.colors[r.color as usize % N_COLORS] += 1;
            changed += (r.flags & CHANGED != 0) as usize;
            overwritten += (r.flags & OVERWRITTEN != 0) as usize;
        }
        summary.changed_share = changed as f64 / n as f64;
        summary.overwritten_share = overwritten as f64 / n as f64;
        scratch.pixels.clear();
        scratch.pixels.extend(mine.iter().map(|r| r.pixel));
        scratch.pixels.sort_unstable();
        scratch.pixels.dedup();
        summary.distinct_pixels = scratch.pixels.len() as u32;
        if n >= 2 {
            scratch.gaps.clear();
            scratch.gaps.extend(mine.windows(2).map(|w| w[1].timestamp_ms - w[0].timestamp_ms));
            summary.median_gap_ms = median(&mut scratch.gaps);
            let m = scratch.gaps.len();
            if m >= MIN_GAPS_FOR_SPREAD {
                let q1 = *scratch.gaps.select_nth_unstable((m - 1) / 4).1;
                let q3 = *scratch.gaps.select_nth_unstable(3 * (m - 1) / 4).1;
                summary.gap_spread = (q3 - q1) as f64 / summary.median_gap_ms.max(1.0);
            }
        }
        summary
    };
    // Users are summarised in parallel a block at a time, then written into the columns.
    const BLOCK: usize = 1 << 16;
    for start in (0..users).step_by(BLOCK) {
        let end = (start + BLOCK).min(users);
        let summaries: Vec<Summary> =
            history.guarded(|| (start..end).into_par_iter().map_init(Scratch::default, |s, u| summarise(u, s)).collect())?;
        for (user, summary) in (start..).zip(summaries) {
            if summary.count == 0 {
                continue;
            }
            out.count[user] = summary.count;
            out.first_ms[user] = summary.first_ms;
            out.last_ms[user] = summary.last_ms;
            out.mean_x[user] = summary.mean_x;
            out.std_x[user] = summary.std_x;
            out.mean_y[user] = summary.mean_y;
            out.std_y[user] = summary.std_y;
            out.mean_ms[user] = summary.mean_ms;
            out.colors[user * N_COLORS..(user + 1) * N_COLORS].copy_from_slice(&summary.colors);
            out.distinct_pixels[user] = summary.distinct_pixels;
            out.changed_share[user] = summary.changed_share;
            out.median_gap_ms[user] = summary.median_gap_ms;
            out.gap_spread[user] = summary.gap_spread;
            out.overwritten_share[user] = summary.overwritten_share;
        }
    }
    Ok(out)
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
    /// `y * width + x`.
    pixel: u32,
    color: u8,
    /// [`CHANGED`], [`OVERWRITTEN`] (see [`History::pixel_flags`]).
    flags: u8,
}

/// What summarising one user needs, reused from user to user.
#[derive(Default)]
struct Scratch {
    pixels: Vec<u32>,
    gaps: Vec<i64>,
}

/// The median of `values` (not empty), the mean of the two middle ones for an even count.
fn median(values: &mut [i64]) -> f64 {
    let middle = values.len() / 2;
    let (_, &mut upper, _) = values.select_nth_unstable(middle);
    if values.len() % 2 == 1 {
        upper as f64
    } else {
        let lower = *values[..middle].iter().max().expect("an even count of at least 2");
        (lower as f64 + upper as f64) / 2.0
    }
}

fn bad_user(user: u32, users: usize) -> Error {
    Error::Index(format!("an event has user id {user}, beyond the {users} users of the dataset"))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [5, 1, 3]), 3.0);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2.5);
        assert_eq!(median(&mut [7]), 7.0);
    }
}

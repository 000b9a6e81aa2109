//! What the reader knows of users: each user's events, and for an event the placer's earlier
//! placements, from the chains of [`crate::index`] (`user_previous`, `user_rank`, `user_last`);
//! and when the next event came at an event's pixel, from the tile index.

use super::History;
use crate::error::{reserve, Context, Error, Result};
use crate::index::{cell_color, cell_pixel, NEVER, NONE, TILE};
use crate::palette::OUTSIDE;
use crate::pool::Disjoint;

/// Bit of [`History::pixel_flags`]: the event changed its pixel's color.
pub const CHANGED: u8 = 1;
/// Bit of [`History::pixel_flags`]: the next event at the pixel came within the period asked for.
pub const OVERWRITTEN: u8 = 2;
use rayon::prelude::*;

/// What [`History::placer_history`] returns for a batch of `B` events and `k` placements each.
pub struct PlacerHistory {
    /// `(B, k)` palette indices of the placer's latest earlier placements, the latest first;
    /// [`OUTSIDE`] where there are fewer than `k`.
    pub colors: Vec<u8>,
    /// `(B, k)` milliseconds from each of those placements to the event; −1 where none.
    pub ages_ms: Vec<i64>,
    /// `(B,)` how many placements the placer made strictly before the event.
    pub counts: Vec<i64>,
}

impl History {
    /// Number of users, `U`; user ids run `0 .. U`, numbered by first event.
    pub fn users(&self) -> usize {
        self.user_last.len
    }

    /// The id of the user whose original hash is `hash` (a lookup in `meta.sqlite`'s index).
    pub fn user_of_hash(&self, hash: &str) -> Result<Option<i64>> {
        self.meta_query("SELECT id FROM users WHERE original_id = ?1", hash, |row| row.get(0))
    }

    /// The original hash of user `user`.
    pub fn hash_of_user(&self, user: i64) -> Result<Option<String>> {
        self.meta_query("SELECT original_id FROM users WHERE id = ?1", user, |row| row.get(0))
    }

    fn meta_query<T, P: rusqlite::ToSql>(
        &self,
        sql: &str,
        parameter: P,
        read: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        use rusqlite::OptionalExtension;
        let path = self.path.join(crate::dataset::META_FILE);
        let meta = self.meta.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        meta.query_row(sql, [parameter], read).optional().at(&path)
    }

    /// Ids of every event of user `user`, ascending (time order).
    pub fn user_events(&self, user: i64) -> Result<Vec<i64>> {
        let last = usize::try_from(user)
            .ok()
            .and_then(|u| self.user_last.as_slice().get(u))
            .copied()
            .ok_or_else(|| Error::Index(format!("user id {user} is out of range for a dataset of {} users", self.users())))?;
        let mut ids = Vec::new();
        if last != NONE {
            reserve(&mut ids, self.user_rank.as_slice()[last as usize] as usize + 1, "the user's events")?;
        }
        let previous = self.user_previous.as_slice();
        let mut at = last;
        while at != NONE && ids.len() < self.len() {
            ids.push(at as i64);
            at = previous[at as usize];
        }
        ids.reverse();
        Ok(ids)
    }

    /// For each event, the latest `k` (≥ 1) placements of the same user made strictly before
    /// it in time (events of the same millisecond do not count, whatever their ids), with their
    /// colors and ages, and how many such placements there are (see [`PlacerHistory`]).
    pub fn placer_history(&self, ids: &[i64], k: usize) -> Result<PlacerHistory> {
        if k == 0 {
            return Err(Error::Argument("`k` must be at least 1, not 0".into()));
        }
        self.check_ids(ids)?;
        let too_big = || Error::Argument(format!("{} events of {k} placements do not fit in memory", ids.len()));
        let cells = ids.len().checked_mul(k).ok_or_else(too_big)?;
        let mut colors = Vec::new();
        let mut ages_ms = Vec::new();
        let mut counts = Vec::new();
        reserve(&mut colors, cells, "the placers' colors")?;
        reserve(&mut ages_ms, cells, "the placers' ages")?;
        reserve(&mut counts, ids.len(), "the placers' counts")?;
        colors.resize(cells, OUTSIDE);
        ages_ms.resize(cells, -1);
        counts.resize(ids.len(), 0);
        let (timestamps, previous, rank) = (self.timestamps(), self.user_previous.as_slice(), self.user_rank.as_slice());
        self.guarded(|| {
            colors.par_chunks_mut(k).zip(ages_ms.par_chunks_mut(k)).zip(counts.par_iter_mut()).zip(ids.par_iter()).for_each(
                |(((colors, ages), count), &id)| {
                    let (id, t) = (id as usize, timestamps[id as usize]);
                    // Walk past the user's events of the same millisecond: not strictly earlier.
                    let mut at = previous[id];
                    let mut same_time = 0;
                    while at != NONE && timestamps[at as usize] == t {
                        same_time += 1;
                        at = previous[at as usize];
                    }
                    *count = rank[id] as i64 - same_time;
                    for (color, age) in colors.iter_mut().zip(ages.iter_mut()) {
                        if at == NONE {
                            break;
                        }
                        *color = self.colors()[at as usize];
                        *age = t - timestamps[at as usize];
                        at = previous[at as usize];
                    }
                },
            )
        })?;
        Ok(PlacerHistory { colors, ages_ms, counts })
    }

    /// For each event, the timestamp of the next event at its pixel (the next by id: at the
    /// same millisecond too, as the canvas applies them); `i64::MAX` when none comes. `(B,)` ms.
    pub fn next_placement_times(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let timestamps = self.timestamps();
        self.per_event(ids, 1, |_: &mut (), id, out| {
            let (x, y) = (self.xs()[id] as usize, self.ys()[id] as usize);
            let (tile, pixel) = (y / TILE * self.tiles_x + x / TILE, y % TILE * TILE + x % TILE);
            let positions = self.first_position_from(tile, id + 1)..self.tile_span(tile).end;
            let (tile_ids, cells) = (&self.tile_event_ids.as_slice()[positions.clone()], &self.tile_event_cells.as_slice()[positions]);
            out[0] =
                tile_ids.iter().zip(cells).find(|(_, &cell)| cell_pixel(cell) == pixel).map_or(i64::MAX, |(&e, _)| timestamps[e as usize]);
        })
    }

    /// For each of the first `count` events, in id order, the bits [`CHANGED`] (its color
    /// differs from its pixel's before it; white before a pixel's first event) and
    /// [`OVERWRITTEN`] (the next event at its pixel, among the first `count`, came at most
    /// `within_ms` later). One pass over the tile index, in parallel over tiles.
    pub(crate) fn pixel_flags(&self, count: usize, within_ms: i64) -> Result<Vec<u8>> {
        let count = count.min(self.len());
        let mut flags = Vec::new();
        reserve(&mut flags, count, "the events' pixel flags")?;
        flags.resize(count, 0u8);
        let out = Disjoint::new(&mut flags);
        let timestamps = self.timestamps();
        let tiles = self.tile_offsets.len - 1;
        self.guarded(|| {
            (0..tiles).into_par_iter().for_each(|tile| {
                let span = self.tile_span(tile);
                let ids = &self.tile_event_ids.as_slice()[span.clone()];
                let cells = &self.tile_event_cells.as_slice()[span.clone()];
                // Times from the dataset's first event, read in sequence with the ids; one
                // clamped (49.7 days after) sends the comparison to the events' own timestamps.
                let times = &self.tile_event_times.as_slice()[span];
                // An event's flags are written once, when the next event at its pixel (or the
                // tile's end) settles whether it was overwritten soon: one store per event.
                let mut color = [self.white; TILE * TILE];
                let mut last = [NONE; TILE * TILE];
                let mut last_time = [0u32; TILE * TILE];
                let mut pending = [0u8; TILE * TILE];
                for ((&e, &cell), &time) in ids.iter().zip(cells).zip(times) {
                    if e as usize >= count {
                        break; // ids ascend inside a tile
                    }
                    let pixel = cell_pixel(cell);
                    let previous = last[pixel];
                    if previous != NONE {
                        let gap = if time == NEVER || last_time[pixel] == NEVER {
                            timestamps[e as usize] - timestamps[previous as usize]
                        } else {
                            time as i64 - last_time[pixel] as i64
                        };
                        let soon = if gap <= within_ms { OVERWRITTEN } else { 0 };
                        // SAFETY: every event belongs to one tile, and only its tile's job writes
                        // its flags (`previous` is an earlier event of this tile).
                        unsafe { *out.at(previous as usize) = pending[pixel] | soon };
                    }
                    pending[pixel] = if cell_color(cell) != color[pixel] { CHANGED } else { 0 };
                    color[pixel] = cell_color(cell);
                    last[pixel] = e;
                    last_time[pixel] = time;
                }
                for (&e, &bits) in last.iter().zip(&pending) {
                    if e != NONE {
                        // SAFETY: as above.
                        unsafe { *out.at(e as usize) = bits };
                    }
                }
            })
        })?;
        Ok(flags)
    }
}

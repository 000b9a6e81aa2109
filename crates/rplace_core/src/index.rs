//! The history index: the event columns and a tile index of the canvas, written once by the
//! ingest and memory-mapped by [`crate::history`] for exact reads in bounded time.
//!
//! Every file is an `.npy` array (numpy opens them with `np.load(path, mmap_mode="r")`); `N` is
//! the number of events, ids are positions in time order:
//!
//! - `events/timestamp.npy` (`<i8`, N) milliseconds since the Unix epoch, `events/user_id.npy`
//!   (`<u4`, N), `events/color.npy` (`|u1`, N) palette indices, `events/x.npy` and
//!   `events/y.npy` (`<u2`, N) pixels: the columns in id order (17 bytes per event).
//! - The canvas is cut into tiles of [`TILE`]×[`TILE`] pixels, `tiles_x = ceil(width / 16)` by
//!   `tiles_y = ceil(height / 16)`, tile `t = ty * tiles_x + tx`. `index/tile_event_ids.npy`
//!   (`<u4`, N) holds the event ids grouped by tile, ascending inside a tile; tile `t` owns
//!   positions `tile_offsets[t] .. tile_offsets[t + 1]` (`index/tile_offsets.npy`, `<u8`,
//!   T + 1). `index/tile_event_cells.npy` (`<u2`, N) gives, for the same positions, the pixel
//!   inside the tile in the low byte (`(y % 16) * 16 + x % 16`) and the color in the high byte
//!   (6 bytes per event), so a tile replays without touching the columns.
//! - Every [`CHECKPOINT_EVERY`] events of a tile, its 16×16 state: checkpoint `j` (1-based) of
//!   tile `t` is row `checkpoint_offsets[t] + j - 1` of `index/tile_checkpoints.npy` (`|u1`,
//!   (C, 256)) and holds the tile after its first `64 * j` events (`index/checkpoint_offsets.npy`,
//!   `<u8`, T + 1). `index/checkpoint_event_ids.npy` (`<u4`, C) holds the id of the last event
//!   each checkpoint includes: the search for the checkpoint before an event runs in this array,
//!   16 times smaller than the tile lists and mostly in cache, and ends with a scan of at most
//!   64 consecutive events. About 4.1 bytes per event; any tile state costs one copy and at most
//!   63 events.
//! - `index/tile_event_times.npy` (`<u4`, N): for the same positions, the milliseconds from the
//!   dataset's first event to the event ([`NEVER`] from 49.7 days on: then the timestamp column
//!   tells), so that the times of a tile's events are read in sequence too (4 bytes per event):
//!   what the users' features read.
//! - The ages index, for the models' `age` input ([`crate::history::ages`]): the canvas cut
//!   again, into age tiles of [`AGE_TILE`]×[`AGE_TILE`] pixels (`ceil(width / 32)` by
//!   `ceil(height / 32)`, numbered like the tiles), so that a 64×64 window reads 9 of them
//!   instead of 25. `index/age_tile_offsets.npy` (`<u8`, A + 1) and
//!   `index/age_tile_event_ids.npy` (`<u4`, N) group the event ids by age tile like the tile
//!   lists; for the same positions, `index/age_tile_event_times.npy` (`<u4`, N) holds the
//!   times as `tile_event_times` does and `index/age_tile_event_pixels.npy` (`<u2`, N) the
//!   pixel inside the age tile (`(y % 32) * 32 + x % 32`). Every [`AGE_CHECKPOINT_EVERY`]
//!   events of an age tile, a checkpoint (`index/age_checkpoint_offsets.npy`, `<u8`, A + 1;
//!   `index/age_checkpoint_event_ids.npy`, `<u4`, CA, the id of its last event) holds how long
//!   ago each of the tile's pixels was last placed on, the time from the pixel's last event to
//!   the checkpoint's last event, in two parts: whole ticks of [`AGE_TICK_MS`] in
//!   `index/age_change_ticks.npy` (`<u2`, (CA, 1024); [`TICKS_LONG_AGO`] from 2²⁷ ms = 37.3 h
//!   on, [`TICKS_NEVER`] for a pixel without any event yet) and the milliseconds left over in
//!   `index/age_change_rests.npy` (`<u2`, (CA, 1024); 0 where the ticks are long ago or never).
//!   Every edge of the age buckets is a whole number of ticks, so the ticks alone give the
//!   bucket of a pixel at any later event except where its age may or may not have crossed an
//!   edge within the last tick: there the rests decide, read for the few rows that need them.
//!   42 bytes per event: larger tiles and checkpoints every 128 events made an age window about
//!   a sixth faster than the 16×16 tiles' checkpoints every 64 (see BENCHMARKS.md).
//! - Per user, the chain of their events: `index/user_previous.npy` (`<u4`, N) holds for every
//!   event the id of the same user's previous event ([`NONE`] for a user's first),
//!   `index/user_rank.npy` (`<u4`, N) how many events the user placed before it (by id), and
//!   `index/user_last.npy` (`<u4`, U, U the number of users) each user's last event. 8 bytes per
//!   event: "what did this user place before, and when" is a walk of a few steps.

use crate::error::{filled, Context, Error, Result};
use crate::event::Event;
use crate::npy;
use crate::stop::check;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Side of a tile in pixels.
pub const TILE: usize = 16;

/// Events of a tile between two checkpoints.
pub const CHECKPOINT_EVERY: usize = 64;

/// Side of an age tile in pixels: the ages index cuts the canvas into larger tiles, so that a
/// 64×64 window reads 9 of them, not 25 (see BENCHMARKS.md).
pub const AGE_TILE: usize = 32;

/// Events of an age tile between two of its checkpoints.
pub const AGE_CHECKPOINT_EVERY: usize = 128;

/// Bits of a tile event cell that hold the pixel inside the tile; the color sits above them.
const PIXEL_BITS: u32 = (TILE * TILE).trailing_zeros();

/// A tile event cell: the pixel inside the tile (`y % TILE * TILE + x % TILE`) and the color.
pub fn cell(pixel: usize, color: u8) -> u16 {
    (color as u16) << PIXEL_BITS | pixel as u16
}

/// The pixel inside the tile of a cell.
pub fn cell_pixel(cell: u16) -> usize {
    (cell & ((1 << PIXEL_BITS) - 1)) as usize
}

/// The color of a cell.
pub fn cell_color(cell: u16) -> u8 {
    (cell >> PIXEL_BITS) as u8
}

pub const EVENTS_DIR: &str = "events";
pub const INDEX_DIR: &str = "index";
pub const TIMESTAMP_FILE: &str = "events/timestamp.npy";
pub const USER_ID_FILE: &str = "events/user_id.npy";
pub const COLOR_FILE: &str = "events/color.npy";
pub const X_FILE: &str = "events/x.npy";
pub const Y_FILE: &str = "events/y.npy";
pub const TILE_OFFSETS_FILE: &str = "index/tile_offsets.npy";
pub const TILE_EVENT_IDS_FILE: &str = "index/tile_event_ids.npy";
pub const TILE_EVENT_CELLS_FILE: &str = "index/tile_event_cells.npy";
pub const CHECKPOINT_OFFSETS_FILE: &str = "index/checkpoint_offsets.npy";
pub const TILE_CHECKPOINTS_FILE: &str = "index/tile_checkpoints.npy";
pub const CHECKPOINT_EVENT_IDS_FILE: &str = "index/checkpoint_event_ids.npy";
pub const AGE_TILE_OFFSETS_FILE: &str = "index/age_tile_offsets.npy";
pub const AGE_TILE_EVENT_IDS_FILE: &str = "index/age_tile_event_ids.npy";
pub const AGE_TILE_EVENT_TIMES_FILE: &str = "index/age_tile_event_times.npy";
pub const AGE_TILE_EVENT_PIXELS_FILE: &str = "index/age_tile_event_pixels.npy";
pub const AGE_CHECKPOINT_OFFSETS_FILE: &str = "index/age_checkpoint_offsets.npy";
pub const AGE_CHECKPOINT_EVENT_IDS_FILE: &str = "index/age_checkpoint_event_ids.npy";
pub const AGE_CHANGE_TICKS_FILE: &str = "index/age_change_ticks.npy";
pub const AGE_CHANGE_RESTS_FILE: &str = "index/age_change_rests.npy";
pub const TILE_EVENT_TIMES_FILE: &str = "index/tile_event_times.npy";

/// In `tile_event_times`: 49.7 days or more after the dataset's first event.
pub const NEVER: u32 = u32::MAX;
/// The unit of `age_change_ticks`: 4,096 ms.
pub const AGE_TICK_MS: i64 = 1 << 12;
/// In `age_change_ticks`: the pixel was last placed on 2²⁷ ms (37.3 h) or more before.
pub const TICKS_LONG_AGO: u16 = 1 << 15;
/// In `age_change_ticks`: the pixel has no event yet.
pub const TICKS_NEVER: u16 = u16::MAX;
pub const USER_PREVIOUS_FILE: &str = "index/user_previous.npy";
pub const USER_RANK_FILE: &str = "index/user_rank.npy";
pub const USER_LAST_FILE: &str = "index/user_last.npy";

/// No event: in `user_previous` for a user's first event, in `user_last` for a user without one.
pub const NONE: u32 = u32::MAX;

/// Tiles across and down a `width`×`height` canvas (pixels).
pub fn tile_grid(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(TILE), height.div_ceil(TILE))
}

/// Events per block between two checks of the stop flag.
const STOP_CHECK_EVENTS: usize = 1 << 20;

/// Writes `events/` and `index/` into `dataset` from `events` in id (time) order on a
/// `width`×`height` canvas (pixels), by `users` users (ids `0 .. users`). Refuses events outside
/// the canvas, user ids beyond `users` and more events than a `u32` id can name (its largest
/// value is [`NONE`]); returns [`Error::Interrupted`] soon after `stop` is raised.
/// `white`: the palette index of a fresh canvas's color.
pub fn write_index(
    dataset: &Path,
    events: &[Event],
    width: usize,
    height: usize,
    users: usize,
    white: u8,
    stop: &AtomicBool,
) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Argument(format!("a {width}x{height} canvas has no pixels")));
    }
    if events.len() >= NONE as usize {
        return Err(Error::Argument(format!("{} events: the index numbers events with 32 bits", events.len())));
    }
    if let Some((id, event)) = events.iter().enumerate().find(|(_, e)| e.x() as usize >= width || e.y() as usize >= height) {
        return Err(Error::Argument(format!("event {id} at ({}, {}) lies outside the {width}x{height} canvas", event.x(), event.y())));
    }
    if let Some((id, event)) = events.iter().enumerate().find(|(_, e)| e.user_id as usize >= users) {
        return Err(Error::Argument(format!("event {id} has user id {}, beyond the {users} users", event.user_id)));
    }
    for dir in [EVENTS_DIR, INDEX_DIR] {
        let path = dataset.join(dir);
        std::fs::create_dir_all(&path).at(&path)?;
    }
    write_column(&dataset.join(TIMESTAMP_FILE), "<i8", events, stop, |e| e.timestamp_ms.to_le_bytes())?;
    write_column(&dataset.join(USER_ID_FILE), "<u4", events, stop, |e| e.user_id.to_le_bytes())?;
    write_column(&dataset.join(COLOR_FILE), "|u1", events, stop, |e| [e.color()])?;
    write_column(&dataset.join(X_FILE), "<u2", events, stop, |e| e.x().to_le_bytes())?;
    write_column(&dataset.join(Y_FILE), "<u2", events, stop, |e| e.y().to_le_bytes())?;

    let (tile_offsets, ids, cells) =
        tile_lists(events, TILE, tile_grid(width, height), "the tile index", stop, |e, pixel| cell(pixel, e.color()))?;
    write_column(&dataset.join(TILE_OFFSETS_FILE), "<u8", &tile_offsets, stop, |o| o.to_le_bytes())?;
    write_column(&dataset.join(TILE_EVENT_IDS_FILE), "<u4", &ids, stop, |id| id.to_le_bytes())?;
    write_column(&dataset.join(TILE_EVENT_CELLS_FILE), "<u2", &cells, stop, |cell| cell.to_le_bytes())?;

    let (checkpoint_offsets, checkpoint_ids) = checkpoints_of(&tile_offsets, &ids, CHECKPOINT_EVERY);
    let first = events.first().map_or(0, |e| e.timestamp_ms);
    write_column(&dataset.join(TILE_EVENT_TIMES_FILE), "<u4", &ids, stop, |&id| {
        event_time(events[id as usize].timestamp_ms, first).to_le_bytes()
    })?;
    drop(ids);
    write_column(&dataset.join(CHECKPOINT_OFFSETS_FILE), "<u8", &checkpoint_offsets, stop, |o| o.to_le_bytes())?;
    write_column(&dataset.join(CHECKPOINT_EVENT_IDS_FILE), "<u4", &checkpoint_ids, stop, |id| id.to_le_bytes())?;
    write_checkpoints(&dataset.join(TILE_CHECKPOINTS_FILE), &tile_offsets, &cells, checkpoint_ids.len(), white, stop)?;
    drop(cells);
    write_age_index(dataset, events, width, height, stop)?;
    write_user_chains(dataset, events, users, stop)
}

/// Writes the ages index (see the module documentation): the events of every
/// [`AGE_TILE`]×[`AGE_TILE`] tile, and every [`AGE_CHECKPOINT_EVERY`] of them how long ago each
/// of its pixels was placed on.
fn write_age_index(dataset: &Path, events: &[Event], width: usize, height: usize, stop: &AtomicBool) -> Result<()> {
    let grid = age_tile_grid(width, height);
    let (offsets, ids, pixels) = tile_lists(events, AGE_TILE, grid, "the ages index", stop, |_, pixel| pixel as u16)?;
    let first = events.first().map_or(0, |e| e.timestamp_ms);
    write_column(&dataset.join(AGE_TILE_OFFSETS_FILE), "<u8", &offsets, stop, |o| o.to_le_bytes())?;
    write_column(&dataset.join(AGE_TILE_EVENT_IDS_FILE), "<u4", &ids, stop, |id| id.to_le_bytes())?;
    write_column(&dataset.join(AGE_TILE_EVENT_TIMES_FILE), "<u4", &ids, stop, |&id| {
        event_time(events[id as usize].timestamp_ms, first).to_le_bytes()
    })?;
    write_column(&dataset.join(AGE_TILE_EVENT_PIXELS_FILE), "<u2", &pixels, stop, |p| p.to_le_bytes())?;
    let (checkpoint_offsets, checkpoint_ids) = checkpoints_of(&offsets, &ids, AGE_CHECKPOINT_EVERY);
    write_column(&dataset.join(AGE_CHECKPOINT_OFFSETS_FILE), "<u8", &checkpoint_offsets, stop, |o| o.to_le_bytes())?;
    write_column(&dataset.join(AGE_CHECKPOINT_EVENT_IDS_FILE), "<u4", &checkpoint_ids, stop, |id| id.to_le_bytes())?;
    write_change_ticks(dataset, &offsets, &ids, &pixels, events, checkpoint_ids.len(), stop)
}

/// The events grouped by `side`×`side` tile of a canvas cut into `grid` tiles (across, down), by
/// a stable counting sort (ids stay ascending inside each tile): the tiles' offsets, the event
/// ids, and for the same positions `value(event, pixel inside its tile)`; `what` names the index
/// for an allocation error.
fn tile_lists(
    events: &[Event],
    side: usize,
    (tiles_x, tiles_y): (usize, usize),
    what: &str,
    stop: &AtomicBool,
    value: impl Fn(&Event, usize) -> u16,
) -> Result<(Vec<u64>, Vec<u32>, Vec<u16>)> {
    let tile_of = |e: &Event| e.y() as usize / side * tiles_x + e.x() as usize / side;
    let mut offsets = vec![0u64; tiles_x * tiles_y + 1];
    for event in events {
        offsets[tile_of(event) + 1] += 1;
    }
    for t in 1..offsets.len() {
        offsets[t] += offsets[t - 1];
    }
    check(stop)?;
    let mut next = offsets.clone();
    let mut ids = filled(events.len(), 0u32, what)?;
    let mut values = filled(events.len(), 0u16, what)?;
    for (id, event) in events.iter().enumerate() {
        let slot = &mut next[tile_of(event)];
        ids[*slot as usize] = id as u32;
        values[*slot as usize] = value(event, event.y() as usize % side * side + event.x() as usize % side);
        *slot += 1;
    }
    check(stop)?;
    Ok((offsets, ids, values))
}

/// The checkpoints of tiles whose events are `ids`, split by `offsets`, one every `every` events
/// of a tile: their offsets per tile and the id of each one's last event.
fn checkpoints_of(offsets: &[u64], ids: &[u32], every: usize) -> (Vec<u64>, Vec<u32>) {
    let mut checkpoint_offsets = vec![0u64; offsets.len()];
    let mut checkpoint_ids = Vec::with_capacity(ids.len() / every);
    for t in 1..offsets.len() {
        let tile_ids = &ids[offsets[t - 1] as usize..offsets[t] as usize];
        checkpoint_ids.extend(tile_ids.chunks_exact(every).map(|block| block[every - 1]));
        checkpoint_offsets[t] = checkpoint_ids.len() as u64;
    }
    (checkpoint_offsets, checkpoint_ids)
}

/// Age tiles across and down a `width`×`height` canvas (pixels).
pub fn age_tile_grid(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(AGE_TILE), height.div_ceil(AGE_TILE))
}

/// Writes `user_previous`, `user_rank` and `user_last` (see the module documentation).
fn write_user_chains(dataset: &Path, events: &[Event], users: usize, stop: &AtomicBool) -> Result<()> {
    let mut last = filled(users, NONE, "the users' event chains")?;
    let mut placed = filled(users, 0u32, "the users' event chains")?;
    let mut previous = filled(events.len(), NONE, "the users' event chains")?;
    let mut rank = filled(events.len(), 0u32, "the users' event chains")?;
    for (id, event) in events.iter().enumerate() {
        let user = event.user_id as usize;
        previous[id] = last[user];
        rank[id] = placed[user];
        placed[user] += 1;
        last[user] = id as u32;
    }
    check(stop)?;
    write_column(&dataset.join(USER_PREVIOUS_FILE), "<u4", &previous, stop, |id| id.to_le_bytes())?;
    write_column(&dataset.join(USER_RANK_FILE), "<u4", &rank, stop, |r| r.to_le_bytes())?;
    write_column(&dataset.join(USER_LAST_FILE), "<u4", &last, stop, |id| id.to_le_bytes())
}

/// Writes `items` as the one-dimensional array `path` of numpy type `descr`, each item as the
/// little-endian bytes `encode` gives.
fn write_column<T, const B: usize>(path: &Path, descr: &str, items: &[T], stop: &AtomicBool, encode: impl Fn(&T) -> [u8; B]) -> Result<()> {
    let mut out = npy::create(path)?;
    npy::write_header(&mut out, descr, &[items.len()]).at(path)?;
    for block in items.chunks(STOP_CHECK_EVENTS) {
        check(stop)?;
        for item in block {
            out.write_all(&encode(item)).at(path)?;
        }
    }
    out.flush().at(path)
}

/// Replays every tile from white and writes its state after each [`CHECKPOINT_EVERY`] events,
/// tile after tile: the rows come out in file order, so nothing is held in memory.
fn write_checkpoints(path: &Path, tile_offsets: &[u64], cells: &[u16], checkpoints: usize, white: u8, stop: &AtomicBool) -> Result<()> {
    let mut out = npy::create(path)?;
    npy::write_header(&mut out, "|u1", &[checkpoints, TILE * TILE]).at(path)?;
    let mut replayed = 0;
    for bounds in tile_offsets.windows(2) {
        let tile_cells = &cells[bounds[0] as usize..bounds[1] as usize];
        replayed += tile_cells.len();
        if replayed >= STOP_CHECK_EVENTS {
            check(stop)?;
            replayed = 0;
        }
        let mut state = [white; TILE * TILE];
        for block in tile_cells.chunks_exact(CHECKPOINT_EVERY) {
            for &cell in block {
                state[cell_pixel(cell)] = cell_color(cell);
            }
            out.write_all(&state).at(path)?;
        }
    }
    out.flush().at(path)
}

/// Replays every age tile and writes, after each [`AGE_CHECKPOINT_EVERY`] events, the age of
/// each of its pixels at the checkpoint (see the module documentation), tile after tile.
fn write_change_ticks(
    dataset: &Path,
    tile_offsets: &[u64],
    ids: &[u32],
    pixels: &[u16],
    events: &[Event],
    checkpoints: usize,
    stop: &AtomicBool,
) -> Result<()> {
    const CELLS: usize = AGE_TILE * AGE_TILE;
    let files = [dataset.join(AGE_CHANGE_TICKS_FILE), dataset.join(AGE_CHANGE_RESTS_FILE)];
    let mut outs = Vec::new();
    for path in &files {
        let mut out = npy::create(path)?;
        npy::write_header(&mut out, "<u2", &[checkpoints, CELLS]).at(path)?;
        outs.push(out);
    }
    let mut replayed = 0;
    let (mut tick_row, mut rest_row) = (vec![0u8; CELLS * 2], vec![0u8; CELLS * 2]);
    let mut last = vec![i64::MIN; CELLS];
    for bounds in tile_offsets.windows(2) {
        let span = bounds[0] as usize..bounds[1] as usize;
        replayed += span.len();
        if replayed >= STOP_CHECK_EVENTS {
            check(stop)?;
            replayed = 0;
        }
        last.fill(i64::MIN);
        let blocks = ids[span.clone()].chunks_exact(AGE_CHECKPOINT_EVERY).zip(pixels[span].chunks_exact(AGE_CHECKPOINT_EVERY));
        for (block_ids, block_pixels) in blocks {
            for (&id, &pixel) in block_ids.iter().zip(block_pixels) {
                last[pixel as usize] = events[id as usize].timestamp_ms;
            }
            let now = events[block_ids[AGE_CHECKPOINT_EVERY - 1] as usize].timestamp_ms;
            for (pixel, (tick_bytes, rest_bytes)) in tick_row.chunks_exact_mut(2).zip(rest_row.chunks_exact_mut(2)).enumerate() {
                let (ticks, left) = change_ticks(now, last[pixel]);
                tick_bytes.copy_from_slice(&ticks.to_le_bytes());
                rest_bytes.copy_from_slice(&left.to_le_bytes());
            }
            for ((out, path), row) in outs.iter_mut().zip(&files).zip([&tick_row, &rest_row]) {
                out.write_all(row).at(path)?;
            }
        }
    }
    for (out, path) in outs.iter_mut().zip(&files) {
        out.flush().at(path)?;
    }
    Ok(())
}

/// What `age_change_ticks` and `age_change_rests` store for a pixel last placed at `last`
/// (`i64::MIN`: never), at `now`.
pub fn change_ticks(now: i64, last: i64) -> (u16, u16) {
    if last == i64::MIN {
        return (TICKS_NEVER, 0);
    }
    let age = now.saturating_sub(last).max(0);
    if age >= TICKS_LONG_AGO as i64 * AGE_TICK_MS {
        (TICKS_LONG_AGO, 0)
    } else {
        ((age / AGE_TICK_MS) as u16, (age % AGE_TICK_MS) as u16)
    }
}

/// What `tile_event_times` and `age_tile_event_times` store for an event at `t`, in a dataset whose
/// first event is at `first`.
pub fn event_time(t: i64, first: i64) -> u32 {
    t.saturating_sub(first).clamp(0, NEVER as i64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::palette::WHITE;

    /// The shape and raw data of the array `dataset/file`, checking its numpy type.
    fn read_array(dataset: &Path, file: &str, descr: &str) -> (Vec<usize>, Vec<u8>) {
        let bytes = std::fs::read(dataset.join(file)).unwrap();
        let header = npy::read_header(&bytes).unwrap();
        assert_eq!(header.descr, descr, "{file}");
        (header.shape, bytes[header.data_offset..].to_vec())
    }

    fn numbers<const B: usize>(bytes: &[u8], decode: fn([u8; B]) -> u64) -> Vec<u64> {
        bytes.chunks_exact(B).map(|c| decode(c.try_into().unwrap())).collect()
    }

    #[test]
    fn tiles_replay_to_their_checkpoints() {
        // A 20×17 canvas: 2×2 tiles, the right and bottom ones partly outside it. Tile 0 gets
        // enough events for three checkpoints, tile 3 (one pixel column, one row) for one.
        let (width, height) = (20, 17);
        let events: Vec<Event> = (0..400u32)
            .map(|i| {
                let (x, y) = if i % 5 == 4 { (16 + i % 4, 16) } else { ((i * 7 % 16), (i * 3 % 16)) };
                Event::new(1_000 + i as i64 / 3, i % 9, x as u16, y as u16, (i * 13 % 32) as u8, false)
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        write_index(dir.path(), &events, width, height, 9, WHITE, &AtomicBool::new(false)).unwrap();

        let (shape, timestamps) = read_array(dir.path(), TIMESTAMP_FILE, "<i8");
        assert_eq!(shape, [400]);
        assert_eq!(numbers(&timestamps, |b| i64::from_le_bytes(b) as u64)[399], 1_133);
        let (_, xs) = read_array(dir.path(), X_FILE, "<u2");
        assert_eq!(numbers(&xs, |b| u16::from_le_bytes(b) as u64)[4], 16);
        assert_eq!(read_array(dir.path(), COLOR_FILE, "|u1").1, events.iter().map(|e| e.color()).collect::<Vec<_>>());
        read_array(dir.path(), Y_FILE, "<u2");
        read_array(dir.path(), USER_ID_FILE, "<u4");

        let offsets = numbers(&read_array(dir.path(), TILE_OFFSETS_FILE, "<u8").1, u64::from_le_bytes);
        assert_eq!(offsets, [0, 320, 320, 320, 400]);
        let ids = numbers(&read_array(dir.path(), TILE_EVENT_IDS_FILE, "<u4").1, |b| u32::from_le_bytes(b) as u64);
        let cells = numbers(&read_array(dir.path(), TILE_EVENT_CELLS_FILE, "<u2").1, |b| u16::from_le_bytes(b) as u64);
        let checkpoint_offsets = numbers(&read_array(dir.path(), CHECKPOINT_OFFSETS_FILE, "<u8").1, u64::from_le_bytes);
        assert_eq!(checkpoint_offsets, [0, 5, 5, 5, 6]);
        let (shape, checkpoints) = read_array(dir.path(), TILE_CHECKPOINTS_FILE, "|u1");
        assert_eq!(shape, [6, 256]);
        let last_ids = numbers(&read_array(dir.path(), CHECKPOINT_EVENT_IDS_FILE, "<u4").1, |b| u32::from_le_bytes(b) as u64);

        for (tile, (tx, ty)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
            let mine: Vec<usize> = (0..events.len()).filter(|&i| (events[i].x() / 16, events[i].y() / 16) == (tx, ty)).collect();
            let span = offsets[tile] as usize..offsets[tile + 1] as usize;
            assert_eq!(ids[span.clone()].iter().map(|&id| id as usize).collect::<Vec<_>>(), mine, "ids of tile {tile}");
            let mut state = [WHITE; 256];
            for (k, &id) in mine.iter().enumerate() {
                let e = events[id];
                let pixel = (e.y() % 16 * 16 + e.x() % 16) as usize;
                assert_eq!(cells[span.start + k] as u16, cell(pixel, e.color()));
                state[pixel] = e.color();
                if (k + 1) % CHECKPOINT_EVERY == 0 {
                    let row = checkpoint_offsets[tile] as usize + (k + 1) / CHECKPOINT_EVERY - 1;
                    assert_eq!(&checkpoints[row * 256..(row + 1) * 256], &state[..], "checkpoint {row}");
                    assert_eq!(last_ids[row], id as u64);
                }
            }
        }

        // The users' chains against a plain walk.
        let previous = numbers(&read_array(dir.path(), USER_PREVIOUS_FILE, "<u4").1, |b| u32::from_le_bytes(b) as u64);
        let rank = numbers(&read_array(dir.path(), USER_RANK_FILE, "<u4").1, |b| u32::from_le_bytes(b) as u64);
        let (shape, last) = read_array(dir.path(), USER_LAST_FILE, "<u4");
        let last = numbers(&last, |b| u32::from_le_bytes(b) as u64);
        assert_eq!(shape, [9]);
        for (id, event) in events.iter().enumerate() {
            let earlier: Vec<usize> = (0..id).filter(|&j| events[j].user_id == event.user_id).collect();
            assert_eq!(previous[id], earlier.last().map_or(NONE as u64, |&j| j as u64));
            assert_eq!(rank[id], earlier.len() as u64);
        }
        for user in 0..9u32 {
            let mine = (0..events.len()).rev().find(|&j| events[j].user_id == user);
            assert_eq!(last[user as usize], mine.map_or(NONE as u64, |j| j as u64));
        }
    }

    #[test]
    fn refuses_what_it_cannot_index_and_stops_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let events = [Event::new(0, 0, 3, 3, 1, false), Event::new(1, 0, 20, 3, 1, false)];
        let error = write_index(dir.path(), &events, 20, 10, 1, WHITE, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(&error, Error::Argument(m) if m.contains("event 1 at (20, 3)")), "{error}");
        assert!(matches!(write_index(dir.path(), &events, 0, 10, 1, WHITE, &AtomicBool::new(false)), Err(Error::Argument(_))));
        assert!(
            matches!(write_index(dir.path(), &events, 21, 10, 0, WHITE, &AtomicBool::new(false)), Err(Error::Argument(m)) if m.contains("user id 0"))
        );
        assert!(matches!(write_index(dir.path(), &events, 21, 10, 1, WHITE, &AtomicBool::new(true)), Err(Error::Interrupted)));
    }

    #[test]
    fn npy_headers_read_back() {
        for shape in [vec![0], vec![7], vec![3, 2000, 2000], vec![]] {
            let mut bytes = Vec::new();
            npy::write_header(&mut bytes, "<u4", &shape).unwrap();
            let header = npy::read_header(&bytes).unwrap();
            assert_eq!((header.descr.as_str(), header.shape, header.data_offset), ("<u4", shape, bytes.len()));
        }
        let mut bytes = Vec::new();
        npy::write_header(&mut bytes, "<u4", &[5]).unwrap();
        assert!(npy::read_header(&bytes[..40]).unwrap_err().contains("truncated"));
        assert!(npy::read_header(b"PK\x03\x04 not numpy").unwrap_err().contains("magic"));
        let mut fortran = bytes.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(npy::read_header(&fortran).unwrap_err().contains("Fortran"));
    }

    #[test]
    fn checkpoint_ticks_and_rests_add_up_to_the_age() {
        let now = 1_648_817_050_000;
        assert_eq!(change_ticks(now, i64::MIN), (TICKS_NEVER, 0));
        assert_eq!(change_ticks(now, now - (1 << 27)), (TICKS_LONG_AGO, 0));
        assert_eq!(change_ticks(now, now - (1 << 27) + 1), (TICKS_LONG_AGO - 1, AGE_TICK_MS as u16 - 1));
        for age in (0..1 << 27).step_by(4_093).chain([0, 1, 4_095, 4_096, 4_097]) {
            let (tick, left) = change_ticks(now, now - age);
            assert_eq!(tick as i64 * AGE_TICK_MS + left as i64, age);
            assert!((left as i64) < AGE_TICK_MS);
        }
    }
}

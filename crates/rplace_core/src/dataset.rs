//! The dataset folder an ingest writes and every reader opens:
//!
//! - `partitions/partition_NNNNN.sqlite`: table `pixels(id INTEGER PRIMARY KEY, timestamp
//!   INTEGER, user_id INTEGER, color_id INTEGER, x INTEGER, y INTEGER)` with indexes on
//!   `timestamp` and `(x, y)`; `id` is the event's global 0-based position in time order and
//!   `timestamp` is in milliseconds since the Unix epoch (UTC).
//! - `meta.sqlite`: tables `info(key, value)`, `users(id, original_id)`, `palette`,
//!   `partitions` (the manifest), `sources` (input files) and `moderation(event_id)`.
//! - `snapshots.npy`: `(partitions + 1, height, width)` uint8 palette indices; row `k` is the
//!   canvas before the first event of partition `k`, the last row the canvas after every event.
//!   Any partition replays alone from its row.
//! - `events/*.npy` and `index/*.npy`: the event columns and the tile index that
//!   [`crate::history`] memory-maps (see [`crate::index`]).
//! - `rejects.csv` (skip mode only): every rejected input row with file, line, reason and text.
//!
//! `meta.sqlite` is written last and the folder is renamed into place only when complete.

use crate::error::{Context, Error, Result};
use crate::event::Event;
use crate::palette::{hex_string, PALETTE_RGB};
use crate::sqlite_writer::write_pixels_database;
use crate::stop::check;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Bumped whenever the layout above changes in a way old readers cannot follow.
pub const FORMAT_VERSION: i64 = 1;

pub const META_FILE: &str = "meta.sqlite";
pub const PARTITIONS_DIR: &str = "partitions";
pub const SNAPSHOTS_FILE: &str = "snapshots.npy";
pub const REJECTS_FILE: &str = "rejects.csv";

/// The file of partition `index`, relative to the dataset folder.
pub fn partition_file(index: usize) -> String {
    format!("{PARTITIONS_DIR}/partition_{index:05}.sqlite")
}

/// One partition of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub index: usize,
    /// Id of its first event; its events are `first_event .. first_event + events`.
    pub first_event: u64,
    pub events: u64,
    pub first_timestamp_ms: i64,
    pub last_timestamp_ms: i64,
    /// CRC-32 of the rows as little-endian (id i64, timestamp i64, user_id u32, color u8, x u16,
    /// y u16), in id order.
    pub checksum: u32,
}

/// One input file of an ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    pub path: PathBuf,
    /// Size on disk in bytes (compressed, for gzip).
    pub size: u64,
    /// Data rows read (header excluded), rejected ones included.
    pub rows: u64,
    pub rejected_rows: u64,
}

/// What `rplacevit info` shows: the `info` table of `meta.sqlite`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetInfo {
    pub events: u64,
    pub users: u64,
    pub partitions: u64,
    pub partition_size: u64,
    pub first_timestamp_ms: i64,
    pub last_timestamp_ms: i64,
    pub canvas_width: u32,
    pub canvas_height: u32,
    pub moderation_events: u64,
    pub rows: u64,
    pub rejected_rows: u64,
}

fn checksum(first_event: u64, events: &[Event]) -> u32 {
    // CRC updates of a few bytes are slow: serialise blocks of rows, update once per block.
    const ROW: usize = 25;
    let mut crc = flate2::Crc::new();
    let mut block = Vec::with_capacity(ROW * 4096);
    for (block_start, chunk) in (first_event..).step_by(4096).zip(events.chunks(4096)) {
        block.clear();
        for (id, event) in (block_start..).zip(chunk) {
            block.extend_from_slice(&id.to_le_bytes());
            block.extend_from_slice(&event.timestamp_ms.to_le_bytes());
            block.extend_from_slice(&event.user_id.to_le_bytes());
            block.push(event.color());
            block.extend_from_slice(&event.x().to_le_bytes());
            block.extend_from_slice(&event.y().to_le_bytes());
        }
        crc.update(&block);
    }
    crc.sum()
}

/// Opens a new SQLite file for bulk writing: no journal, no syncing. A crash mid-write leaves a
/// broken file, but only inside the temporary folder that is never renamed into place.
fn create_bulk(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).at(path)?;
    connection
        .execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -65536;")
        .at(path)?;
    Ok(connection)
}

impl PartitionInfo {
    /// The manifest entry of partition `index`, events `first_event ..`.
    pub fn of(index: usize, first_event: u64, events: &[Event]) -> PartitionInfo {
        PartitionInfo {
            index,
            first_event,
            events: events.len() as u64,
            first_timestamp_ms: events.first().map_or(0, |e| e.timestamp_ms),
            last_timestamp_ms: events.last().map_or(0, |e| e.timestamp_ms),
            checksum: checksum(first_event, events),
        }
    }
}

/// Writes partition `index` (events `first_event ..`) to `dataset/partitions/`, directly in
/// SQLite's file format (see [`crate::sqlite_writer`] for why not through SQLite itself).
pub fn write_partition(dataset: &Path, index: usize, first_event: u64, events: &[Event], stop: &AtomicBool) -> Result<()> {
    check(stop)?;
    let path = dataset.join(partition_file(index));
    write_pixels_database(&path, first_event, events).at(&path)
}

/// Everything `meta.sqlite` holds besides what [`DatasetInfo`] summarises.
pub struct Meta<'a> {
    pub info: DatasetInfo,
    pub partitions: &'a [PartitionInfo],
    pub sources: &'a [SourceInfo],
    /// User hashes indexed by user id.
    pub users: &'a [Box<[u8]>],
    /// Ids of the events placed by moderation rectangles, ascending.
    pub moderation: &'a [u64],
}

/// Writes `dataset/meta.sqlite`.
pub fn write_meta(dataset: &Path, meta: &Meta, stop: &AtomicBool) -> Result<()> {
    let path = dataset.join(META_FILE);
    let connection = create_bulk(&path)?;
    let at = |r: rusqlite::Result<usize>| r.at(&path);
    connection
        .execute_batch(
            "CREATE TABLE info (key TEXT PRIMARY KEY, value);
             CREATE TABLE users (id INTEGER PRIMARY KEY, original_id TEXT);
             CREATE TABLE palette (id INTEGER PRIMARY KEY, hex TEXT, r INTEGER, g INTEGER, b INTEGER);
             CREATE TABLE partitions (id INTEGER PRIMARY KEY, file TEXT, first_event INTEGER, events INTEGER,
                                      first_timestamp INTEGER, last_timestamp INTEGER, checksum TEXT);
             CREATE TABLE sources (id INTEGER PRIMARY KEY, name TEXT, path TEXT, size INTEGER, rows INTEGER, rejected_rows INTEGER);
             CREATE TABLE moderation (event_id INTEGER PRIMARY KEY);
             BEGIN;",
        )
        .at(&path)?;
    {
        let mut user = connection.prepare("INSERT INTO users VALUES (?1, ?2)").at(&path)?;
        for (id, hash) in meta.users.iter().enumerate() {
            if id % 65536 == 0 && stop.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            at(user.execute(params![id as i64, String::from_utf8_lossy(hash)]))?;
        }
        let mut color = connection.prepare("INSERT INTO palette VALUES (?1, ?2, ?3, ?4, ?5)").at(&path)?;
        for (id, rgb) in PALETTE_RGB.iter().enumerate() {
            at(color.execute(params![id as i64, hex_string(id as u8), rgb[0], rgb[1], rgb[2]]))?;
        }
        let mut partition = connection.prepare("INSERT INTO partitions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").at(&path)?;
        for p in meta.partitions {
            at(partition.execute(params![
                p.index as i64,
                partition_file(p.index),
                p.first_event as i64,
                p.events as i64,
                p.first_timestamp_ms,
                p.last_timestamp_ms,
                format!("crc32:{:08x}", p.checksum)
            ]))?;
        }
        let mut source = connection.prepare("INSERT INTO sources VALUES (?1, ?2, ?3, ?4, ?5, ?6)").at(&path)?;
        for (id, s) in meta.sources.iter().enumerate() {
            let name = s.path.file_name().map_or_else(|| s.path.display().to_string(), |n| n.to_string_lossy().into_owned());
            at(source.execute(params![
                id as i64,
                name,
                s.path.display().to_string(),
                s.size as i64,
                s.rows as i64,
                s.rejected_rows as i64
            ]))?;
        }
        let mut moderation = connection.prepare("INSERT INTO moderation VALUES (?1)").at(&path)?;
        for &id in meta.moderation {
            at(moderation.execute(params![id as i64]))?;
        }
        let info = &meta.info;
        let mut entry = connection.prepare("INSERT INTO info VALUES (?1, ?2)").at(&path)?;
        let numbers: [(&str, i64); 12] = [
            ("format_version", FORMAT_VERSION),
            ("events", info.events as i64),
            ("users", info.users as i64),
            ("partitions", info.partitions as i64),
            ("partition_size", info.partition_size as i64),
            ("first_timestamp_ms", info.first_timestamp_ms),
            ("last_timestamp_ms", info.last_timestamp_ms),
            ("canvas_width", info.canvas_width as i64),
            ("canvas_height", info.canvas_height as i64),
            ("moderation_events", info.moderation_events as i64),
            ("rows", info.rows as i64),
            ("rejected_rows", info.rejected_rows as i64),
        ];
        for (key, value) in numbers {
            at(entry.execute(params![key, value]))?;
        }
        at(entry.execute(params!["created_by", concat!("rplacevit ", env!("CARGO_PKG_VERSION"))]))?;
    }
    connection.execute_batch("COMMIT;").at(&path)?;
    connection.close().map_err(|(_, source)| Error::Sqlite { path: path.clone(), source })
}

/// Reads the summary of the dataset folder `dataset`; a clear error when it is missing, was
/// never completed, or comes from an incompatible version.
pub fn read_info(dataset: &Path) -> Result<DatasetInfo> {
    let path = dataset.join(META_FILE);
    if !dataset.is_dir() {
        return Err(Error::Dataset { path: dataset.to_path_buf(), reason: "no such dataset folder".into() });
    }
    if !path.is_file() {
        return Err(Error::Dataset {
            path: dataset.to_path_buf(),
            reason: format!("not a dataset: {META_FILE} is missing (was the ingest completed?)"),
        });
    }
    let connection = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).at(&path)?;
    let damaged = |reason: String| Error::Dataset { path: path.clone(), reason };
    let value = |key: &str| -> Result<i64> {
        connection
            .query_row("SELECT value FROM info WHERE key = ?1", [key], |row| row.get::<_, i64>(0))
            .map_err(|e| damaged(format!("cannot read `{key}` from the info table: {e}")))
    };
    let version = value("format_version")?;
    if version != FORMAT_VERSION {
        return Err(damaged(format!("dataset format {version}, this rplacevit reads format {FORMAT_VERSION}: ingest again")));
    }
    Ok(DatasetInfo {
        events: value("events")? as u64,
        users: value("users")? as u64,
        partitions: value("partitions")? as u64,
        partition_size: value("partition_size")? as u64,
        first_timestamp_ms: value("first_timestamp_ms")?,
        last_timestamp_ms: value("last_timestamp_ms")?,
        canvas_width: value("canvas_width")? as u32,
        canvas_height: value("canvas_height")? as u32,
        moderation_events: value("moderation_events")? as u64,
        rows: value("rows")? as u64,
        rejected_rows: value("rejected_rows")? as u64,
    })
}

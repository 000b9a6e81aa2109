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
//! - `manifest.json`, written strictly last, once every other file is durable: the format
//!   version, a generation id unique to this ingest, the [`DatasetInfo`], and every file's size
//!   and CRC-32 checksums (one per [`CHECKSUM_BLOCK`] bytes). A folder without it is not a
//!   dataset; `rplacevit verify` checks every byte against it.
//!
//! Readers open the files through the folder itself ([`Folder`]), not its path, so one reader
//! reads one dataset even while an ingest with `--force` replaces it.

use crate::error::{Context, Error, Result};
use crate::event::Event;
use crate::palette::hex_of;
use crate::sqlite_writer::write_pixels_database;
use crate::stop::check;
use rayon::prelude::*;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Bumped whenever the layout above changes in a way old readers cannot follow.
/// 2: `events/`, `index/` and `manifest.json`; 3: the year and canvas origin in the manifest;
/// 4: the checkpoints' ages as ticks and rests, the tile event times from the dataset's first
/// event; 5: the ages index, on 32×32 tiles with checkpoints every 128 events (see
/// [`crate::index`]).
pub const FORMAT_VERSION: i64 = 5;

pub const MANIFEST_FILE: &str = "manifest.json";
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

/// What `rplacevit info` shows: the `info` of `manifest.json` (and the `info` table of
/// `meta.sqlite`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub events: u64,
    pub users: u64,
    pub partitions: u64,
    pub partition_size: u64,
    pub first_timestamp_ms: i64,
    pub last_timestamp_ms: i64,
    pub canvas_width: u32,
    pub canvas_height: u32,
    /// The r/place year whose files these are.
    pub year: u16,
    /// The official coordinates of stored pixel (0, 0): official = stored + origin.
    pub origin_x: i32,
    pub origin_y: i32,
    pub moderation_events: u64,
    /// Events dropped as exact duplicates (`dedupe`).
    pub duplicates_dropped: u64,
    pub rows: u64,
    pub rejected_rows: u64,
}

impl DatasetInfo {
    /// Its numbers by name, as `meta.sqlite`'s `info` table holds them.
    pub fn numbers(&self) -> [(&'static str, i64); 15] {
        [
            ("events", self.events as i64),
            ("users", self.users as i64),
            ("partitions", self.partitions as i64),
            ("partition_size", self.partition_size as i64),
            ("first_timestamp_ms", self.first_timestamp_ms),
            ("last_timestamp_ms", self.last_timestamp_ms),
            ("canvas_width", self.canvas_width as i64),
            ("canvas_height", self.canvas_height as i64),
            ("year", self.year as i64),
            ("origin_x", self.origin_x as i64),
            ("origin_y", self.origin_y as i64),
            ("moderation_events", self.moderation_events as i64),
            ("duplicates_dropped", self.duplicates_dropped as i64),
            ("rows", self.rows as i64),
            ("rejected_rows", self.rejected_rows as i64),
        ]
    }
}

fn checksum(first_event: u64, events: &[Event]) -> u32 {
    rows_checksum(first_event, events.iter().map(|e| (e.timestamp_ms, e.user_id, e.color(), e.x(), e.y())))
}

/// The checksum of [`PartitionInfo`] of rows `(timestamp, user_id, color, x, y)` with ids
/// `first_event ..`.
pub fn rows_checksum(first_event: u64, rows: impl Iterator<Item = (i64, u32, u8, u16, u16)>) -> u32 {
    // CRC updates of a few bytes are slow: serialise blocks of rows, update once per block.
    const ROW: usize = 25;
    const ROWS: usize = 4096;
    let mut crc = flate2::Crc::new();
    let mut block = Vec::with_capacity(ROW * ROWS);
    for (id, (timestamp, user_id, color, x, y)) in (first_event..).zip(rows) {
        block.extend_from_slice(&id.to_le_bytes());
        block.extend_from_slice(&timestamp.to_le_bytes());
        block.extend_from_slice(&user_id.to_le_bytes());
        block.push(color);
        block.extend_from_slice(&x.to_le_bytes());
        block.extend_from_slice(&y.to_le_bytes());
        if block.len() == ROW * ROWS {
            crc.update(&block);
            block.clear();
        }
    }
    crc.update(&block);
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
        let palette = crate::csv_rows::Format::of_year(meta.info.year).map_err(Error::Internal)?.palette();
        for (id, &value) in palette.iter().enumerate() {
            at(color.execute(params![id as i64, hex_of(value), value >> 16, value >> 8 & 0xFF, value & 0xFF]))?;
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
        let numbers = [("format_version", FORMAT_VERSION)].into_iter().chain(info.numbers());
        for (key, value) in numbers {
            at(entry.execute(params![key, value]))?;
        }
        at(entry.execute(params!["created_by", concat!("rplacevit ", env!("CARGO_PKG_VERSION"))]))?;
    }
    // A user's hash finds its id in a lookup, not a scan of millions of rows.
    connection.execute_batch("COMMIT; CREATE INDEX users_original_id ON users (original_id);").at(&path)?;
    connection.close().map_err(|(_, source)| Error::Sqlite { path: path.clone(), source })
}

/// Bytes of a file covered by one checksum of the manifest: files are checked in blocks, in
/// parallel, and a damaged block is named by its byte range.
pub const CHECKSUM_BLOCK: u64 = 16 << 20;

/// What `manifest.json` holds (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: i64,
    /// Unique to one ingest: two folders with the same generation hold the same dataset.
    pub generation: String,
    pub created_by: String,
    pub info: DatasetInfo,
    pub checksum_block: u64,
    pub files: Vec<FileEntry>,
}

/// One file of a dataset folder as the ingest wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// CRC-32 of each block of [`Manifest::checksum_block`] bytes, as 8 hex digits.
    pub crc32: Vec<String>,
}

/// CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// The checksums of each [`CHECKSUM_BLOCK`] of `bytes`, as the manifest writes them.
pub fn block_checksums(bytes: &[u8]) -> Vec<String> {
    bytes.par_chunks(CHECKSUM_BLOCK as usize).map(|block| format!("{:08x}", crc32(block))).collect()
}

/// Maps a whole file for reading; an empty file maps to nothing.
pub fn map_file(file: &File, path: &Path) -> Result<Option<memmap2::Mmap>> {
    if file.metadata().at(path)?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: dataset files are never written in place once their folder is published (see
    // the guarantees in the README: another program truncating them is not guarded against).
    Ok(Some(unsafe { memmap2::Mmap::map(file) }.at(path)?))
}

/// Completes a staged dataset folder: makes every file in it durable (`fsync`), records their
/// sizes and checksums and `info` in `manifest.json`, written last and made durable too.
pub fn finish(folder: &Path, info: &DatasetInfo, stop: &AtomicBool) -> Result<Manifest> {
    let mut paths = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    list_files(folder, folder, &mut paths, &mut folders)?;
    paths.sort();
    check(stop)?;
    let files = paths
        .par_iter()
        .map(|relative| -> Result<FileEntry> {
            let path = folder.join(relative);
            let file = File::open(&path).at(&path)?;
            file.sync_all().at(&path)?;
            let map = map_file(&file, &path)?;
            let bytes = map.as_deref().unwrap_or(&[]);
            Ok(FileEntry { path: relative.clone(), bytes: bytes.len() as u64, crc32: block_checksums(bytes) })
        })
        .collect::<Result<Vec<_>>>()?;
    for sub in &folders {
        crate::publish::sync_folder(sub)?;
    }
    check(stop)?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        generation: generation_id(),
        created_by: concat!("rplacevit ", env!("CARGO_PKG_VERSION")).into(),
        info: info.clone(),
        checksum_block: CHECKSUM_BLOCK,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    let partial = folder.join(format!("{MANIFEST_FILE}.partial"));
    let mut file = File::create(&partial).at(&partial)?;
    file.write_all(&text).and_then(|()| file.sync_all()).at(&partial)?;
    let path = folder.join(MANIFEST_FILE);
    std::fs::rename(&partial, &path).at(&path)?;
    crate::publish::sync_folder(folder)?;
    Ok(manifest)
}

/// Appends the files under `dir` (relative to `root`, `/`-separated) to `files` and the
/// folders to `folders`.
fn list_files(root: &Path, dir: &Path, files: &mut Vec<String>, folders: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if path.is_dir() {
            folders.push(path.clone());
            list_files(root, &path, files, folders)?;
        } else {
            let relative = path.strip_prefix(root).map_err(|e| Error::Internal(e.to_string()))?;
            let parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            files.push(parts.join("/"));
        }
    }
    Ok(())
}

/// 128 random bits as hex: the standard library's per-process random hash keys, mixed with the
/// time and the process id.
fn generation_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(now);
        hasher.write_u32(std::process::id());
        hasher.write_u64(salt);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// A dataset folder opened for reading: its files are opened relative to the open folder, not
/// to its path, so everything read through one `Folder` comes from one dataset even while an
/// ingest replaces the folder at that path.
pub struct Folder {
    path: PathBuf,
    dir: File,
}

impl Folder {
    /// Opens the folder `path`; [`Error::Dataset`] when there is none.
    pub fn open(path: &Path) -> Result<Folder> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_DIRECTORY);
        match options.open(path) {
            Ok(dir) => Ok(Folder { path: path.to_path_buf(), dir }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::Dataset { path: path.to_path_buf(), reason: "no such dataset folder".into() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory || path.exists() && !path.is_dir() => {
                Err(Error::Dataset { path: path.to_path_buf(), reason: "not a dataset folder (not a folder at all)".into() })
            }
            Err(e) => Err(e).at(path),
        }
    }

    /// The same open folder, once more (the descriptor duplicated).
    pub fn reopen(&self) -> Result<Folder> {
        Ok(Folder { path: self.path.clone(), dir: self.dir.try_clone().at(&self.path)? })
    }

    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the regular file `relative` (`/`-separated, inside the folder: no absolute path, no
    /// `..`) for reading; a FIFO or a device is refused, never waited on.
    pub fn file(&self, relative: &str) -> std::io::Result<File> {
        let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string());
        if !inside(relative) {
            return Err(invalid("not a path inside the dataset folder"));
        }
        #[cfg(unix)]
        let file = {
            use std::ffi::CString;
            use std::os::fd::{AsRawFd, FromRawFd};
            let name = CString::new(relative).map_err(|_| invalid("holds a NUL byte"))?;
            // O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused just below).
            let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
            // SAFETY: `name` is NUL-terminated and the folder's descriptor is open; a descriptor
            // returned by openat is ours alone.
            let fd = unsafe { libc::openat(self.dir.as_raw_fd(), name.as_ptr(), flags) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            unsafe { File::from_raw_fd(fd) }
        };
        #[cfg(not(unix))]
        let file = File::open(self.path.join(relative))?;
        if !file.metadata()?.is_file() {
            return Err(invalid("not a regular file"));
        }
        Ok(file)
    }

    /// A path by which other libraries (SQLite) open `relative` inside this very folder, even
    /// after the folder was replaced at its path: on Linux, through this process's descriptor
    /// of the folder.
    pub fn path_of(&self, relative: &str) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let through = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
            if through.is_dir() {
                return through.join(relative);
            }
        }
        self.path.join(relative)
    }

    /// The folder no longer has its path: it was replaced (or removed) since it was opened.
    pub fn replaced(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (self.dir.metadata(), std::fs::metadata(&self.path)) {
                (Ok(a), Ok(b)) => (a.dev(), a.ino()) != (b.dev(), b.ino()),
                _ => true,
            }
        }
        #[cfg(not(unix))]
        false
    }

    /// Reads `manifest.json`; a clear error when it is missing (an ingest that never finished,
    /// or an older format), unreadable, or of another format version.
    pub fn manifest(&self) -> Result<Manifest> {
        let path = self.path.join(MANIFEST_FILE);
        let damaged = |reason: String| Error::Dataset { path: path.clone(), reason };
        let text = match self.file(MANIFEST_FILE).and_then(|mut f| {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut text).map(|_| text)
        }) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reason = if self.file(META_FILE).is_ok() {
                    format!("not a complete dataset: {MANIFEST_FILE} is missing (an ingest that did not finish, or a dataset of an older rplacevit: ingest it again)")
                } else {
                    format!("not a dataset: {MANIFEST_FILE} is missing")
                };
                return Err(Error::Dataset { path: self.path.clone(), reason });
            }
            Err(e) => return Err(e).at(&path),
        };
        #[derive(Deserialize)]
        struct Version {
            format_version: i64,
        }
        let version =
            serde_json::from_slice::<Version>(&text).map_err(|e| damaged(format!("unreadable ({e}): ingest the dataset again")))?;
        if version.format_version != FORMAT_VERSION {
            return Err(damaged(format!(
                "dataset format {}, this rplacevit reads format {FORMAT_VERSION}: ingest again",
                version.format_version
            )));
        }
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|e| damaged(format!("unreadable ({e}): ingest the dataset again")))?;
        if let Some(entry) = manifest.files.iter().find(|entry| !inside(&entry.path)) {
            return Err(damaged(format!("lists {:?}, which is not a path inside the folder: ingest the dataset again", entry.path)));
        }
        let info = &manifest.info;
        let consistent = info.partition_size > 0
            && info.partitions == info.events.div_ceil(info.partition_size)
            && info.first_timestamp_ms <= info.last_timestamp_ms
            && info.events > 0;
        if !consistent {
            return Err(damaged(
                "its partition count, partition size and event count (or time range) contradict each other: ingest the dataset again"
                    .into(),
            ));
        }
        Ok(manifest)
    }
}

/// `relative` names something inside a folder: relative, `/`-separated, without `.` or `..`.
fn inside(relative: &str) -> bool {
    !relative.is_empty() && !relative.starts_with('/') && relative.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

/// A complete dataset is at `path` (a manifest this version reads, or the `info` table of an
/// earlier version's `meta.sqlite`): what `--force` may replace.
pub fn is_dataset(path: &Path) -> bool {
    let Ok(folder) = Folder::open(path) else { return false };
    if folder.manifest().is_ok() {
        return true;
    }
    let earlier = || -> rusqlite::Result<i64> {
        let meta = rusqlite::Connection::open_with_flags(folder.path_of(META_FILE), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        meta.query_row("SELECT value FROM info WHERE key = 'format_version'", [], |row| row.get(0))
    };
    folder.file(META_FILE).is_ok() && earlier().is_ok()
}

/// Runs `read` on the folder `path`, again (a few times, briefly apart) when it fails because
/// an ingest replaced the folder meanwhile: so a reader sees the old dataset or the new one,
/// never a mix and never a spurious error.
pub fn with_folder<T>(path: &Path, read: impl Fn(&Folder) -> Result<T>) -> Result<T> {
    const ATTEMPTS: usize = 100;
    let pause = || std::thread::sleep(std::time::Duration::from_millis(10));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let folder = match Folder::open(path) {
            Err(_) if attempt < ATTEMPTS && replacement_under_way(path) => {
                pause();
                continue;
            }
            folder => folder?,
        };
        match read(&folder) {
            Err(_) if attempt < ATTEMPTS && folder.replaced() => pause(),
            result => return result,
        }
    }
}

/// A replacement in two steps (where names cannot be exchanged) is between its renames.
fn replacement_under_way(path: &Path) -> bool {
    crate::publish::beside(path, "replaced").is_ok_and(|p| p.exists())
}

/// Reads the summary of the dataset folder `dataset`; a clear error when it is missing, was
/// never completed, or comes from an incompatible version.
pub fn read_info(dataset: &Path) -> Result<DatasetInfo> {
    Ok(read_manifest(dataset)?.info)
}

/// Reads the manifest of the dataset folder `dataset` (see [`read_info`]).
pub fn read_manifest(dataset: &Path) -> Result<Manifest> {
    with_folder(dataset, Folder::manifest)
}

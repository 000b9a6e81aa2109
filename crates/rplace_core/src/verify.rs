//! `rplacevit verify`: every stored byte against the checksums of the manifest, each SQLite file
//! against SQLite's own integrity check, and the files against each other (partitions and
//! snapshots against the event columns, the tile index against a replay of them).

use crate::dataset::{self, rows_checksum, Folder, CHECKSUM_BLOCK};
use crate::error::{Context, Error, Result};
use crate::history::History;
use crate::progress;
use crate::stop::check;
use rayon::prelude::*;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// One thing wrong with a dataset: the file and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Checks the dataset folder `dataset` and returns every problem found (none: the dataset is
/// exactly what its ingest wrote). An error only when there is no dataset to check (no folder,
/// no readable manifest) or on [`Error::Interrupted`].
pub fn verify(dataset: &Path, progress: bool, stop: &AtomicBool) -> Result<Vec<Problem>> {
    let folder = Folder::open(dataset)?;
    let manifest = folder.manifest()?;
    let problem = |file: &str, reason: String| Problem { path: dataset.join(file), reason };
    let mut problems = checksum_problems(&folder, &manifest, progress, stop)?;

    let history = match History::open_folder(folder.reopen()?) {
        Ok(history) => history,
        Err(Error::Dataset { path, reason }) => {
            problems.push(Problem { path, reason });
            return Ok(problems);
        }
        Err(error) => return Err(error),
    };
    if let Err(Error::Dataset { path, reason }) = history.check_columns() {
        problems.push(Problem { path, reason });
        return Ok(problems); // the cross-checks below replay the columns
    }
    let bar = progress::bar(progress, 3, "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} cross-checks {msg}");
    bar.set_prefix("verify");
    bar.set_message("snapshots");
    problems.extend(history.snapshot_problems(stop)?.into_iter().map(|reason| problem(dataset::SNAPSHOTS_FILE, reason)));
    bar.inc(1);
    bar.set_message("tile and ages indexes");
    problems.extend(history.index_problems(stop)?.into_iter().map(|(file, reason)| problem(&file, reason)));
    bar.inc(1);
    bar.set_message("SQLite partitions");
    problems.extend(sqlite_problems(&folder, &history, stop)?);
    bar.finish_and_clear();
    Ok(problems)
}

/// Every file of the manifest: present, of its size, and with its checksums, block by block.
fn checksum_problems(folder: &Folder, manifest: &dataset::Manifest, progress: bool, stop: &AtomicBool) -> Result<Vec<Problem>> {
    let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let bar = progress::bar(progress, total, "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}");
    bar.set_prefix("verify");
    let block = manifest.checksum_block.max(1);
    let mut problems = Vec::new();
    for entry in &manifest.files {
        check(stop)?;
        let path = folder.path().join(&entry.path);
        let problem = |reason: String| Problem { path: path.clone(), reason };
        let file = match folder.file(&entry.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(problem("missing".into()));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                problems.push(problem(e.to_string()));
                continue;
            }
            Err(e) => return Err(e).at(&path),
        };
        let map = dataset::map_file(&file, &path)?;
        let bytes = map.as_deref().unwrap_or(&[]);
        if bytes.len() as u64 != entry.bytes {
            problems.push(problem(format!("is {} bytes long, the manifest says {}", bytes.len(), entry.bytes)));
            bar.inc(entry.bytes);
            continue;
        }
        let blocks = bytes.chunks(block as usize).count();
        if blocks != entry.crc32.len() {
            problems.push(problem(format!("the manifest holds {} checksums for its {blocks} blocks", entry.crc32.len())));
            continue;
        }
        let bad: Vec<usize> = bytes
            .par_chunks(block as usize)
            .zip(&entry.crc32)
            .enumerate()
            .filter_map(|(k, (data, expected))| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let ok = format!("{:08x}", dataset::crc32(data)) == *expected;
                bar.inc(data.len() as u64);
                (!ok).then_some(k)
            })
            .collect();
        check(stop)?;
        if let (Some(&first), count) = (bad.first(), bad.len()) {
            let start = first as u64 * block;
            let end = (start + block).min(entry.bytes);
            let more = if count > 1 { format!(" (and {} more blocks of {CHECKSUM_BLOCK} bytes)", count - 1) } else { String::new() };
            problems.push(problem(format!("bytes {start}..{end} differ from what the ingest wrote (checksum){more}")));
        }
    }
    bar.finish_and_clear();
    Ok(problems)
}

/// SQLite's integrity check of `meta.sqlite` and of every partition, and each partition's rows
/// against the event columns and the checksum that `meta.sqlite` records for it.
fn sqlite_problems(folder: &Folder, history: &History, stop: &AtomicBool) -> Result<Vec<Problem>> {
    let info = history.info();
    let meta_path = folder.path().join(dataset::META_FILE);
    let mut problems = Vec::new();
    let recorded: Vec<(i64, i64, String)> = match open_read_only(&folder.path_of(dataset::META_FILE)) {
        Ok(meta) => {
            if let Some(reason) = integrity(&meta) {
                problems.push(Problem { path: meta_path.clone(), reason });
            }
            problems.extend(info_problems(&meta, history).into_iter().map(|reason| Problem { path: meta_path.clone(), reason }));
            let rows = meta.prepare("SELECT first_event, events, checksum FROM partitions ORDER BY id").and_then(|mut query| {
                query.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<Vec<_>>>()
            });
            let users = meta.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0));
            match (rows, users) {
                (Ok(rows), Ok(users)) => {
                    if users as u64 != info.users {
                        problems.push(Problem {
                            path: meta_path.clone(),
                            reason: format!("holds {users} users, the manifest says {}", info.users),
                        });
                    }
                    rows
                }
                (Err(e), _) | (_, Err(e)) => {
                    problems.push(Problem { path: meta_path.clone(), reason: format!("unreadable: {e}") });
                    Vec::new()
                }
            }
        }
        Err(e) => {
            problems.push(Problem { path: meta_path.clone(), reason: format!("cannot be opened: {e}") });
            Vec::new()
        }
    };
    let size = info.partition_size as usize;
    let partitions = info.partitions as usize;
    if recorded.len() != partitions && !recorded.is_empty() {
        problems.push(Problem {
            path: meta_path.clone(),
            reason: format!("lists {} partitions, the manifest says {partitions}", recorded.len()),
        });
    }
    let found: Vec<Problem> = (0..partitions)
        .into_par_iter()
        .filter_map(|index| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let first = index * size;
            let end = (first + size).min(history.len());
            let columns = || {
                (first..end)
                    .map(|id| (history.timestamps()[id], history.user_ids()[id], history.colors()[id], history.xs()[id], history.ys()[id]))
            };
            let expected = rows_checksum(first as u64, columns());
            let file = dataset::partition_file(index);
            let path = folder.path().join(&file);
            let problem = |reason: String| Some(Problem { path: path.clone(), reason });
            if folder.file(&file).is_err() {
                return problem("missing".into());
            }
            if let Some((_, _, checksum)) = recorded.get(index) {
                if *checksum != format!("crc32:{expected:08x}") {
                    return Some(Problem {
                        path: meta_path.clone(),
                        reason: format!("the checksum of partition {index} differs from the event columns"),
                    });
                }
            }
            let connection = match open_read_only(&folder.path_of(&file)) {
                Ok(connection) => connection,
                Err(e) => return problem(format!("cannot be opened: {e}")),
            };
            if let Some(reason) = integrity(&connection) {
                return problem(reason);
            }
            let rows = connection.prepare("SELECT id, timestamp, user_id, color_id, x, y FROM pixels ORDER BY id").and_then(|mut query| {
                query
                    .query_map([], |r| Ok((r.get::<_, i64>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))))?
                    .collect::<rusqlite::Result<Vec<(i64, (i64, u32, u8, u16, u16))>>>()
            });
            match rows {
                Err(e) => problem(format!("unreadable: {e}")),
                Ok(rows) if rows.len() != end - first => problem(format!("holds {} rows, the event columns {}", rows.len(), end - first)),
                Ok(rows) => rows
                    .iter()
                    .zip(first..)
                    .zip(columns())
                    .find(|(((id, row), expected_id), column)| *id != *expected_id as i64 || row != column)
                    .and_then(|(((id, _), _), _)| problem(format!("row {id} differs from the event columns"))),
            }
        })
        .collect();
    check(stop)?;
    problems.extend(found);
    Ok(problems)
}

/// The summary in the manifest (which the reader trusts) against the `info` table of
/// `meta.sqlite` and against the event columns.
fn info_problems(meta: &Connection, history: &History) -> Vec<String> {
    let info = history.info();
    let mut problems = Vec::new();
    let (timestamps, n) = (history.timestamps(), history.len());
    let from_columns =
        [("first_timestamp_ms", info.first_timestamp_ms, timestamps[0]), ("last_timestamp_ms", info.last_timestamp_ms, timestamps[n - 1])];
    for (key, manifest, columns) in from_columns {
        if manifest != columns {
            problems.push(format!("the manifest's {key} ({manifest}) differs from the event columns' ({columns})"));
        }
    }
    let recorded = info.numbers();
    for (key, manifest) in recorded {
        match meta.query_row("SELECT value FROM info WHERE key = ?1", [key], |row| row.get::<_, i64>(0)) {
            Ok(value) if value == manifest => {}
            Ok(value) => problems.push(format!("its info table says {key} = {value}, the manifest {manifest}")),
            Err(e) => problems.push(format!("its info table has no {key}: {e}")),
        }
    }
    match meta.query_row("SELECT count(*) FROM moderation", [], |row| row.get::<_, i64>(0)) {
        Ok(count) if count == info.moderation_events as i64 => {}
        Ok(count) => problems.push(format!("lists {count} moderation events, the manifest {}", info.moderation_events)),
        Err(e) => problems.push(format!("its moderation table is unreadable: {e}")),
    }
    problems
}

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // The integrity check looks every index entry up in its table: through a memory map and a
    // large page cache, instead of a read call per page, it runs about twice as fast.
    connection.execute_batch("PRAGMA mmap_size = 4294967296; PRAGMA cache_size = -131072;")?;
    Ok(connection)
}

/// SQLite's complaint about a file, if any.
fn integrity(connection: &Connection) -> Option<String> {
    match connection.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(answer) if answer == "ok" => None,
        Ok(answer) => Some(format!("SQLite's integrity check fails: {answer}")),
        Err(e) => Some(format!("SQLite cannot check it: {e}")),
    }
}

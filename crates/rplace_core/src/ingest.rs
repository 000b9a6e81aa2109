//! Ingestion: official CSV files (plain or gzip, one or many) → a dataset folder (see
//! [`crate::dataset`]).
//!
//! A reader thread decompresses the inputs one after the other and cuts the text into chunks of
//! whole lines; chunks are parsed in parallel and their events collected in input order. A stable
//! sort by timestamp then gives the global order (equal timestamps keep input order, whatever the
//! number of threads); user ids are numbered by first appearance in that order. Partitions and
//! snapshots are written to a staging folder beside the destination, under its lock, and
//! published by one rename once complete and durable (see [`crate::publish`]).

use crate::csv_rows::{parse_chunk, Coordinate, Format, Reject};
use crate::dataset::{self, DatasetInfo, Meta, PartitionInfo, SourceInfo};
use crate::error::{filled, reserve, Context, Error, Result};
use crate::event::Event;
use crate::npy;
use crate::output_folder;
use crate::progress;
use crate::publish::Output;
use crate::stop::{check, run_stoppable};
use hashbrown::{hash_table, HashTable};
use rayon::prelude::*;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Instant;

/// Size of the text chunks handed to the parsers.
const CHUNK_BYTES: usize = 4 << 20;
/// The longest first line read as a header (the official one is 44 bytes): a file that is no
/// CSV is refused after 64 KiB, not held whole in memory.
const MAX_HEADER_BYTES: u64 = 64 << 10;

/// What to do with a row that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Stop at the first bad row with `FILE:LINE: reason`; nothing is written.
    Fail,
    /// Keep the good rows; write every bad one to `rejects.csv` and count it.
    Skip,
}

impl OnError {
    /// Every choice, by the name the API and the command line give it.
    pub const NAMES: [(&'static str, OnError); 2] = [("fail", OnError::Fail), ("skip", OnError::Skip)];
}

impl std::str::FromStr for OnError {
    type Err = Error;

    fn from_str(name: &str) -> Result<OnError> {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, choice)| choice)
            .ok_or_else(|| Error::Argument(format!("`on_error` must be \"fail\" or \"skip\", not {name:?}")))
    }
}

/// The smallest partition size an ingest accepts: every partition stores a whole canvas
/// snapshot (4 MB for 2022), so tiny partitions would multiply the dataset's size.
pub const MIN_PARTITION_SIZE: u64 = 10_000;

/// The default limit of [`IngestOptions::max_rectangle_pixels`]: two and a half whole 2022
/// canvases, far more than the official data's moderation rectangles cover, and 160 MB of
/// events at most.
pub const MAX_RECTANGLE_PIXELS: u64 = 10_000_000;

#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Events per SQLite partition, at least [`MIN_PARTITION_SIZE`].
    pub partition_size: u64,
    pub on_error: OnError,
    /// Replace an existing dataset at the destination.
    pub force: bool,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// The most pixels the moderation rectangles of all inputs may cover together: a few rows
    /// must not become hundreds of millions of events.
    pub max_rectangle_pixels: u64,
    /// Read the inputs as this year's format whatever their headers say (a copy whose header
    /// differs: its first line is skipped, its rows must be in that year's column order); `None`
    /// tells the year from the headers, the same for every input.
    pub year: Option<u16>,
    /// Drop the events equal to an earlier one of the same millisecond (same user, pixel,
    /// color): the official 2022 file repeats some rows exactly. Kept by default.
    pub dedupe: bool,
}

/// The default of [`IngestOptions::partition_size`].
pub const PARTITION_SIZE: u64 = 1_000_000;

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            partition_size: PARTITION_SIZE,
            on_error: OnError::Fail,
            force: false,
            progress: false,
            max_rectangle_pixels: MAX_RECTANGLE_PIXELS,
            year: None,
            dedupe: false,
        }
    }
}

/// What an ingest produced, and where its time went.
#[derive(Clone, Debug)]
pub struct IngestSummary {
    pub info: DatasetInfo,
    pub sources: Vec<SourceInfo>,
    /// Wall-clock seconds of each phase, in order.
    pub phase_seconds: Vec<(&'static str, f64)>,
}

/// Ingests `inputs` (in the order given) into the dataset folder `out`.
pub fn ingest(inputs: &[PathBuf], out: &Path, options: &IngestOptions, should_stop: &dyn Fn() -> bool) -> Result<IngestSummary> {
    if inputs.is_empty() {
        return Err(Error::Argument("no input files given".into()));
    }
    if options.partition_size < MIN_PARTITION_SIZE {
        return Err(Error::Argument(format!(
            "`partition_size` {} is too small: at least {MIN_PARTITION_SIZE} events (each partition stores a whole canvas)",
            options.partition_size
        )));
    }
    check_destination(out, options.force)?;
    let mut sizes = Vec::with_capacity(inputs.len());
    for input in inputs {
        sizes.push(std::fs::metadata(input).at(input)?.len());
    }
    let format = (input_format(inputs, options.year)?, options.year.is_some());
    let output = Output::begin(out, "ingest")?;
    // Checked again under the lock: the first check only spares a doomed run its reading.
    check_destination(out, options.force)?;
    let staging = output.staging().to_path_buf();
    std::fs::create_dir_all(staging.join(dataset::PARTITIONS_DIR)).at(&staging)?;
    output_folder::mark(&staging, "dataset")?;
    let summary = run_stoppable(should_stop, |stop| {
        let mut summary = build(inputs, &sizes, format, &staging, options, stop)?;
        let clock = Instant::now();
        dataset::finish(&staging, &summary.info, stop)?;
        summary.phase_seconds.push(("sync_checksums", clock.elapsed().as_secs_f64()));
        Ok(summary)
    })?;
    output.commit(|found| check_destination(found, options.force).map(|_| ()))?;
    Ok(summary)
}

/// The output folder rule ([`crate::output_folder`]) for a dataset: a dataset is replaced only
/// with `force`, and nothing else ever.
fn check_destination(out: &Path, force: bool) -> Result<()> {
    output_folder::check(out, "dataset", force, "force=True").map(|_| ())
}

/// A run of whole lines of one input.
struct Chunk {
    source: usize,
    /// File line number (1-based) of the chunk's first line.
    first_line: u64,
    text: Vec<u8>,
}

/// Counts the bytes read from disk, for the progress bar.
struct Counted<'a, R> {
    inner: R,
    bytes: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The text of an input (decompressed when it is gzip), counting the bytes read from disk into
/// `bytes`, with its first line read: the header, checked to be `expected`'s (any line when
/// forced), or, without `expected`, the format it names.
fn open_input<'a>(path: &Path, bytes: &'a AtomicU64, expected: Option<(Format, bool)>) -> Result<(Format, Text<'a>, ReadError)> {
    let file = File::open(path).at(path)?;
    let mut raw = BufReader::with_capacity(1 << 20, Counted { inner: file, bytes });
    let is_gzip = raw.fill_buf().at(path)?.starts_with(&[0x1f, 0x8b]);
    let text: Box<dyn Read> = if is_gzip { Box::new(flate2::read::MultiGzDecoder::new(raw)) } else { Box::new(raw) };
    let mut text = BufReader::with_capacity(1 << 20, text);
    let read_error = ReadError { path: path.to_path_buf(), is_gzip };

    let mut header = Vec::new();
    (&mut text).take(MAX_HEADER_BYTES).read_until(b'\n', &mut header).map_err(|e| read_error.of(e))?;
    if header.is_empty() {
        return Err(Error::File { path: path.to_path_buf(), reason: "empty file: no header".into() });
    }
    let cut_short = header.len() as u64 == MAX_HEADER_BYTES && !header.ends_with(b"\n");
    let header_line = header.strip_suffix(b"\n").unwrap_or(&header);
    let format = match expected {
        Some((format, true)) => format,
        _ => Format::detect(header_line).map_err(|reason| {
            // Only the first 64 KiB of a longer first line were read: say so, not their length.
            let reason = if cut_short {
                reason.replace(&format!("({MAX_HEADER_BYTES} bytes)"), &format!("(more than {MAX_HEADER_BYTES} bytes)"))
            } else {
                reason
            };
            Error::File { path: path.to_path_buf(), reason }
        })?,
    };
    if let Some((wanted, false)) = expected.filter(|&(wanted, _)| wanted != format) {
        return Err(Error::File {
            path: path.to_path_buf(),
            reason: format!("an r/place {} file among {} ones: one dataset holds one year", format.year(), wanted.year()),
        });
    }
    Ok((format, text, read_error))
}

/// An input's decompressed text.
type Text<'a> = BufReader<Box<dyn Read + 'a>>;

/// What a failed read of an input's text means.
struct ReadError {
    path: PathBuf,
    is_gzip: bool,
}

impl ReadError {
    fn of(&self, source: std::io::Error) -> Error {
        if self.is_gzip {
            Error::File { path: self.path.clone(), reason: format!("truncated or corrupt gzip data: {source}") }
        } else {
            Error::Io { path: self.path.clone(), source }
        }
    }
}

/// The format of every input: the one forced (`year`), or the one their headers name, the same
/// for all.
fn input_format(inputs: &[PathBuf], year: Option<u16>) -> Result<Format> {
    if let Some(year) = year {
        return Format::of_year(year).map_err(Error::Argument);
    }
    let bytes = AtomicU64::new(0);
    let first = open_input(&inputs[0], &bytes, None)?.0;
    for input in &inputs[1..] {
        let _checked = open_input(input, &bytes, Some((first, false)))?;
    }
    Ok(first)
}

/// Reads input `source` and sends its chunks; returns when done, on error or when the receiver
/// is gone.
fn read_source(
    path: &Path,
    source: usize,
    format: (Format, bool),
    bytes: &AtomicU64,
    send: &mpsc::SyncSender<Result<Chunk>>,
) -> Result<()> {
    let (_, mut text, read_error) = open_input(path, bytes, Some(format))?;
    let mut first_line = 2;
    let mut carry = Vec::new();
    loop {
        let mut buffer = std::mem::take(&mut carry);
        buffer.reserve(CHUNK_BYTES);
        // `take` stops at the chunk size, so reading less means the input has ended.
        let read = (&mut text).take(CHUNK_BYTES as u64).read_to_end(&mut buffer).map_err(|e| read_error.of(e))?;
        let at_end = read < CHUNK_BYTES;
        let end = buffer.len();
        let cut = if at_end { Some(end) } else { memchr::memrchr(b'\n', &buffer).map(|i| i + 1) };
        let Some(cut) = cut else {
            // A whole chunk without a line end (official rows are under 200 bytes): no row can
            // be found in it, in either error mode, and reading on would hold it all.
            return Err(Error::Row {
                path: path.to_path_buf(),
                line: first_line,
                reason: format!("no line end in {} MiB: not r/place rows", CHUNK_BYTES >> 20),
            });
        };
        carry = buffer[cut..].to_vec();
        buffer.truncate(cut);
        let lines = memchr::memchr_iter(b'\n', &buffer).count() as u64;
        if !buffer.is_empty() && send.send(Ok(Chunk { source, first_line, text: buffer })).is_err() {
            return Ok(());
        }
        first_line += lines;
        if at_end {
            return Ok(());
        }
    }
}

/// User hashes → provisional user ids, shared by the parsing threads (sharded to keep them
/// from waiting on each other). Provisional ids depend on thread timing;
/// [`number_users_by_first_event`] turns them into deterministic ones.
struct UserIds {
    shards: Vec<Mutex<HashTable<(u64, u32, UserKey)>>>,
    next: AtomicU32,
    hasher: hashbrown::DefaultHashBuilder,
}

impl UserIds {
    const SHARDS: usize = 64;

    fn new() -> Self {
        UserIds {
            shards: (0..Self::SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            next: AtomicU32::new(0),
            hasher: Default::default(),
        }
    }

    fn id(&self, user: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(user);
        // The table itself uses the low bits (bucket) and the top 7 bits (tag) of the hash:
        // choosing the shard from either would make every key of a shard collide.
        let shard = &self.shards[(hash >> 40) as usize % Self::SHARDS];
        let mut table = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = table.entry(hash, |(h, _, key)| *h == hash && key.as_bytes() == user, |(h, _, _)| *h);
        match entry {
            hash_table::Entry::Occupied(found) => found.get().1,
            hash_table::Entry::Vacant(slot) => {
                let id = self.next.fetch_add(1, Ordering::Relaxed);
                slot.insert((hash, id, UserKey::new(user)));
                id
            }
        }
    }

    /// The hashes indexed by provisional id.
    fn into_hashes(self) -> Result<Vec<Box<[u8]>>> {
        let mut hashes: Vec<Box<[u8]>> = filled(self.next.into_inner() as usize, Box::default(), "numbering the users")?;
        for shard in self.shards {
            for (_, id, key) in shard.into_inner().unwrap_or_else(PoisonError::into_inner) {
                hashes[id as usize] = key.into_boxed();
            }
        }
        Ok(hashes)
    }
}

/// A user hash, kept inside its table entry when it is short enough (the official hashes are
/// 88 bytes): a lookup then touches one place in memory instead of two, which measurably
/// speeds up the ingest of millions of rows.
enum UserKey {
    Inline { len: u8, bytes: [u8; UserKey::INLINE] },
    Heap(Box<[u8]>),
}

impl UserKey {
    const INLINE: usize = 94;

    fn new(user: &[u8]) -> Self {
        if user.len() <= Self::INLINE {
            let mut bytes = [0; Self::INLINE];
            bytes[..user.len()].copy_from_slice(user);
            UserKey::Inline { len: user.len() as u8, bytes }
        } else {
            UserKey::Heap(user.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            UserKey::Inline { len, bytes } => &bytes[..*len as usize],
            UserKey::Heap(bytes) => bytes,
        }
    }

    fn into_boxed(self) -> Box<[u8]> {
        match self {
            UserKey::Inline { .. } => self.as_bytes().into(),
            UserKey::Heap(bytes) => bytes,
        }
    }
}

/// A moderation rectangle of a chunk, expanded only when its chunk is absorbed, in input order,
/// so that the limit on rectangle pixels is checked before the memory is spent, and the row
/// that crosses it is the same whatever the number of threads.
struct Rectangle {
    /// How many of the chunk's pixel events come before it.
    position: usize,
    line: u64,
    timestamp_ms: i64,
    user_id: u32,
    color: u8,
    coordinate: Coordinate,
}

/// One chunk turned into events (in file order) and rejected rows.
struct ChunkEvents {
    source: usize,
    rows: u64,
    rejects: Vec<Reject>,
    /// The events of its pixel rows.
    events: Vec<Event>,
    rectangles: Vec<Rectangle>,
}

/// Parses a chunk and makes its events; runs on the parsing threads.
fn chunk_events(chunk: &Chunk, users: &UserIds, format: Format) -> ChunkEvents {
    let parsed = parse_chunk(&chunk.text, chunk.first_line, format);
    let mut events = Vec::with_capacity(parsed.rows.len());
    let mut rectangles = Vec::new();
    for row in &parsed.rows {
        let user_id = users.id(&parsed.users[row.user.clone()]);
        match row.coordinate {
            Coordinate::Pixel { x, y } => events.push(Event::new(row.timestamp_ms, user_id, x, y, row.color, false)),
            coordinate => rectangles.push(Rectangle {
                position: events.len(),
                line: row.line,
                timestamp_ms: row.timestamp_ms,
                user_id,
                color: row.color,
                coordinate,
            }),
        }
    }
    ChunkEvents {
        source: chunk.source,
        rows: (parsed.rows.len() + parsed.rejects.len()) as u64,
        rejects: parsed.rejects,
        events,
        rectangles,
    }
}

/// Events gathered from the parsed chunks, in input order.
struct Collected<'a> {
    inputs: &'a [PathBuf],
    on_error: OnError,
    max_rectangle_pixels: u64,
    rectangle_pixels: u64,
    events: Vec<Event>,
    sources: Vec<SourceInfo>,
    rejects: Option<csv::Writer<BufWriter<File>>>,
    rejects_path: PathBuf,
    first_reject: Option<String>,
}

impl Collected<'_> {
    fn absorb(&mut self, chunk: ChunkEvents) -> Result<()> {
        let path = &self.inputs[chunk.source];
        let counts = &mut self.sources[chunk.source];
        counts.rows += chunk.rows;
        counts.rejected_rows += chunk.rejects.len() as u64;
        if let Some(reject) = chunk.rejects.first() {
            let row_error = Error::Row { path: path.clone(), line: reject.line, reason: reject.reason.clone() };
            match (self.on_error, &mut self.rejects) {
                (OnError::Fail, _) | (_, None) => return Err(row_error),
                (OnError::Skip, Some(writer)) => {
                    self.first_reject.get_or_insert_with(|| row_error.to_string());
                    let file = path.display().to_string();
                    for reject in &chunk.rejects {
                        writer
                            .write_record([file.as_str(), &reject.line.to_string(), &reject.reason, &reject.text])
                            .map_err(|e| Error::Io { path: self.rejects_path.clone(), source: e.into() })?;
                    }
                }
            }
        }
        reserve(&mut self.events, chunk.events.len(), "collecting the events")?;
        let mut done = 0;
        for rectangle in &chunk.rectangles {
            self.events.extend_from_slice(&chunk.events[done..rectangle.position]);
            done = rectangle.position;
            let pixels = rectangle.coordinate.pixel_count();
            self.rectangle_pixels += pixels;
            if self.rectangle_pixels > self.max_rectangle_pixels {
                return Err(Error::Row {
                    path: path.clone(),
                    line: rectangle.line,
                    reason: format!(
                        "this moderation rectangle ({pixels} pixels) brings the rectangles to {} pixels, over the limit of {} \
                         (`max_rectangle_pixels`)",
                        self.rectangle_pixels, self.max_rectangle_pixels
                    ),
                });
            }
            // Room for the rectangle and the chunk's pixel events after it: the extends below
            // never grow the vector (infallibly) on their own.
            reserve(&mut self.events, pixels as usize + chunk.events.len() - rectangle.position, "expanding the moderation rectangles")?;
            let Rectangle { timestamp_ms, user_id, color, coordinate, .. } = *rectangle;
            self.events.extend(coordinate.pixels().map(|(x, y)| Event::new(timestamp_ms, user_id, x, y, color, true)));
        }
        self.events.extend_from_slice(&chunk.events[done..]);
        Ok(())
    }
}

/// The three phases of an ingest, timed: [`read_and_parse`], [`order`], [`write`].
fn build(
    inputs: &[PathBuf],
    sizes: &[u64],
    format: (Format, bool),
    staging: &Path,
    options: &IngestOptions,
    stop: &AtomicBool,
) -> Result<IngestSummary> {
    let mut phases = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&'static str, f64)>| {
        phases.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let parsed = read_and_parse(inputs, sizes, format, staging, options, stop)?;
    lap("read_parse", &mut phases);
    let ordered = order(inputs, parsed, format.0, options, stop, &mut |name| lap(name, &mut phases))?;
    write(staging, &ordered, options, stop)?;
    lap("write", &mut phases);
    Ok(IngestSummary { info: ordered.info, sources: ordered.sources, phase_seconds: phases })
}

/// What reading the inputs gave: their events in input order, their users, their rows.
struct Parsed {
    events: Vec<Event>,
    users: UserIds,
    sources: Vec<SourceInfo>,
    /// The first rejected row, as its error says it (skip mode).
    first_reject: Option<String>,
}

/// Reads the inputs one after the other on a reader thread, parses their chunks in parallel,
/// and collects the events in input order; rejected rows go to `staging/rejects.csv` (skip mode)
/// or end the ingest (fail mode).
fn read_and_parse(
    inputs: &[PathBuf],
    sizes: &[u64],
    format: (Format, bool),
    staging: &Path,
    options: &IngestOptions,
    stop: &AtomicBool,
) -> Result<Parsed> {
    let total_bytes: u64 = sizes.iter().sum();
    let bar = progress::bar(
        options.progress,
        total_bytes,
        "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    );
    bar.set_prefix("ingest");
    let rejects_path = staging.join(dataset::REJECTS_FILE);
    let rejects = match options.on_error {
        OnError::Fail => None,
        OnError::Skip => {
            let file = File::create(&rejects_path).at(&rejects_path)?;
            let mut writer = csv::Writer::from_writer(BufWriter::new(file));
            writer
                .write_record(["file", "line", "reason", "text"])
                .map_err(|e| Error::Io { path: rejects_path.clone(), source: e.into() })?;
            Some(writer)
        }
    };
    let mut collected = Collected {
        inputs,
        on_error: options.on_error,
        max_rectangle_pixels: options.max_rectangle_pixels,
        rectangle_pixels: 0,
        events: Vec::new(),
        sources: inputs.iter().zip(sizes).map(|(p, &size)| SourceInfo { path: p.clone(), size, rows: 0, rejected_rows: 0 }).collect(),
        rejects,
        rejects_path: rejects_path.clone(),
        first_reject: None,
    };
    let users = UserIds::new();
    let bytes_read = AtomicU64::new(0);
    // One bounded channel per input, and up to one reader per core: several gzip inputs (the
    // official parts) decompress at once, while their chunks are taken in input order. The
    // readers share one budget of about two chunks per core in flight.
    let threads = rayon::current_num_threads().max(1);
    let readers = inputs.len().min(threads);
    let capacity = (2 * threads.max(2)).div_ceil(readers.max(1)).max(2);
    let (senders, receivers): (Vec<_>, Vec<_>) = inputs.iter().map(|_| mpsc::sync_channel::<Result<Chunk>>(capacity)).unzip();
    let senders: Vec<Mutex<Option<mpsc::SyncSender<Result<Chunk>>>>> = senders.into_iter().map(|s| Mutex::new(Some(s))).collect();
    let (next, failed) = (AtomicU32::new(0), AtomicBool::new(false));
    std::thread::scope(|scope| -> Result<()> {
        let (senders, next, failed, bytes) = (&senders, &next, &failed, &bytes_read);
        for _ in 0..readers {
            scope.spawn(move || {
                // Each reader claims the next input not yet claimed, so the inputs are read in
                // order and an earlier input is always being read or done.
                while !failed.load(Ordering::Relaxed) {
                    let source = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(slot) = senders.get(source) else { return };
                    let Some(send) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
                    if let Err(error) = read_source(&inputs[source], source, format, bytes, &send) {
                        failed.store(true, Ordering::Relaxed);
                        let _ = send.send(Err(error));
                        return;
                    }
                }
            });
        }
        let mut rows = 0u64;
        let mut receivers = receivers.into_iter().peekable();
        // However the loop below ends, no reader starts another input after it (declared after
        // the receivers, so the flag is raised before they are dropped).
        let _stop_readers = RaiseOnDrop(failed);
        while let Some(receive) = receivers.peek() {
            let Ok(first) = receive.recv() else {
                receivers.next(); // this input is done: on to the next
                continue;
            };
            check(stop)?;
            let mut batch = vec![first?];
            while batch.len() < 2 * rayon::current_num_threads() {
                let Some(receive) = receivers.peek() else { break };
                match receive.try_recv() {
                    Ok(chunk) => batch.push(chunk?),
                    Err(mpsc::TryRecvError::Disconnected) => {
                        receivers.next();
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let parsed: Vec<ChunkEvents> = batch.par_iter().map(|chunk| chunk_events(chunk, &users, format.0)).collect();
            for chunk in parsed {
                rows += chunk.rows;
                collected.absorb(chunk)?;
            }
            bar.set_position(bytes.load(Ordering::Relaxed));
            bar.set_message(format!("{rows} rows"));
        }
        Ok(())
    })?;
    if let Some(mut writer) = collected.rejects.take() {
        writer.flush().at(&rejects_path)?;
    }
    bar.finish_and_clear();
    Ok(Parsed { events: collected.events, users, sources: collected.sources, first_reject: collected.first_reject })
}

/// Sets its flag when dropped.
struct RaiseOnDrop<'a>(&'a AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The events in time order with their users numbered, and everything written about them.
struct Ordered {
    events: Vec<Event>,
    /// User hashes by user id.
    users: Vec<Box<[u8]>>,
    moderation: Vec<u64>,
    partitions: Vec<PartitionInfo>,
    sources: Vec<SourceInfo>,
    info: DatasetInfo,
}

/// Sorts the events by timestamp (stable: equal timestamps keep input order), numbers the users
/// by first event, and describes the partitions; `lap` times the sort and the numbering.
fn order(
    inputs: &[PathBuf],
    parsed: Parsed,
    format: Format,
    options: &IngestOptions,
    stop: &AtomicBool,
    lap: &mut dyn FnMut(&'static str),
) -> Result<Ordered> {
    let Parsed { mut events, users, sources, first_reject } = parsed;
    let rows: u64 = sources.iter().map(|s| s.rows).sum();
    let rejected_rows: u64 = sources.iter().map(|s| s.rejected_rows).sum();
    if rows == 0 {
        return Err(match inputs {
            [only] => Error::File { path: only.clone(), reason: "no data rows: the file holds only a header".into() },
            _ => Error::Argument(format!(
                "no data rows in any input ({}): they hold only headers",
                inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )),
        });
    }
    if events.is_empty() {
        // The inputs' fault, not the arguments': a runtime error naming them (exit status 1).
        let why = first_reject.map_or(String::new(), |first| format!("; the first rejected: {first}"));
        let names = inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(Error::File { path: names.into(), reason: format!("no events to ingest: {rows} data rows, {rejected_rows} rejected{why}") });
    }

    // The parallel merge sort allocates a buffer as large as the events, infallibly: the same
    // allocation is tried first, fallibly, and released, so that a lack of memory is an error.
    check(stop)?;
    reserve(&mut Vec::<Event>::new(), events.len(), "sorting the events")?;
    events.par_sort_by_key(|event| event.timestamp_ms);
    let duplicates_dropped = if options.dedupe { drop_duplicates(&mut events) } else { 0 };
    lap("sort");

    let users = number_users_by_first_event(&mut events, users.into_hashes()?)?;
    let mut moderation = Vec::new();
    reserve(&mut moderation, events.iter().filter(|e| e.moderation()).count(), "listing the moderation events")?;
    moderation.extend(events.iter().enumerate().filter(|(_, e)| e.moderation()).map(|(i, _)| i as u64));
    lap("users");

    check(stop)?;
    let partition_size = options.partition_size as usize;
    let partitions: Vec<PartitionInfo> = events
        .par_chunks(partition_size)
        .enumerate()
        .map(|(index, part)| PartitionInfo::of(index, (index * partition_size) as u64, part))
        .collect();
    let info = DatasetInfo {
        events: events.len() as u64,
        users: users.len() as u64,
        partitions: partitions.len() as u64,
        partition_size: options.partition_size,
        first_timestamp_ms: events[0].timestamp_ms,
        last_timestamp_ms: events[events.len() - 1].timestamp_ms,
        canvas_width: format.canvas().width as u32,
        canvas_height: format.canvas().height as u32,
        year: format.year(),
        origin_x: format.canvas().origin_x,
        origin_y: format.canvas().origin_y,
        moderation_events: moderation.len() as u64,
        duplicates_dropped,
        rows,
        rejected_rows,
    };
    Ok(Ordered { events, users, moderation, partitions, sources, info })
}

/// Writes the dataset's files into `staging` (all but the manifest), once the disk is known to
/// have room for them.
fn write(staging: &Path, ordered: &Ordered, options: &IngestOptions, stop: &AtomicBool) -> Result<()> {
    let Ordered { events, users, moderation, partitions, sources, info } = ordered;
    check_free_space(staging, info, users)?;
    let meta = Meta { info: info.clone(), partitions, sources, users, moderation };
    let partition_size = options.partition_size as usize;
    let bar = progress::bar(
        options.progress,
        partitions.len() as u64,
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} partitions ETA {eta}",
    );
    bar.set_prefix("write");
    // The snapshots, the reader's index and meta.sqlite are sequential work each: they share the
    // cores with the partition writers instead of following them.
    let (written, rest) = rayon::join(
        || {
            events.par_chunks(partition_size).enumerate().try_for_each(|(index, part)| {
                dataset::write_partition(staging, index, (index * partition_size) as u64, part, stop)?;
                bar.inc(1);
                Ok(())
            })
        },
        || {
            rayon::join(
                || -> Result<()> {
                    let (width, height) = (info.canvas_width as usize, info.canvas_height as usize);
                    let white = Format::of_year(info.year).map_err(Error::Internal)?.white();
                    write_snapshots(&staging.join(dataset::SNAPSHOTS_FILE), events, width, height, white, partition_size, stop)?;
                    crate::index::write_index(staging, events, width, height, users.len(), white, stop)
                },
                || dataset::write_meta(staging, &meta, stop),
            )
        },
    );
    written?;
    rest.0?;
    rest.1?;
    bar.finish_and_clear();
    Ok(())
}

/// Bytes per event of a dataset besides its snapshots and tile offsets: 17 in the columns, 64 in
/// the index (see [`crate::index`]), about 54 in SQLite's partitions and a few in `meta.sqlite`
/// (measured on the sample: 141 in all, format 5), with a margin.
const BYTES_PER_EVENT: u64 = 150;

/// Refuses to start writing a dataset that the disk under `staging` cannot hold.
fn check_free_space(staging: &Path, info: &DatasetInfo, users: &[Box<[u8]>]) -> Result<()> {
    let area = info.canvas_width as u64 * info.canvas_height as u64;
    let snapshots = (info.partitions + 1) * area;
    let tile_offsets = 2 * 8 * area.div_ceil((crate::index::TILE * crate::index::TILE) as u64)
        + 2 * 8 * area.div_ceil((crate::index::AGE_TILE * crate::index::AGE_TILE) as u64);
    let users: u64 = users.iter().map(|hash| hash.len() as u64 + 16).sum();
    let needed = info.events * BYTES_PER_EVENT + snapshots + tile_offsets + users;
    let Some(free) = free_bytes(staging) else { return Ok(()) };
    if needed > free {
        return Err(Error::Dataset {
            path: staging.to_path_buf(),
            reason: format!(
                "the dataset needs about {} of disk space ({} events, {} partitions), but only {} is free there",
                human_bytes(needed),
                info.events,
                info.partitions,
                human_bytes(free)
            ),
        });
    }
    Ok(())
}

/// Bytes available to this user on the file system of `path`; `None` when it cannot be told.
fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a NUL-terminated path and a buffer of the right type, filled on success.
        if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
            return None;
        }
        let stat = unsafe { stat.assume_init() };
        Some(stat.f_bavail * stat.f_frsize)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn human_bytes(bytes: u64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Drops from `events` (sorted by time) each event equal to an earlier one of its millisecond:
/// same user, pixel, color and kind (a click or a moderation rectangle's). Returns how many.
fn drop_duplicates(events: &mut Vec<Event>) -> u64 {
    let n = events.len();
    let (mut kept, mut start) = (0, 0);
    let mut seen = hashbrown::HashSet::new();
    while start < n {
        let t = events[start].timestamp_ms;
        let end = start + events[start..].partition_point(|e| e.timestamp_ms == t);
        let first_kept = kept;
        // `kept <= i`: each event is moved down before its slot is reused.
        if end - start <= 16 {
            for i in start..end {
                let event = events[i];
                if !events[first_kept..kept].contains(&event) {
                    events[kept] = event;
                    kept += 1;
                }
            }
        } else {
            // A long millisecond (a moderation rectangle's): a set, not a quadratic scan.
            seen.clear();
            for i in start..end {
                let event = events[i];
                if seen.insert(event) {
                    events[kept] = event;
                    kept += 1;
                }
            }
        }
        start = end;
    }
    events.truncate(kept);
    (n - kept) as u64
}

/// Renumbers users by their first event in time order (so ids do not depend on how the input
/// was split into files) and returns their hashes indexed by the new id.
fn number_users_by_first_event(events: &mut [Event], mut hashes: Vec<Box<[u8]>>) -> Result<Vec<Box<[u8]>>> {
    let mut new_id = filled(hashes.len(), u32::MAX, "numbering the users")?;
    let mut by_new_id = Vec::new();
    reserve(&mut by_new_id, hashes.len(), "numbering the users")?;
    for event in events.iter_mut() {
        let old = event.user_id as usize;
        if new_id[old] == u32::MAX {
            new_id[old] = by_new_id.len() as u32;
            by_new_id.push(std::mem::take(&mut hashes[old]));
        }
        event.user_id = new_id[old];
    }
    Ok(by_new_id)
}

/// Writes the canvas before each partition and after the last event (see [`crate::dataset`]).
fn write_snapshots(
    path: &Path,
    events: &[Event],
    width: usize,
    height: usize,
    white: u8,
    partition_size: usize,
    stop: &AtomicBool,
) -> Result<()> {
    let partitions = events.len().div_ceil(partition_size);
    let mut out = npy::create(path)?;
    npy::write_u8_header(&mut out, &[partitions + 1, height, width]).at(path)?;
    let mut canvas = vec![white; width * height];
    for part in events.chunks(partition_size) {
        check(stop)?;
        out.write_all(&canvas).at(path)?;
        for event in part {
            canvas[event.y() as usize * width + event.x() as usize] = event.color();
        }
    }
    out.write_all(&canvas).at(path)?;
    out.flush().at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_stable_for_short_and_long_hashes() {
        let users = UserIds::new();
        let long = vec![b'x'; 300];
        let keys: [&[u8]; 4] = [b"abc==", &long, b"", &[b'y'; UserKey::INLINE]];
        let ids: Vec<u32> = keys.iter().map(|k| users.id(k)).collect();
        assert_eq!(keys.iter().map(|k| users.id(k)).collect::<Vec<_>>(), ids);
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        let hashes = users.into_hashes().unwrap();
        for (key, id) in keys.iter().zip(ids) {
            assert_eq!(&*hashes[id as usize], *key);
        }
    }
}

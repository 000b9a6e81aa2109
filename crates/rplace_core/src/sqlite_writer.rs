//! Writes a partition's SQLite file directly in the SQLite file format
//! (<https://www.sqlite.org/fileformat2.html>), without SQLite.
//!
//! Why: ingest must reach a million rows per second on two cores, and writing a partition
//! through SQLite cost about 2.5 core-seconds per million rows: 0.45 s of (multi-row) INSERTs,
//! 0.3 s for `CREATE INDEX pixels_timestamp` and 1.3–1.5 s for `CREATE INDEX pixels_xy`, because
//! CREATE INDEX always sorts and SQLite's sorter is slow on the many ties of `x`. Our data needs
//! almost no sorting: rows arrive in rowid order, the timestamp index entries `(timestamp, rowid)`
//! arrive in that same order, and only the `(x, y, rowid)` entries need a sort, which a packed
//! `u64` key does in a few tens of milliseconds.
//!
//! How: each b-tree is built bottom-up from its entries in key order, one level at a time. A
//! level packs its cells into pages in order, each page full before the next starts (no free
//! space is kept: a partition is written once, then only read). Every page boundary gives the
//! level above one cell, `(child page, divider key)`; the level above is packed the same way,
//! until a level fits in one page, the root. Table and index trees differ only in where the
//! divider comes from: a table's leaf boundary copies the rowid of the page's last row, while
//! an index boundary (and every interior boundary) moves the next cell up, as each index entry
//! appears exactly once in its tree. Pages are numbered in the order they are written: page 1
//! (the schema, written last because it names the root pages), then the table, then the two
//! indexes, each leaves first.
//!
//! The file is an ordinary SQLite 3 database, indistinguishable to SQL from the one SQLite makes
//! from the same statements and rows (the tests build both and compare them): the same schema
//! text, rows and index entries; `PRAGMA integrity_check` passes and SQLite can go on
//! modifying it.

use crate::event::Event;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes per page: SQLite's default, which every reader handles.
const PAGE_SIZE: usize = 4096;

/// The database header at the start of page 1; page 1's b-tree header follows it.
const DATABASE_HEADER_SIZE: usize = 100;

/// The SQLite release the files are tested against (the one bundled with rusqlite); the header
/// records the version that last wrote the file.
const SQLITE_VERSION_NUMBER: u32 = 3_050_002;

/// Schema text exactly as SQLite stores it for these statements.
const TABLE_SQL: &str =
    "CREATE TABLE pixels (id INTEGER PRIMARY KEY, timestamp INTEGER, user_id INTEGER, color_id INTEGER, x INTEGER, y INTEGER)";
const TIMESTAMP_INDEX_SQL: &str = "CREATE INDEX pixels_timestamp ON pixels (timestamp)";
const XY_INDEX_SQL: &str = "CREATE INDEX pixels_xy ON pixels (x, y)";

/// Writes a new SQLite database file at `path` holding `events` as rows `first_id ..` of the table
/// `pixels` with the indexes `pixels_timestamp` and `pixels_xy`. `events` are in id order
/// (timestamps non-decreasing). The file must not exist yet; after an error it is left
/// incomplete, for the caller to remove.
pub fn write_pixels_database(path: &Path, first_id: u64, events: &[Event]) -> io::Result<()> {
    if let Some(i) = events.windows(2).position(|w| w[0].timestamp_ms > w[1].timestamp_ms) {
        return Err(invalid_input(format!("events {i} and {} are out of timestamp order", i + 1)));
    }
    // Rowids are i64: the last one, `first_id + len - 1`, may be i64::MAX at most.
    if first_id.checked_add(events.len() as u64).is_none_or(|end| end > i64::MAX as u64 + 1) {
        return Err(invalid_input(format!("ids {first_id} + {} events exceed SQLite's rowid range", events.len())));
    }
    let rowid = |i: usize| (first_id + i as u64) as i64;
    let mut file = PageFile::create(path)?;

    let table_root = write_tree(&mut file, PageKind::TableLeaf, events.len(), |i, out| {
        let e = &events[i];
        // The id column holds NULL: an INTEGER PRIMARY KEY is the rowid itself.
        let row = [Value::Null, int(e.timestamp_ms), int(e.user_id), int(e.color()), int(e.x()), int(e.y())];
        put_leaf_cell(out, Some(rowid(i)), &row);
    })?;
    let timestamp_root = write_tree(&mut file, PageKind::IndexLeaf, events.len(), |i, out| {
        put_leaf_cell(out, None, &[int(events[i].timestamp_ms), int(rowid(i))]);
    })?;
    let by_xy = sorted_xy_keys(events);
    let xy_root = write_tree(&mut file, PageKind::IndexLeaf, by_xy.len(), |k, out| {
        let (x, y, i) = unpack_xy_key(by_xy[k]);
        put_leaf_cell(out, None, &[int(x), int(y), int(rowid(i))]);
    })?;

    let schema: [(&str, &str, u32, &str); 3] = [
        ("table", "pixels", table_root, TABLE_SQL),
        ("index", "pixels_timestamp", timestamp_root, TIMESTAMP_INDEX_SQL),
        ("index", "pixels_xy", xy_root, XY_INDEX_SQL),
    ];
    let mut page_one = PageBuilder::new(PageKind::TableLeaf, DATABASE_HEADER_SIZE);
    let mut cell = Cell::new();
    for (rowid, (kind, name, root, sql)) in (1..).zip(schema) {
        cell.clear();
        let row = [Value::Text(kind), Value::Text(name), Value::Text("pixels"), int(root), Value::Text(sql)];
        put_leaf_cell(&mut cell, Some(rowid), &row);
        assert!(page_one.fits(cell.len), "the schema must fit in page 1");
        page_one.push(cell.as_bytes());
    }
    page_one.bytes[..DATABASE_HEADER_SIZE].copy_from_slice(&database_header(file.pages));
    file.finish(page_one.finish(None))
}

fn invalid_input(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, reason)
}

/// An integer column value, from any integer type that widens to `i64`.
fn int(value: impl Into<i64>) -> Value<'static> {
    Value::Integer(value.into())
}

/// The `(x, y, rowid)` entries of the `pixels_xy` index in key order, packed as
/// `x << 52 | y << 41 | event position`: x is below 4096 and y below 2048 (12 and 11 bits, see
/// [`Event`]), which leaves 41 bits for the position, so one `u64` sort orders by x, then y, then id.
fn sorted_xy_keys(events: &[Event]) -> Vec<u64> {
    assert!((events.len() as u64) < 1 << 41, "too many events for one partition");
    let mut keys: Vec<u64> = events.iter().enumerate().map(|(i, e)| (e.x() as u64) << 52 | (e.y() as u64) << 41 | i as u64).collect();
    keys.sort_unstable();
    keys
}

/// `(x, y, event position)` of a key of [`sorted_xy_keys`].
fn unpack_xy_key(key: u64) -> (u16, u16, usize) {
    ((key >> 52) as u16, (key >> 41 & 0x7FF) as u16, (key & ((1 << 41) - 1)) as usize)
}

/// The 100-byte database header for a file of `page_count` pages.
fn database_header(page_count: u32) -> [u8; DATABASE_HEADER_SIZE] {
    let mut header = [0u8; DATABASE_HEADER_SIZE];
    let mut put_u32 = |at: usize, value: u32| header[at..at + 4].copy_from_slice(&value.to_be_bytes());
    // The change counter equals "version valid for", so readers trust the page count at 28.
    put_u32(24, 1); // file change counter
    put_u32(28, page_count);
    put_u32(40, 1); // schema cookie: must change whenever the schema does; any value to start
    put_u32(44, 4); // schema format 4: allows serial types 8 and 9 for the integers 0 and 1
    put_u32(56, 1); // text encoding UTF-8
    put_u32(92, 1); // version valid for
    put_u32(96, SQLITE_VERSION_NUMBER);
    // All other fields are 0: no freelist, default cache size, no auto-vacuum, no user version.
    header[..16].copy_from_slice(b"SQLite format 3\0");
    let size_field = if PAGE_SIZE == 65536 { 1 } else { PAGE_SIZE as u16 };
    header[16..18].copy_from_slice(&size_field.to_be_bytes());
    header[18] = 1; // file format write version: legacy (rollback journal)
    header[19] = 1; // file format read version
    header[21] = 64; // maximum embedded payload fraction (required value)
    header[22] = 32; // minimum embedded payload fraction (required value)
    header[23] = 32; // leaf payload fraction (required value)
    header
}

/// The database file being written: pages numbered from 1 in the order they are appended, except
/// page 1, which is reserved first and written last.
struct PageFile {
    out: BufWriter<File>,
    /// Pages in the file so far, page 1 included.
    pages: u32,
}

impl PageFile {
    fn create(path: &Path) -> io::Result<PageFile> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0; PAGE_SIZE])?;
        Ok(PageFile { out, pages: 1 })
    }

    /// Appends `page`; returns its page number.
    fn append(&mut self, page: &[u8]) -> io::Result<u32> {
        self.out.write_all(page)?;
        self.pages += 1;
        Ok(self.pages)
    }

    fn finish(mut self, page_one: &[u8]) -> io::Result<()> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(page_one)?;
        self.out.flush()
    }
}

/// The four kinds of b-tree page, by their flag byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PageKind {
    TableLeaf = 0x0D,
    TableInterior = 0x05,
    IndexLeaf = 0x0A,
    IndexInterior = 0x02,
}

impl PageKind {
    fn is_leaf(self) -> bool {
        matches!(self, PageKind::TableLeaf | PageKind::IndexLeaf)
    }

    /// The kind of the levels above a level of this kind.
    fn interior(self) -> PageKind {
        match self {
            PageKind::TableLeaf | PageKind::TableInterior => PageKind::TableInterior,
            PageKind::IndexLeaf | PageKind::IndexInterior => PageKind::IndexInterior,
        }
    }

    /// Interior pages add the right-most child pointer to the 8-byte header.
    fn header_size(self) -> usize {
        if self.is_leaf() {
            8
        } else {
            12
        }
    }
}

/// One page being filled: the cell pointer array grows up from the page header, the cells grow
/// down from the end of the page, contiguous, so the page has no free blocks or fragments.
struct PageBuilder {
    kind: PageKind,
    bytes: Vec<u8>,
    /// Where the b-tree page header starts: after the database header on page 1, else 0.
    header_at: usize,
    cells: usize,
    /// Offset of the lowest cell: the start of the cell content area.
    content_start: usize,
}

impl PageBuilder {
    fn new(kind: PageKind, header_at: usize) -> PageBuilder {
        PageBuilder { kind, bytes: vec![0; PAGE_SIZE], header_at, cells: 0, content_start: PAGE_SIZE }
    }

    fn pointer_array_end(&self) -> usize {
        self.header_at + self.kind.header_size() + 2 * self.cells
    }

    fn fits(&self, cell_len: usize) -> bool {
        self.pointer_array_end() + 2 + cell_len <= self.content_start
    }

    fn push(&mut self, cell: &[u8]) {
        debug_assert!(self.fits(cell.len()));
        let pointer_at = self.pointer_array_end();
        self.content_start -= cell.len();
        self.bytes[self.content_start..self.content_start + cell.len()].copy_from_slice(cell);
        self.bytes[pointer_at..pointer_at + 2].copy_from_slice(&(self.content_start as u16).to_be_bytes());
        self.cells += 1;
    }

    /// The cell pushed last.
    fn last_cell(&self) -> &[u8] {
        let end = if self.cells == 1 { PAGE_SIZE } else { self.cell_start(self.cells - 2) };
        &self.bytes[self.content_start..end]
    }

    fn cell_start(&self, index: usize) -> usize {
        let at = self.header_at + self.kind.header_size() + 2 * index;
        u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]]) as usize
    }

    /// Takes back the cell pushed last.
    fn pop(&mut self) {
        self.cells -= 1;
        self.content_start = if self.cells == 0 { PAGE_SIZE } else { self.cell_start(self.cells - 1) };
    }

    /// Completes the page (`right_child`: the right-most child of an interior page) and returns
    /// its bytes; the builder starts over empty.
    fn finish(&mut self, right_child: Option<u32>) -> &[u8] {
        debug_assert_eq!(right_child.is_none(), self.kind.is_leaf());
        let (at, gap_start) = (self.header_at, self.pointer_array_end());
        // The unused middle of the page may hold bytes of the previous page.
        self.bytes[gap_start..self.content_start].fill(0);
        self.bytes[at] = self.kind as u8;
        self.bytes[at + 1..at + 3].fill(0); // no free blocks
        self.bytes[at + 3..at + 5].copy_from_slice(&(self.cells as u16).to_be_bytes());
        // A content area starting at 65536 is written as 0.
        self.bytes[at + 5..at + 7].copy_from_slice(&(self.content_start as u16).to_be_bytes());
        self.bytes[at + 7] = 0; // no fragmented bytes
        if let Some(child) = right_child {
            self.bytes[at + 8..at + 12].copy_from_slice(&child.to_be_bytes());
        }
        self.cells = 0;
        self.content_start = PAGE_SIZE;
        &self.bytes
    }
}

/// Writes a b-tree bottom-up from its leaf cells `0..count` in key order (`leaf_cell(i, out)`
/// encodes cell `i`); returns the root page. No rows makes a root that is an empty leaf.
fn write_tree(file: &mut PageFile, leaf_kind: PageKind, count: usize, leaf_cell: impl FnMut(usize, &mut Cell)) -> io::Result<u32> {
    let mut level = write_level(file, leaf_kind, count, leaf_cell, None)?;
    while !level.parent_cells.is_empty() {
        let cells = std::mem::take(&mut level.parent_cells);
        let copy = |i: usize, out: &mut Cell| out.put_bytes(&cells[i]);
        level = write_level(file, leaf_kind.interior(), cells.len(), copy, Some(level.last_page))?;
    }
    Ok(level.last_page)
}

/// What one written level hands to the level above.
struct Level {
    /// One interior cell `(page, divider)` per page of the level but the last.
    parent_cells: Vec<Vec<u8>>,
    /// The last page of the level: the right-most child of the level above, or the root.
    last_page: u32,
}

/// Writes one level of a b-tree: cells `0..count` (`encode(i, out)` encodes cell `i`) packed in
/// order into full pages of `kind`. `right_child` is the last page of the level below, for
/// interior levels.
fn write_level(
    file: &mut PageFile,
    kind: PageKind,
    count: usize,
    mut encode: impl FnMut(usize, &mut Cell),
    right_child: Option<u32>,
) -> io::Result<Level> {
    let mut page = PageBuilder::new(kind, 0);
    let mut parent_cells = Vec::new();
    let mut cell = Cell::new();
    let mut i = 0;
    while i < count {
        cell.clear();
        encode(i, &mut cell);
        if page.fits(cell.len) {
            page.push(cell.as_bytes());
            i += 1;
            continue;
        }
        if kind == PageKind::TableLeaf {
            // Table rows live only in the leaves: the divider is a copy of the last rowid.
            let divider = rowid_of_table_leaf_cell(page.last_cell()).to_vec();
            let page_number = file.append(page.finish(None))?;
            parent_cells.push(interior_cell(page_number, &divider));
            continue;
        }
        // Cell `i` moves up as the divider. Were it the last cell, the level's last page would
        // stay empty, so the page's own last cell moves up instead and cell `i` fills that page.
        if i + 1 == count {
            assert!(page.cells >= 2, "a page holds at least 4 cells");
            cell.clear();
            cell.put_bytes(page.last_cell());
            page.pop();
            i -= 1;
        }
        i += 1;
        // An interior cell is (left child, key): its child becomes this page's right-most child.
        let bytes = cell.as_bytes();
        let (child, divider) =
            if kind.is_leaf() { (None, bytes) } else { (Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])), &bytes[4..]) };
        let page_number = file.append(page.finish(child))?;
        parent_cells.push(interior_cell(page_number, divider));
    }
    let last_page = file.append(page.finish(right_child))?;
    Ok(Level { parent_cells, last_page })
}

/// An interior cell: the left child page, then the key (a table's rowid varint, or an index's
/// payload size and record, exactly as in the index's leaf cell).
fn interior_cell(child: u32, key: &[u8]) -> Vec<u8> {
    let mut cell = Vec::with_capacity(4 + key.len());
    cell.extend_from_slice(&child.to_be_bytes());
    cell.extend_from_slice(key);
    cell
}

/// The rowid varint of a table leaf cell, which follows the payload size varint.
fn rowid_of_table_leaf_cell(cell: &[u8]) -> &[u8] {
    let rest = &cell[varint_at(cell).len()..];
    varint_at(rest)
}

/// The varint at the start of `bytes`.
fn varint_at(bytes: &[u8]) -> &[u8] {
    let len = bytes.iter().take(8).position(|b| b & 0x80 == 0).map_or(9, |p| p + 1);
    &bytes[..len]
}

/// Bytes of the SQLite varint of `value`: 7 bits per byte, but a 9th byte carries 8 bits.
fn varint_len(value: u64) -> usize {
    match value {
        0 => 1,
        v if v >> 56 != 0 => 9,
        v => (64 - v.leading_zeros() as usize).div_ceil(7),
    }
}

/// Room for the largest cell a page can hold, plus 8 bytes so that an integer of any size can
/// be written with one 8-byte store.
const CELL_ROOM: usize = PAGE_SIZE + 8;

/// One cell being encoded, in a fixed buffer: the encoders below take and return the write
/// position, which stays in a register, and make plain stores without a `Vec`'s growth checks
/// and small `memcpy` calls. Against pushing onto a `Vec`, this nearly halved the time of the
/// whole writer.
struct Cell {
    bytes: [u8; CELL_ROOM],
    len: usize,
}

impl Cell {
    fn new() -> Cell {
        Cell { bytes: [0; CELL_ROOM], len: 0 }
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.len = put_bytes(&mut self.bytes, self.len, bytes);
    }
}

/// Writes `value` at `at` as a SQLite varint: big-endian groups of 7 bits, the high bit set on
/// all but the last byte; the 9-byte form ends with a whole byte. Returns the end.
#[inline(always)]
fn put_varint(bytes: &mut [u8], at: usize, value: u64) -> usize {
    if value < 0x80 {
        // Nearly every varint here (sizes, serial types) is one byte.
        bytes[at] = value as u8;
        return at + 1;
    }
    let len = varint_len(value);
    let out = &mut bytes[at..at + len];
    if len == 9 {
        for (k, byte) in out[..8].iter_mut().enumerate() {
            *byte = (value >> (57 - 7 * k)) as u8 | 0x80;
        }
        out[8] = value as u8;
    } else {
        for (k, byte) in out.iter_mut().enumerate() {
            *byte = (value >> (7 * (len - 1 - k))) as u8 | 0x80;
        }
        out[len - 1] &= 0x7F;
    }
    at + len
}

/// Writes the low `size` bytes of `value` at `at`, big-endian, with one 8-byte store (hence the
/// 8 bytes of slack in [`CELL_ROOM`]). Returns the end.
#[inline(always)]
fn put_integer(bytes: &mut [u8], at: usize, value: i64, size: usize) -> usize {
    if size > 0 {
        let aligned = (value as u64) << (64 - 8 * size);
        bytes[at..at + 8].copy_from_slice(&aligned.to_be_bytes());
    }
    at + size
}

/// Writes `source` at `at`; returns the end.
fn put_bytes(bytes: &mut [u8], at: usize, source: &[u8]) -> usize {
    bytes[at..at + source.len()].copy_from_slice(source);
    at + source.len()
}

/// A column value of a record: only the kinds these files hold.
#[derive(Clone, Copy)]
enum Value<'a> {
    Null,
    Integer(i64),
    Text(&'a str),
}

impl Value<'_> {
    /// The serial type in the record header and the size of the content: integers take the
    /// smallest type that holds them.
    fn serial_type(&self) -> (u64, usize) {
        match *self {
            Value::Null => (0, 0),
            Value::Integer(v @ (0 | 1)) => (8 + v as u64, 0),
            Value::Integer(v) => match integer_size(v) {
                6 => (5, 6),
                8 => (6, 8),
                size => (size as u64, size),
            },
            Value::Text(text) => (13 + 2 * text.len() as u64, text.len()),
        }
    }

    /// Writes the content (`size` bytes from [`Value::serial_type`]) at `at`; returns the end.
    #[inline(always)]
    fn put_content(&self, bytes: &mut [u8], at: usize, size: usize) -> usize {
        match *self {
            Value::Null => at,
            Value::Integer(v) => put_integer(bytes, at, v, size),
            Value::Text(text) => put_bytes(bytes, at, text.as_bytes()),
        }
    }
}

/// Content bytes of an integer other than 0 and 1 (types 8 and 9 have none): the smallest of the
/// big-endian two's-complement sizes 1, 2, 3, 4, 6 and 8.
fn integer_size(value: i64) -> usize {
    match value {
        -0x80..=0x7F => 1,
        -0x8000..=0x7FFF => 2,
        -0x80_0000..=0x7F_FFFF => 3,
        -0x8000_0000..=0x7FFF_FFFF => 4,
        -0x8000_0000_0000..=0x7FFF_FFFF_FFFF => 6,
        _ => 8,
    }
}

/// Columns of the widest record written: a table row (the schema's rows have 5).
const MAX_COLUMNS: usize = 6;

/// Encodes a leaf cell holding the record of `values`: the payload size, then the rowid for a
/// table cell (`None` for an index cell), then the record (header size, serial types, contents).
/// Inlined into each tree's cell closure, where the columns and most of their types are known,
/// so the loops below unroll.
#[inline(always)]
fn put_leaf_cell(out: &mut Cell, rowid: Option<i64>, values: &[Value]) {
    let mut types = [(0u64, 0usize); MAX_COLUMNS];
    let types = &mut types[..values.len()];
    let (mut types_len, mut content_len) = (0, 0);
    for (slot, value) in types.iter_mut().zip(values) {
        *slot = value.serial_type();
        types_len += varint_len(slot.0);
        content_len += slot.1;
    }
    // The header size counts its own varint.
    let mut header_len = types_len + 1;
    while varint_len(header_len as u64) + types_len > header_len {
        header_len += 1;
    }
    let payload_len = header_len + content_len;
    // Larger payloads would spill to overflow pages, which this writer does not make.
    let max_local = if rowid.is_some() { PAGE_SIZE - 35 } else { (PAGE_SIZE - 12) * 64 / 255 - 23 };
    assert!(payload_len <= max_local, "a record of {payload_len} bytes needs overflow pages");
    let (bytes, mut at) = (&mut out.bytes[..], out.len);
    at = put_varint(bytes, at, payload_len as u64);
    if let Some(rowid) = rowid {
        at = put_varint(bytes, at, rowid as u64);
    }
    at = put_varint(bytes, at, header_len as u64);
    for &(serial_type, _) in types.iter() {
        at = put_varint(bytes, at, serial_type);
    }
    for (value, &(_, size)) in values.iter().zip(types.iter()) {
        at = value.put_content(bytes, at, size);
    }
    out.len = at;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;
    use rusqlite::{params, Connection};
    use std::path::PathBuf;

    /// `n` events from `first_timestamp_ms` on: runs of equal timestamps, half of them on a 3 × 3
    /// hot spot (many ties of x and of (x, y)), user ids and colours over their whole ranges.
    fn random_events(n: usize, first_timestamp_ms: i64, seed: u64) -> Vec<Event> {
        let mut random = Rng::new(seed, 0, 0);
        let mut timestamp = first_timestamp_ms;
        (0..n)
            .map(|_| {
                timestamp += random.below(3) as i64;
                // Clustered pixels (long runs of one key), and any pixel an event can hold.
                let (x, y) = if random.below(2) == 0 {
                    (1000 + random.below(3), 500 + random.below(3))
                } else {
                    (random.below(4096), random.below(2048))
                };
                let user_id = match random.below(8) {
                    0 => u32::MAX,
                    1 => random.below(2) as u32,
                    _ => random.next_u64() as u32,
                };
                Event::new(timestamp, user_id, x as u16, y as u16, random.below(32) as u8, false)
            })
            .collect()
    }

    /// The oracle: the same table and indexes written by SQLite itself, from the schema
    /// statements above (one row per INSERT: the oracle's speed does not matter).
    fn write_with_rusqlite(path: &Path, first_id: u64, events: &[Event]) -> rusqlite::Result<()> {
        let mut connection = Connection::open(path)?;
        connection.execute_batch(&format!("{TABLE_SQL};"))?;
        let transaction = connection.transaction()?;
        {
            let mut insert = transaction.prepare("INSERT INTO pixels VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            for (id, e) in (first_id..).zip(events) {
                insert.execute(params![id as i64, e.timestamp_ms, e.user_id, e.color(), e.x(), e.y()])?;
            }
        }
        transaction.commit()?;
        connection.execute_batch(&format!("{TIMESTAMP_INDEX_SQL}; {XY_INDEX_SQL};"))
    }

    /// The rows of `sql`, each as its columns in text joined by '|'.
    fn strings(connection: &Connection, sql: &str) -> Vec<String> {
        let mut statement = connection.prepare(sql).unwrap();
        let columns = statement.column_count();
        statement
            .query_map([], |row| {
                let fields: rusqlite::Result<Vec<String>> = (0..columns).map(|c| row.get_ref(c).map(text)).collect();
                Ok(fields?.join("|"))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn text(value: rusqlite::types::ValueRef) -> String {
        use rusqlite::types::ValueRef;
        match value {
            ValueRef::Null => "NULL".into(),
            ValueRef::Integer(v) => v.to_string(),
            ValueRef::Real(v) => v.to_string(),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        }
    }

    fn ids(connection: &Connection, sql: &str, parameters: impl rusqlite::Params) -> Vec<i64> {
        let mut statement = connection.prepare(sql).unwrap();
        statement.query_map(parameters, |row| row.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    fn assert_ok(connection: &Connection, pragma: &str) {
        assert_eq!(strings(connection, pragma), ["ok"], "{pragma}");
    }

    fn written(events: &[Event], first_id: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pixels.sqlite");
        write_pixels_database(&path, first_id, events).unwrap();
        (dir, path)
    }

    /// Levels of the b-tree `name`: the longest page path ('/', '/000/', '/000/001/', ...).
    fn depth(db: &Connection, name: &str) -> u32 {
        let sql = "SELECT max(length(path) - length(replace(path, '/', ''))) FROM dbstat WHERE name = ?1";
        db.query_row(sql, [name], |row| row.get(0)).unwrap()
    }

    /// Writes `events`, then checks the file against the events and against SQLite's own file.
    /// All three b-trees have `levels` levels.
    fn check_against_rusqlite(events: &[Event], first_id: u64, levels: u32) {
        let (dir, path) = written(events, first_id);
        let oracle_path = dir.path().join("oracle.sqlite");
        write_with_rusqlite(&oracle_path, first_id, events).unwrap();
        let db = Connection::open(&path).unwrap();
        let oracle = Connection::open(&oracle_path).unwrap();
        assert_ok(&db, "PRAGMA integrity_check");
        assert_ok(&db, "PRAGMA quick_check");
        // Only an empty tree has a page without cells (its root).
        let empty_pages: usize = db.query_row("SELECT count(*) FROM dbstat WHERE ncell = 0", [], |row| row.get(0)).unwrap();
        assert_eq!(empty_pages, if events.is_empty() { 3 } else { 0 });
        for name in ["pixels", "pixels_timestamp", "pixels_xy"] {
            assert_eq!(depth(&db, name), levels, "levels of {name}");
        }

        // Rows, and the contents and order of both indexes, against the events.
        let id = |i: usize| first_id as i64 + i as i64;
        let rows: Vec<[i64; 6]> = db
            .prepare("SELECT * FROM pixels ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expected: Vec<[i64; 6]> = (0..events.len())
            .map(|i| {
                let e = &events[i];
                [id(i), e.timestamp_ms, e.user_id.into(), e.color().into(), e.x().into(), e.y().into()]
            })
            .collect();
        assert_eq!(rows, expected);
        let timestamp_scan = ids(&db, "SELECT id FROM pixels INDEXED BY pixels_timestamp ORDER BY timestamp", []);
        assert_eq!(timestamp_scan, (0..events.len()).map(id).collect::<Vec<_>>());
        let mut by_xy: Vec<(u16, u16, i64)> = (0..events.len()).map(|i| (events[i].x(), events[i].y(), id(i))).collect();
        by_xy.sort_unstable();
        let xy_scan = ids(&db, "SELECT id FROM pixels INDEXED BY pixels_xy ORDER BY x, y", []);
        assert_eq!(xy_scan, by_xy.iter().map(|k| k.2).collect::<Vec<_>>());

        // What SQL sees of the schema is SQLite's own.
        for sql in [
            "SELECT sql, name, type, tbl_name FROM sqlite_schema ORDER BY name",
            "PRAGMA table_info(pixels)",
            "PRAGMA index_list(pixels)",
            "PRAGMA index_info(pixels_timestamp)",
            "PRAGMA index_info(pixels_xy)",
            "PRAGMA page_size",
            "PRAGMA encoding",
            "PRAGMA schema_version",
        ] {
            let expected = if sql.contains("schema_version") { vec!["1".into()] } else { strings(&oracle, sql) };
            assert_eq!(strings(&db, sql), expected, "{sql}");
        }

        // Point and range queries use the indexes and agree with the events and with SQLite.
        let by_pixel = "SELECT id FROM pixels WHERE x = ?1 AND y = ?2 ORDER BY id";
        let in_range = "SELECT count(*) FROM pixels WHERE timestamp BETWEEN ?1 AND ?2";
        for (sql, index) in [(by_pixel, "pixels_xy"), (in_range, "pixels_timestamp")] {
            let explain = format!("EXPLAIN QUERY PLAN {}", sql.replace("?1", "1").replace("?2", "2"));
            let plan = strings(&db, &explain);
            assert!(plan.iter().any(|step| step.contains(index)), "{sql}: {plan:?}");
            assert_eq!(plan, strings(&oracle, &explain));
        }
        let mut random = Rng::new(events.len() as u64, 0, 0);
        let mut pixels = vec![(1000, 500), (1001, 501), (0, 0), (1999, 1999), (2999, 1999), (4095, 2047), (2048, 0)];
        pixels.extend((0..20.min(events.len())).map(|_| {
            let e = &events[random.below(events.len() as u64) as usize];
            (e.x(), e.y())
        }));
        for (x, y) in pixels {
            let expected: Vec<i64> = (0..events.len()).filter(|&i| (events[i].x(), events[i].y()) == (x, y)).map(id).collect();
            assert_eq!(ids(&db, by_pixel, [x, y]), expected, "pixel ({x}, {y})");
            assert_eq!(ids(&oracle, by_pixel, [x, y]), expected);
        }
        let span = events.last().map_or(0, |e| e.timestamp_ms) - events.first().map_or(0, |e| e.timestamp_ms);
        let start = events.first().map_or(0, |e| e.timestamp_ms);
        for _ in 0..20 {
            let a = start - 1 + random.below(span as u64 + 3) as i64;
            let b = a + random.below(span as u64 / 4 + 2) as i64;
            let expected = events.iter().filter(|e| (a..=b).contains(&e.timestamp_ms)).count() as i64;
            assert_eq!(ids(&db, in_range, [a, b]), [expected], "timestamps {a}..={b}");
        }
        drop(oracle);

        // SQLite can go on writing the file: inserts into full pages split them.
        let next = id(events.len());
        db.execute_batch(&format!(
            "INSERT INTO pixels VALUES ({next}, 5, 7, 1, 1000, 500);
             INSERT INTO pixels (timestamp, user_id, color_id, x, y) SELECT timestamp, user_id, 3, y, x FROM pixels LIMIT 500;
             DELETE FROM pixels WHERE id % 7 = 3;
             UPDATE pixels SET x = 1000, y = 500 WHERE id % 11 = 2;
             CREATE INDEX pixels_user ON pixels (user_id);"
        ))
        .unwrap();
        assert_ok(&db, "PRAGMA integrity_check");
    }

    #[test]
    fn empty() {
        check_against_rusqlite(&[], 0, 1);
    }

    #[test]
    fn one_event() {
        check_against_rusqlite(&random_events(1, 1_648_817_050_000, 1), 7, 1);
    }

    #[test]
    fn two_events() {
        check_against_rusqlite(&random_events(2, 0, 2), 1, 1);
    }

    #[test]
    fn a_hundred_events_around_timestamp_zero() {
        // Timestamps from -60: negative integers and the serial types 8 and 9 for 0 and 1.
        check_against_rusqlite(&random_events(100, -60, 3), 1000, 1);
    }

    #[test]
    fn five_thousand_events_two_levels() {
        check_against_rusqlite(&random_events(5_000, 1_648_817_050_000, 4), 123_456, 2);
    }

    #[test]
    fn three_hundred_thousand_events_three_levels() {
        check_against_rusqlite(&random_events(300_000, 1_648_817_050_000, 5), 160_000_000, 3);
    }

    #[test]
    fn rowids_near_the_top_of_the_range() {
        // Rowids above 2^56 take the 9-byte varint form; the last rowid may be i64::MAX.
        let events = random_events(3_000, 1_648_817_050_000, 6);
        let top = i64::MAX as u64 + 1 - events.len() as u64;
        check_against_rusqlite(&events, top - 10, 2);
        let (_dir, path) = written(&events, top);
        assert_ok(&Connection::open(&path).unwrap(), "PRAGMA integrity_check");
        let error = write_pixels_database(&path.with_extension("b"), top + 1, &events).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    /// `(cells of the fullest leaf, cells of the fullest interior page)` of the tree `name`.
    fn page_capacities(db: &Connection, name: &str) -> (u64, u64) {
        let fullest = |kind: &str| -> u64 {
            let sql = "SELECT max(ncell) FROM dbstat WHERE name = ?1 AND pagetype = ?2";
            db.query_row(sql, [name, kind], |row| row.get(0)).unwrap()
        };
        (fullest("leaf"), fullest("internal"))
    }

    #[test]
    fn the_last_page_of_a_level_is_never_empty() {
        // Identical events and same-size rowids make all cells of a tree one size, so the counts at
        // which a level's last cell would be left alone to move up (an empty last page) follow
        // from the page capacities, measured on a probe file.
        let events = vec![Event::new(1_648_817_050_000, 5, 1000, 500, 3, false); 100_000];
        let first_id = 1 << 15; // 3-byte varints (table cells) and 3-byte integers (index records)
        let (_probe_dir, probe) = written(&events, first_id);
        let probe = Connection::open(&probe).unwrap();
        for name in ["pixels", "pixels_timestamp", "pixels_xy"] {
            let (leaf, interior) = page_capacities(&probe, name);
            // A boundary of an index moves one entry up; a table's copies a rowid.
            let moved_up = if name == "pixels" { 0 } else { 1 };
            // Leaves: a full leaf, its divider, then one entry left. Interior: the level above
            // the leaves holds one full page, its divider, then one cell left.
            let leaf_case = (moved_up == 1).then_some(leaf + 1);
            let interior_case = (interior + 1) * (leaf + moved_up) + leaf / 2;
            for n in leaf_case.into_iter().chain([interior_case]) {
                let (_dir, path) = written(&events[..n as usize], first_id);
                let db = Connection::open(&path).unwrap();
                assert_ok(&db, "PRAGMA integrity_check");
                // The root ('/') holds a single cell over two children; it does not count here.
                let sql = "SELECT min(ncell), sum(ncell = 1) FROM dbstat WHERE name = ?1 AND path != '/'";
                let (fewest, single): (u64, u64) = db.query_row(sql, [name], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
                assert_eq!((fewest, single), (1, 1), "{name} with {n} rows: the case was hit and handled");
            }
        }
    }

    #[test]
    fn refuses_an_existing_file_and_unsorted_events() {
        let (_dir, path) = written(&random_events(10, 0, 8), 0);
        let error = write_pixels_database(&path, 0, &[]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        let mut events = random_events(10, 0, 9);
        events[5].timestamp_ms = events[4].timestamp_ms - 1;
        let error = write_pixels_database(&path.with_extension("b"), 0, &events).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn varints_and_serial_types_follow_the_format() {
        let varint = |v: u64| {
            let mut cell = Cell::new();
            cell.len = put_varint(&mut cell.bytes, 0, v);
            assert_eq!(cell.len, varint_len(v));
            assert_eq!(varint_at(cell.as_bytes()), cell.as_bytes());
            cell.as_bytes().to_vec()
        };
        assert_eq!(varint(0), [0]);
        assert_eq!(varint(127), [0x7F]);
        assert_eq!(varint(128), [0x81, 0x00]);
        assert_eq!(varint(16_383), [0xFF, 0x7F]);
        assert_eq!(varint((1 << 56) - 1), [0xFF; 8].iter().take(7).copied().chain([0x7F]).collect::<Vec<_>>());
        assert_eq!(varint(1 << 56), [0x80, 0xC0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        assert_eq!(varint(u64::MAX), [0xFF; 9]);
        let types: Vec<u64> = [0, 1, 2, -1, 127, 128, -129, 40_000, 8_388_608, -2_147_483_649, 1 << 47, i64::MIN]
            .map(|v| Value::Integer(v).serial_type().0)
            .to_vec();
        assert_eq!(types, [8, 9, 1, 1, 1, 2, 2, 3, 4, 5, 6, 6]);
    }
}

//! The `.npy` format (version 1.0) for the arrays a dataset stores, so numpy can open them with
//! `np.load(path, mmap_mode="r")` and our reader can memory-map them ([`Array`]).

use crate::dataset::Folder;
use crate::error::{Context, Error, Result, HUGE_PAGE};
use memmap2::Mmap;
use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::Path;

// The files are little-endian and mapped as they are.
#[cfg(target_endian = "big")]
compile_error!("rplace_core reads its little-endian dataset files in place");

/// Creates the array file `path` for writing through an [`ArrayWriter`].
pub(crate) fn create(path: &Path) -> Result<ArrayWriter<File>> {
    Ok(ArrayWriter::new(File::create(path).at(path)?))
}

/// A buffered writer whose writes reach the file as whole [`HUGE_PAGE`]s at offsets that are
/// multiples of it (the last one shorter), where `BufWriter` writes what it holds whenever the
/// next write does not fit, drifting off those offsets. A kernel whose page cache holds large
/// folios (see the README's reader section) then keeps the freshly written file in huge pages,
/// which the readers map whole from their first read after an ingest ([`Array::open`]); what it
/// gains and costs is in BENCHMARKS.md. Nothing is written on drop: call `flush`.
pub(crate) struct ArrayWriter<W: Write> {
    file: W,
    piece: Vec<u8>,
    /// How much of `piece` the file already holds (after a short write that then failed).
    written: usize,
}

impl<W: Write> ArrayWriter<W> {
    fn new(file: W) -> ArrayWriter<W> {
        ArrayWriter { file, piece: Vec::with_capacity(HUGE_PAGE), written: 0 }
    }

    /// Writes out what the file does not hold yet of the piece, then empties it; after an error
    /// the piece keeps what is left, so that nothing reaches the file twice.
    fn drain(&mut self) -> io::Result<()> {
        while self.written < self.piece.len() {
            match self.file.write(&self.piece[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.piece.clear();
        self.written = 0;
        Ok(())
    }
}

impl<W: Write> Write for ArrayWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full piece goes out before more is taken, so an error consumes nothing of `data`.
        if self.piece.len() == HUGE_PAGE {
            self.drain()?;
        }
        let taken = data.len().min(HUGE_PAGE - self.piece.len());
        self.piece.extend_from_slice(&data[..taken]);
        Ok(taken)
    }

    /// The common case inline: the data fits in the piece (the columns write a few bytes at a
    /// time).
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() <= HUGE_PAGE - self.piece.len() {
            self.piece.extend_from_slice(data);
            return Ok(());
        }
        let mut rest = data;
        while !rest.is_empty() {
            let taken = self.write(rest)?;
            rest = &rest[taken..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.file.flush()
    }
}

/// Writes the header of a C-ordered `uint8` array of `shape`; the raw bytes follow.
pub fn write_u8_header(out: &mut impl Write, shape: &[usize]) -> io::Result<()> {
    write_header(out, "|u1", shape)
}

/// Writes a header for an array of numpy type `descr` (`|u1`, `<i8`, `<u4`…) and `shape`.
pub fn write_header(out: &mut impl Write, descr: &str, shape: &[usize]) -> io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + dict + '\n' must be a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(dict.len() as u16).to_le_bytes())?;
    out.write_all(dict.as_bytes())
}

/// Length in bytes of the header [`write_header`] writes for the same arguments.
pub fn header_len(descr: &str, shape: &[usize]) -> usize {
    let mut buffer = Vec::new();
    write_header(&mut buffer, descr, shape).expect("writing to a Vec cannot fail");
    buffer.len()
}

/// Numbers a file can hold as they are.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid value.
pub unsafe trait Element: Copy {
    /// The numpy type of the files that hold it.
    const DESCR: &'static str;
}

unsafe impl Element for u8 {
    const DESCR: &'static str = "|u1";
}
unsafe impl Element for u16 {
    const DESCR: &'static str = "<u2";
}
unsafe impl Element for u32 {
    const DESCR: &'static str = "<u4";
}
unsafe impl Element for u64 {
    const DESCR: &'static str = "<u8";
}
unsafe impl Element for i64 {
    const DESCR: &'static str = "<i8";
}

/// A memory-mapped `.npy` array whose type, shape and length were checked on open.
pub struct Array<T> {
    map: Mmap,
    offset: usize,
    pub len: usize,
    element: PhantomData<T>,
}

impl<T: Element> Array<T> {
    /// Maps `file` of the dataset folder, with huge-page advice, and checks that it holds a `T`
    /// array of `shape`.
    pub fn open(folder: &Folder, file: &str, shape: &[usize]) -> Result<Array<T>> {
        let path = folder.path().join(file);
        let damaged = |reason: String| Error::Dataset { path: path.clone(), reason: format!("{reason}: ingest the dataset again") };
        let handle = match folder.file(file) {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(damaged("missing".into())),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(damaged(e.to_string())),
            Err(e) => return Err(e).at(&path),
        };
        // SAFETY: dataset files are never written after the ingest publishes its folder, and a
        // replaced dataset is moved aside and unlinked, which keeps existing mappings valid.
        let map = unsafe { Mmap::map(&handle) }.at(&path)?;
        huge_pages(&map);
        let header = read_header(&map).map_err(damaged)?;
        if header.descr != T::DESCR {
            return Err(damaged(format!("holds {} values where {} was expected", header.descr, T::DESCR)));
        }
        if header.shape != shape {
            return Err(damaged(format!("has shape {:?} where {shape:?} was expected", header.shape)));
        }
        let len = shape.iter().product::<usize>();
        let expected = len.checked_mul(size_of::<T>()).and_then(|bytes| bytes.checked_add(header.data_offset));
        if expected != Some(map.len()) {
            return Err(damaged(format!(
                "is {} bytes long where its header announces {} (truncated?)",
                map.len(),
                expected.unwrap_or(usize::MAX)
            )));
        }
        if !(map.as_ptr() as usize + header.data_offset).is_multiple_of(align_of::<T>()) {
            return Err(damaged(format!("its data starts at byte {}, not aligned for {}", header.data_offset, T::DESCR)));
        }
        Ok(Array { map, offset: header.data_offset, len, element: PhantomData })
    }

    /// The values, in the file's memory.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `open` checked that the map holds `len` values of `T` from `offset`, aligned,
        // and `T: Element` accepts any bytes; the map is read-only and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.offset).cast::<T>(), self.len) }
    }
}

/// Asks the kernel to map the file with huge pages: where it reads the file in (or finds it
/// already in) 2 MiB pieces, one TLB entry covers 512 times the memory, and the readers, which
/// jump between the tiles of arrays hundreds of MB long, run faster (measured: see
/// BENCHMARKS.md). Advice only: a kernel without transparent huge pages ignores it.
fn huge_pages(map: &Mmap) {
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    #[cfg(not(target_os = "linux"))]
    let _ = map;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes of every size come out as the same bytes, in whole huge pages at their multiples.
    #[test]
    fn array_writers_write_whole_huge_pages() {
        struct Recorder(Vec<u8>, Vec<(usize, usize)>);
        impl Write for Recorder {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                self.1.push((self.0.len(), data.len()));
                self.0.extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut state = 1u64;
        let mut expected = Vec::new();
        let mut out = ArrayWriter::new(Recorder(Vec::new(), Vec::new()));
        for round in 0..200 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = [0, 1, 2, 3, 7, 2048, 4096, 300_000, HUGE_PAGE + 5][(state >> 33) as usize % 9];
            let data: Vec<u8> = (0..len).map(|i| (i + round) as u8).collect();
            out.write_all(&data).unwrap();
            expected.extend_from_slice(&data);
        }
        out.flush().unwrap();
        let Recorder(bytes, writes) = out.file;
        assert!(bytes == expected, "the bytes differ");
        let (last, pieces) = writes.split_last().unwrap();
        assert!(pieces.iter().all(|&(at, len)| len == HUGE_PAGE && at % HUGE_PAGE == 0), "{pieces:?}");
        assert_eq!(*last, (pieces.len() * HUGE_PAGE, expected.len() - pieces.len() * HUGE_PAGE));
    }

    /// A file that takes half of a write, then fails the next one: retried, every byte reaches
    /// it once, in order.
    #[test]
    fn array_writers_lose_and_repeat_nothing_after_an_error() {
        struct Flaky(Vec<u8>, usize);
        impl Write for Flaky {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                self.1 += 1;
                match self.1 % 3 {
                    1 => {
                        let half = data.len().div_ceil(2);
                        self.0.extend_from_slice(&data[..half]);
                        Ok(half)
                    }
                    2 => Err(io::Error::other("the disk is full")),
                    _ => {
                        self.0.extend_from_slice(data);
                        Ok(data.len())
                    }
                }
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let expected: Vec<u8> = (0..5 * HUGE_PAGE + 12_345).map(|i| (i % 251) as u8).collect();
        let mut out = ArrayWriter::new(Flaky(Vec::new(), 0));
        let mut rest = &expected[..];
        while !rest.is_empty() {
            if let Ok(taken) = out.write(&rest[..rest.len().min(100_000)]) {
                rest = &rest[taken..];
            }
        }
        while out.flush().is_err() {}
        assert!(out.file.0 == expected, "the bytes differ");
    }

    /// The kernel's record of the advice: `hg` among the mapping's flags in `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    #[test]
    fn arrays_are_mapped_with_huge_page_advice() {
        if !Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            eprintln!("skipped: this kernel has no transparent huge pages to advise");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        write_header(&mut bytes, "<u4", &[1 << 20]).unwrap();
        bytes.resize(bytes.len() + (4 << 20), 0);
        std::fs::write(dir.path().join("values.npy"), bytes).unwrap();
        let array = Array::<u32>::open(&Folder::open(dir.path()).unwrap(), "values.npy", &[1 << 20]).unwrap();
        let start = format!("{:x}-", array.map.as_ptr() as usize);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mapping = smaps.split_inclusive('\n').skip_while(|line| !line.starts_with(&start)).collect::<String>();
        let flags = mapping.lines().find(|line| line.starts_with("VmFlags:")).expect("the mapping's flags");
        assert!(flags.split_whitespace().any(|flag| flag == "hg"), "{flags}");
    }

    #[test]
    fn header_is_aligned_and_readable() {
        let mut out = Vec::new();
        write_u8_header(&mut out, &[3, 2000, 2000]).unwrap();
        assert_eq!(out.len() % 64, 0);
        assert_eq!(out.len(), header_len("|u1", &[3, 2000, 2000]));
        let text = String::from_utf8_lossy(&out[10..]);
        assert!(text.contains("'shape': (3, 2000, 2000)"), "{text}");
        let mut single = Vec::new();
        write_header(&mut single, "<i8", &[7]).unwrap();
        assert!(String::from_utf8_lossy(&single).contains("'shape': (7,)"));
    }
}

/// What an `.npy` header says: the numpy type (`|u1`, `<i8`…), the shape, and where the
/// C-ordered data starts (bytes from the start of the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data_offset: usize,
}

/// Reads the header at the start of `bytes` (format versions 1.0 to 3.0, as numpy writes them).
/// `Err` says what is wrong; Fortran-ordered arrays are refused.
pub fn read_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file (no \\x93NUMPY magic)".into());
    }
    // Version 1 stores the dictionary length in 2 bytes, versions 2 and 3 in 4.
    let (length, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        version => return Err(format!("unsupported .npy version {version}")),
    };
    let dict = bytes.get(start..start + length).ok_or("truncated .npy header")?;
    let dict = std::str::from_utf8(dict).map_err(|_| "the .npy header is not text")?;
    let value_of = |key: &str| -> Result<&str, String> {
        let at = dict.find(&format!("'{key}':")).ok_or(format!("the .npy header has no '{key}'"))?;
        Ok(dict[at + key.len() + 3..].trim_start())
    };
    let descr = value_of("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|rest| rest.split('\'').next()).ok_or("unreadable 'descr' in the .npy header")?;
    if !value_of("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered .npy arrays are not supported".into());
    }
    let shape = value_of("shape")?;
    let shape = shape.strip_prefix('(').and_then(|rest| rest.split(')').next()).ok_or("unreadable 'shape' in the .npy header")?;
    let shape = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| format!("unreadable dimension `{d}` in the .npy header")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header { descr: descr.to_string(), shape, data_offset: start + length })
}

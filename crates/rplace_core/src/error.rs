//! The one error type of the crate. Every variant that input can cause names the file (and the
//! line, for a bad row) so the message alone tells the user what to fix.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// One bad data row: `FILE:LINE: reason`.
    #[error("{}:{line}: {reason}", path.display())]
    Row { path: PathBuf, line: u64, reason: String },

    /// A whole file is unusable: wrong header, truncated or corrupt gzip.
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },

    /// SQLite failed on a dataset file.
    #[error("{}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },

    /// A dataset folder is missing, incomplete or damaged.
    #[error("{}: {reason}", path.display())]
    Dataset { path: PathBuf, reason: String },

    /// A bad argument from the caller (not from a file).
    #[error("{0}")]
    Argument(String),

    /// An output path holds something the command may not write into or replace
    /// ([`crate::output_folder`]).
    #[error("{}: {reason}", path.display())]
    OutputExists { path: PathBuf, reason: String },

    /// An event id (or other index) outside the dataset.
    #[error("{0}")]
    Index(String),

    /// A large buffer could not be allocated.
    #[error("out of memory: {what} needs {bytes} more bytes")]
    OutOfMemory { what: String, bytes: u64 },

    /// A bug: a panic caught before it could reach the caller.
    #[error("internal error (please report it): {0}")]
    Internal(String),

    /// The user asked to stop (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to the errors of `std::io` and `rusqlite`.
pub trait Context<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io { path: path.to_path_buf(), source })
    }
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Sqlite { path: path.to_path_buf(), source })
    }
}

/// Makes room for `additional` more items in `items`, or [`Error::OutOfMemory`] naming `what`:
/// for the buffers that grow with the input, so a too large input is an error, not an abort.
pub fn reserve<T>(items: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    items
        .try_reserve(additional)
        .map_err(|_| Error::OutOfMemory { what: what.to_string(), bytes: (additional as u64).saturating_mul(size_of::<T>() as u64) })
}

/// A vector of `len` copies of `value`, or [`Error::OutOfMemory`] naming `what`.
pub fn filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut items = Vec::new();
    reserve(&mut items, len, what)?;
    huge_pages(&items);
    items.resize(len, value);
    Ok(items)
}

/// The size of a huge page on x86-64: what [`huge_pages`] advises, and each write of a dataset
/// array ([`crate::npy::create`]).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back a large, not yet touched allocation with huge pages: a buffer that is
/// read or written at random (an event's slot among a user's) then misses the TLB far less.
pub fn huge_pages<T>(items: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let bytes = items.capacity() * size_of::<T>();
        let start = (items.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let end = (items.as_ptr() as usize + bytes) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: advice on whole pages inside this allocation; it changes no contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = items;
}

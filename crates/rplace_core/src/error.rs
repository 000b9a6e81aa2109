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

    /// An event id (or other index) outside the dataset.
    #[error("{0}")]
    Index(String),

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

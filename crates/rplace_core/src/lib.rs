//! rplace_core: the r/place canvas history as an exact, fast dataset.
//!
//! Modules follow the data's path: [`csv_rows`] reads the official CSV, [`ingest`] sorts its
//! events into a [`dataset`] folder of SQLite partitions with canvas snapshots and the
//! memory-mapped [`index`] that [`history`] reads canvases, windows and targets from, and
//! [`synth`] writes realistic synthetic histories in the official format. The `python` feature adds the
//! binding module; everything else runs and tests without an interpreter.

pub mod csv_rows;
pub mod dataset;
pub mod error;
pub mod event;
pub mod history;
pub mod index;
pub mod ingest;
pub mod npy;
pub mod output_folder;
pub mod palette;
pub mod pool;
pub mod progress;
pub mod publish;
mod random;
pub mod sqlite_writer;
pub mod stop;
pub mod synth;
pub mod timestamp;
pub mod users;
pub mod verify;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};

/// Width and height of the 2022 canvas in pixels.
pub const CANVAS_SIZE: u16 = 2000;

//! Writing an output beside its final path and publishing it with one rename, so that a failed,
//! interrupted or killed run never leaves something that looks complete, two runs never write
//! the same output at once, and nothing is replaced that the run was not allowed to replace.
//!
//! An output `DIR/NAME` (a dataset folder, a synthetic CSV) has three hidden names beside it:
//!
//! - `.NAME.lock`: locked (`flock`) for the whole run, so a second run for the same output fails
//!   at once; the kernel releases it when a process dies, however it dies.
//! - `.NAME.staging`: what the run writes, renamed to `NAME` only when complete.
//! - `.NAME.replaced`: the previous output while it is being replaced, on file systems that
//!   cannot exchange two names in one step (Linux's `renameat2(RENAME_EXCHANGE)` does; there
//!   `NAME` always names a complete output, the old one or the new one).
//!
//! Whoever holds the lock owns all three names, so what a killed run left beside the output is
//! cleaned up (or, for a replacement cut in the middle, undone) by the next run, before it starts.

use crate::error::{Context, Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The longest file name most file systems accept, in bytes.
const NAME_MAX: usize = 255;

/// The hidden name `.NAME.TAG` beside `out`, shortened (a prefix of `NAME` and a checksum of
/// the whole) when it would be longer than a file name may be.
pub fn beside(out: &Path, tag: &str) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| Error::Argument(format!("{}: not a file or folder name", out.display())))?;
    let name = name.to_string_lossy();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let full = format!(".{name}.{tag}");
    if full.len() <= NAME_MAX {
        return Ok(parent.join(full));
    }
    let mut crc = flate2::Crc::new();
    crc.update(name.as_bytes());
    let suffix = format!("~{:08x}.{tag}", crc.sum());
    let mut keep = NAME_MAX - 1 - suffix.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    Ok(parent.join(format!(".{}{suffix}", &name[..keep])))
}

/// One run's claim on an output: the lock, and the staging path it writes to.
pub struct Output {
    out: PathBuf,
    lock: Option<(File, PathBuf)>,
    staging: PathBuf,
    replaced: PathBuf,
}

impl Output {
    /// Takes the lock of `out` (`who` names the kind of run in the error when another one holds
    /// it, e.g. "ingest"), creating the parent folder if needed, then removes what a killed run
    /// left beside `out` and undoes a replacement it cut in the middle.
    pub fn begin(out: &Path, who: &str) -> Result<Output> {
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).at(parent)?;
        let lock_path = beside(out, "lock")?;
        let lock = lock(&lock_path, out, who)?;
        let output = Output {
            out: out.to_path_buf(),
            lock: Some((lock, lock_path)),
            staging: beside(out, "staging")?,
            replaced: beside(out, "replaced")?,
        };
        output.recover()?;
        Ok(output)
    }

    /// Where the run writes its output (nothing is there yet).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    fn recover(&self) -> Result<()> {
        if exists(&self.replaced) {
            if exists(&self.out) {
                remove(&self.replaced)?;
            } else {
                // Killed between the two renames of a replacement: the old output comes back.
                std::fs::rename(&self.replaced, &self.out).at(&self.out)?;
            }
        }
        remove(&self.staging)
    }

    /// Publishes the staging path as the output. Where something is at the output already,
    /// `replaceable(path)` (called under the lock, on what is there) must return `Ok` for it to
    /// be replaced; what it replaces is removed. The caller has made the staged files durable
    /// (`fsync`); this makes the rename durable. Once the output is published, the commit
    /// succeeds: what could not be cleaned up beside it is left to the next run.
    pub fn commit(self, replaceable: impl Fn(&Path) -> Result<()>) -> Result<()> {
        self.commit_using(replaceable, exchange)
    }

    /// [`Output::commit`] with the exchange of two names given (tests take the two-rename path).
    fn commit_using(mut self, replaceable: impl Fn(&Path) -> Result<()>, exchange: fn(&Path, &Path) -> std::io::Result<()>) -> Result<()> {
        let parent = self.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let old_in_staging = loop {
            if !exists(&self.out) {
                match rename_noreplace(&self.staging, &self.out) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue, // it appeared just now
                    result => break result.at(&self.out).map(|()| false)?,
                }
            }
            replaceable(&self.out)?;
            match exchange(&self.staging, &self.out) {
                Ok(()) => {
                    // Something may have taken the output's place between the check and the
                    // exchange: what was moved aside must pass the check again before it goes.
                    if replaceable(&self.staging).is_err() {
                        let reason = match exchange(&self.staging, &self.out) {
                            Ok(()) => "something took its place while it was being published: left in place, nothing published".into(),
                            Err(e) => {
                                // Staging holds what is not ours: it must never be removed.
                                self.staging = PathBuf::new();
                                format!(
                                    "something took its place while it was being published, and could not be put back ({e}): \
                                 it is now at {}, the new output at {}",
                                    beside(&self.out, "staging")?.display(),
                                    self.out.display()
                                )
                            }
                        };
                        return Err(Error::Dataset { path: self.out.clone(), reason });
                    }
                    break true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                    std::fs::rename(&self.out, &self.replaced).at(&self.out)?;
                    if let Err(e) = std::fs::rename(&self.staging, &self.out) {
                        std::fs::rename(&self.replaced, &self.out).at(&self.out)?;
                        return Err(e).at(&self.out);
                    }
                    let _ = remove(&self.replaced); // else the next run removes it
                    break false;
                }
                Err(e) => return Err(e).at(&self.out),
            }
        };
        // Published. A failure from here on leaves a complete output; the next run cleans up.
        let _ = sync_folder(&parent);
        if old_in_staging {
            let _ = remove(&self.staging); // the old output, moved here by the exchange
        }
        self.staging = PathBuf::new();
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.staging.as_os_str().is_empty() {
            let _ = remove(&self.staging);
        }
        if let Some((file, path)) = self.lock.take() {
            // Removed while still locked; `lock` checks it locked the file that has the name.
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

/// Locks the file `path` (created if needed) without waiting, and writes into it who holds it
/// (`who` and the process id), which a run that finds it locked reports.
fn lock(path: &Path, out: &Path, who: &str) -> Result<File> {
    for _ in 0..100 {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path).ok().filter(|h| !h.trim().is_empty());
                let holder = holder.map_or_else(|| "another run".to_string(), |h| format!("another {}", h.trim()));
                return Err(Error::Dataset {
                    path: out.to_path_buf(),
                    reason: format!("{holder} is writing it (it holds {}); wait for it to finish", path.display()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(e).at(path),
        }
        // The last holder removes the file before it unlocks; a run that opened it just before
        // then holds a lock on a file without a name, and must start again.
        if same_file(&file, path) {
            file.set_len(0).and_then(|()| write!(file, "{who} (process {})", std::process::id())).at(path)?;
            return Ok(file);
        }
    }
    Err(Error::Dataset { path: out.to_path_buf(), reason: format!("could not lock {}", path.display()) })
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

/// Anything at `path`, a dangling symbolic link included.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Removes a file or a folder tree; nothing there is fine.
pub fn remove(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return Ok(()),
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// Makes the entries of folder `path` durable (the renames and creations in it).
pub fn sync_folder(path: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(path).and_then(|folder| folder.sync_all()).at(path)?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput));
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that live across the call.
    let done = unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags) };
    if done == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        // The file system (or the kernel) cannot do it in one step.
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Err(std::io::Error::from(std::io::ErrorKind::Unsupported)),
        _ => Err(error),
    }
}

/// Renames `from` to `to` unless something is at `to` (`AlreadyExists`).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
        result => return result,
    }
    if exists(to) {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(from, to)
}

/// Swaps the names `a` and `b` in one step; `Unsupported` where the file system cannot.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    return renameat2(a, b, libc::RENAME_EXCHANGE);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_and_stay_distinct() {
        let dir = Path::new("/tmp/x");
        assert_eq!(beside(&dir.join("place2022"), "lock").unwrap(), dir.join(".place2022.lock"));
        let long_a = "a".repeat(250);
        let long_b = format!("{}b", "a".repeat(249));
        let a = beside(&dir.join(&long_a), "staging").unwrap();
        let b = beside(&dir.join(&long_b), "staging").unwrap();
        assert_ne!(a, b);
        for name in [&a, &b] {
            let name = name.file_name().unwrap().to_str().unwrap();
            assert!(name.len() <= NAME_MAX && name.starts_with(".aaa") && name.ends_with(".staging"), "{name}");
        }
        let wide = "é".repeat(127); // 254 bytes, cut on a character boundary
        assert!(beside(&dir.join(wide), "replaced").unwrap().file_name().unwrap().len() <= NAME_MAX);
    }

    #[test]
    fn a_second_run_fails_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = Output::begin(&out, "ingest").unwrap();
        let error = Output::begin(&out, "synth").err().unwrap().to_string();
        assert!(error.contains(&format!("another ingest (process {}) is writing it", std::process::id())), "{error}");
        drop(first);
        assert!(!dir.path().join(".out.lock").exists());
        drop(Output::begin(&out, "ingest").unwrap());
    }

    #[test]
    fn commit_publishes_replaces_only_what_is_allowed_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let write = |text: &str| {
            let output = Output::begin(&out, "test").unwrap();
            std::fs::create_dir(output.staging()).unwrap();
            std::fs::write(output.staging().join("f"), text).unwrap();
            output
        };
        write("one").commit(|_| Err(Error::Argument("nothing to replace".into()))).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "one");
        let refused = write("two").commit(|p| Err(Error::Argument(format!("{} stays", p.display())))).unwrap_err();
        assert!(refused.to_string().ends_with("out stays"), "{refused}");
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "one");
        write("three").commit(|_| Ok(())).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "three");
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["out"]);
    }

    #[test]
    fn the_two_rename_replacement_publishes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let unsupported: fn(&Path, &Path) -> std::io::Result<()> = |_, _| Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
        for text in ["one", "two"] {
            let output = Output::begin(&out, "test").unwrap();
            std::fs::create_dir(output.staging()).unwrap();
            std::fs::write(output.staging().join("f"), text).unwrap();
            output.commit_using(|_| Ok(()), unsupported).unwrap();
            assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), text);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out"]);
    }

    #[test]
    fn what_takes_the_outputs_place_during_the_exchange_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("dataset"), "old").unwrap();
        let output = Output::begin(&out, "test").unwrap();
        std::fs::create_dir(output.staging()).unwrap();
        // The check passes on the old output, then (as if swapped in meanwhile) fails.
        let checks = std::cell::Cell::new(0);
        let error = output
            .commit(|_| {
                checks.set(checks.get() + 1);
                if checks.get() == 1 {
                    Ok(())
                } else {
                    Err(Error::Argument("not a dataset".into()))
                }
            })
            .unwrap_err();
        assert!(error.to_string().contains("something took its place"), "{error}");
        assert_eq!(std::fs::read_to_string(out.join("dataset")).unwrap(), "old");
    }

    #[test]
    fn leftovers_of_a_killed_run_are_cleaned_or_undone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Killed while staging: the staging folder goes.
        std::fs::create_dir_all(dir.path().join(".out.staging/partitions")).unwrap();
        drop(Output::begin(&out, "test").unwrap());
        assert!(!dir.path().join(".out.staging").exists());
        // Killed between the two renames of a replacement: the old output comes back.
        std::fs::create_dir(dir.path().join(".out.replaced")).unwrap();
        std::fs::write(dir.path().join(".out.replaced/f"), "old").unwrap();
        drop(Output::begin(&out, "test").unwrap());
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "old");
        // Killed after them: the old output goes.
        std::fs::create_dir(dir.path().join(".out.replaced")).unwrap();
        drop(Output::begin(&out, "test").unwrap());
        assert!(!dir.path().join(".out.replaced").exists() && out.join("f").exists());
    }
}

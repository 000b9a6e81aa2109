//! Whether a folder given as an output is rplacevit's own: the one rule every command that
//! writes a folder follows (ingest here, and through the binding train, evaluate, users
//! cluster, download, demo and the rest).
//!
//! A folder is a command's own only when it holds the marker [`MARKER_FILE`], which the command
//! wrote when it created the folder, naming the kind of output (`{"written_by": "rplacevit",
//! "kind": "report", "version": "0.1.0"}`). Then:
//!
//! - nothing at the path, or an empty folder: the command may write there;
//! - a folder marked with the same kind: written into or replaced only as the command's own
//!   flag says (`force` for most, `resume` for a training run, always for the demo's folder);
//! - a folder marked with another kind, a folder without the marker, a file, a symbolic link:
//!   never written into or replaced, with or without `force`; the error names the folder and
//!   says why.
//!
//! Outputs written before the marker existed are recognised by their whole set of files, never
//! by one name: every entry of the folder is one the kind writes, and the ones it always writes
//! are all there (a dataset: its manifest, or an earlier version's `meta.sqlite`).

use crate::error::{Context, Error, Result};
use std::path::Path;

/// The marker's file name inside an output folder.
pub const MARKER_FILE: &str = ".rplacevit.json";

/// An output folder's kind: its name in the marker, the files an output of that kind made
/// before the marker existed always holds, and those it may hold besides (`*` stands for any
/// part of a name).
struct Kind {
    name: &'static str,
    always: &'static [&'static str],
    maybe: &'static [&'static str],
}

/// Every kind of output folder. A dataset's earlier outputs are recognised by [`crate::dataset::is_dataset`].
const KINDS: &[Kind] = &[
    Kind { name: "dataset", always: &[], maybe: &[] },
    Kind { name: "run", always: &["metrics.csv"], maybe: &["loss.png", "model.pt", "checkpoints"] },
    Kind {
        name: "report",
        always: &["report.json", "report.md", "events.npy"],
        maybe: &["confusion.png", "examples.png"],
    },
    Kind {
        name: "clusters",
        always: &["clusters.npy", "clusters.csv", "pca2d.png", "pca3d.png", "clusters.png"],
        maybe: &[],
    },
    // The demo marked its folder with a file of its own before this rule existed.
    Kind { name: "demo", always: &[".rplacevit-demo"], maybe: &["*"] },
    Kind { name: "download", always: &["manifest.json"], maybe: &["*.part", ".*.part.json", ".download.lock", "*.csv.gzip", "*.csv.gz", "*.csv"] },
    Kind { name: "forecast", always: &[], maybe: &[] },
];

/// The names of the kinds, for the binding and its messages.
pub fn kinds() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

fn kind(name: &str) -> Result<&'static Kind> {
    KINDS.iter().find(|k| k.name == name).ok_or_else(|| Error::Argument(format!("`kind` = {name:?}: expected one of {}", kinds().join(", "))))
}

/// What is at an output path, as far as the rule goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing, or an empty folder: the command may create or fill it.
    Nothing,
    /// An output of the command's own kind (marked, or recognised by its files).
    Own,
}

/// The refusal for `path`, with `reason`.
fn refuse(path: &Path, reason: String) -> Error {
    Error::OutputExists { path: path.to_path_buf(), reason }
}

/// What is at `path`, for a command writing an output folder of kind `kind_name`: `Nothing`,
/// `Own`, or [`Error::OutputExists`] saying why the folder is not the command's to touch (`flag`:
/// the command's flag that would allow `Own`, named in the refusal; empty for a command that
/// replaces its own output always). See [`check`].
pub fn found(path: &Path, kind_name: &str, flag: &str) -> Result<Found> {
    let wanted = kind(kind_name)?;
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e).at(path),
        Ok(meta) => meta,
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(path, "is a symbolic link: give the folder itself".into()));
    }
    if !meta.is_dir() {
        return Err(refuse(path, format!("is a file, not a folder: refusing to replace it with a {}", wanted.name)));
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).at(path)? {
        names.push(entry.at(path)?.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(Found::Nothing);
    }
    if names.iter().any(|n| n == MARKER_FILE) {
        let marker = path.join(MARKER_FILE);
        let text = std::fs::read(&marker).at(&marker)?;
        let written: Option<String> = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .filter(|v| v.get("written_by").and_then(|w| w.as_str()) == Some("rplacevit"))
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string));
        return match written {
            Some(k) if k == wanted.name => Ok(Found::Own),
            Some(k) => Err(refuse(path, format!("holds a rplacevit {k} ({MARKER_FILE}), not a {}: refusing to write into it or replace it", wanted.name))),
            None => Err(refuse(path, format!("{MARKER_FILE} in it is not a marker rplacevit wrote: refusing to write into it or replace it"))),
        };
    }
    if earlier_output(path, wanted, &names) {
        return Ok(Found::Own);
    }
    let whatever = if flag.is_empty() { String::new() } else { format!(", with or without `{flag}`") };
    Err(refuse(path, format!("is not empty and was not written by rplacevit (no {MARKER_FILE} in it): refusing to write into it or replace it{whatever}")))
}

/// `names` (the folder's entries) are those of an output of `kind` written before the marker.
fn earlier_output(path: &Path, kind: &Kind, names: &[String]) -> bool {
    if kind.name == "dataset" {
        return crate::dataset::is_dataset(path);
    }
    let matches = |pattern: &str, name: &str| match pattern.split_once('*') {
        Some((prefix, suffix)) => name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix),
        None => name == pattern,
    };
    !kind.always.is_empty()
        && kind.always.iter().all(|a| names.iter().any(|n| n == a))
        && names.iter().all(|n| kind.always.iter().chain(kind.maybe).any(|p| matches(p, n)))
}

/// The whole rule for a command about to write an output folder of kind `kind` at `path`:
/// `Ok(false)` when nothing is there (or an empty folder), `Ok(true)` when an output of its
/// kind is there and `allowed` (the command's own flag, named `flag` in the refusal) lets it be
/// written into or replaced; else [`Error::OutputExists`] naming the folder and why.
pub fn check(path: &Path, kind_name: &str, allowed: bool, flag: &str) -> Result<bool> {
    match found(path, kind_name, flag)? {
        Found::Nothing => Ok(false),
        Found::Own if allowed => Ok(true),
        Found::Own => {
            let what = if flag.starts_with("resume") { "continue it" } else { "replace it" };
            Err(refuse(path, format!("already holds a {kind_name}: pass `{flag}` to {what}, or choose another folder")))
        }
    }
}

/// Writes the marker of kind `kind` into the folder `folder` (which the caller created).
pub fn mark(folder: &Path, kind_name: &str) -> Result<()> {
    let wanted = kind(kind_name)?;
    let marker = folder.join(MARKER_FILE);
    let text = serde_json::json!({"written_by": "rplacevit", "kind": wanted.name, "version": env!("CARGO_PKG_VERSION")});
    std::fs::write(&marker, format!("{text}\n")).at(&marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_refused(result: Result<impl std::fmt::Debug>, words: &str) {
        match result {
            Err(e @ Error::OutputExists { .. }) => assert!(e.to_string().contains(words), "{e}"),
            other => panic!("expected a refusal containing {words:?}, got {other:?}"),
        }
    }

    #[test]
    fn only_marked_or_recognised_folders_of_the_same_kind_are_own() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        assert_eq!(found(&out, "report", "force=True").unwrap(), Found::Nothing);
        std::fs::create_dir(&out).unwrap();
        assert_eq!(found(&out, "report", "force=True").unwrap(), Found::Nothing);
        // A user's folder holding one file of the kind's name is not a report.
        std::fs::write(out.join("report.json"), "{}").unwrap();
        std::fs::write(out.join("paper.tex"), "mine").unwrap();
        is_refused(found(&out, "report", "force=True"), "was not written by rplacevit");
        is_refused(check(&out, "report", true, "force=True"), "with or without `force=True`");
        // Marked: its own kind only.
        mark(&out, "report").unwrap();
        assert_eq!(found(&out, "report", "force=True").unwrap(), Found::Own);
        is_refused(found(&out, "clusters", "force=True"), "holds a rplacevit report");
        is_refused(check(&out, "report", false, "force=True"), "pass `force=True`");
        assert!(check(&out, "report", true, "force=True").unwrap());
        std::fs::write(out.join(MARKER_FILE), "{\"kind\": \"report\"}").unwrap();
        is_refused(found(&out, "report", "force=True"), "not a marker rplacevit wrote");
        // A file, a link.
        std::fs::write(dir.path().join("file"), "x").unwrap();
        is_refused(found(&dir.path().join("file"), "report", "force=True"), "is a file");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&out, dir.path().join("link")).unwrap();
            is_refused(found(&dir.path().join("link"), "report", "force=True"), "symbolic link");
        }
        is_refused(found(&out, "nonsense", "force=True").map_err(|e| Error::OutputExists { path: out.clone(), reason: e.to_string() }), "expected one of");
    }

    #[test]
    fn earlier_outputs_are_recognised_by_their_whole_set_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("clusters");
        std::fs::create_dir(&out).unwrap();
        for name in ["clusters.npy", "clusters.csv", "pca2d.png", "pca3d.png"] {
            std::fs::write(out.join(name), "x").unwrap();
        }
        is_refused(found(&out, "clusters", "force=True"), "not written by rplacevit"); // one missing
        std::fs::write(out.join("clusters.png"), "x").unwrap();
        assert_eq!(found(&out, "clusters", "force=True").unwrap(), Found::Own);
        std::fs::write(out.join("thesis.tex"), "x").unwrap();
        is_refused(found(&out, "clusters", "force=True"), "not written by rplacevit"); // one too many
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("checkpoints")).unwrap();
        std::fs::write(run.join("metrics.csv"), "x").unwrap();
        assert_eq!(found(&run, "run", "force=True").unwrap(), Found::Own);
        std::fs::create_dir(run.join("src")).unwrap();
        is_refused(found(&run, "run", "force=True"), "not written by rplacevit");
        let download = dir.path().join("files");
        std::fs::create_dir(&download).unwrap();
        for name in ["manifest.json", "a.csv.gzip", "b.csv.gzip.part", ".b.csv.gzip.part.json"] {
            std::fs::write(download.join(name), "x").unwrap();
        }
        assert_eq!(found(&download, "download", "force=True").unwrap(), Found::Own);
        std::fs::write(download.join("notes.txt"), "x").unwrap();
        is_refused(found(&download, "download", "force=True"), "not written by rplacevit");
    }
}

//! Long work that the user can interrupt. Python only delivers Ctrl-C to its main thread, so the
//! work runs on a helper thread while the calling thread keeps asking `should_stop` and raises a
//! flag that the work checks between blocks.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

/// Where the last panic happened, for the [`Error::Internal`] it becomes.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the default panic hook, which prints "thread … panicked" to stderr, by one that
/// only records where the panic happened: every panic of the crate is caught and comes back as
/// an error that says it (the binding installs this; Rust's own tests keep the default).
pub fn quiet_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            *LAST_PANIC.lock().unwrap_or_else(PoisonError::into_inner) = place;
        }))
    });
}

/// Runs `work` on a scoped thread; sets its flag as soon as `should_stop()` returns true.
/// A panic in `work` comes back as [`Error::Internal`] instead of unwinding into the caller.
pub fn run_stoppable<T: Send>(should_stop: &dyn Fn() -> bool, work: impl FnOnce(&AtomicBool) -> Result<T> + Send) -> Result<T> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| work(&stop));
        while !worker.is_finished() {
            std::thread::park_timeout(Duration::from_millis(20));
            if !stop.load(Ordering::Relaxed) && should_stop() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        worker.join().unwrap_or_else(|panic| Err(internal(panic)))
    })
}

/// Runs `work` and returns a panic in it as [`Error::Internal`]: what the entry points of the
/// crate wrap their work in, so that no panic unwinds into Python.
pub fn catching<T>(work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(internal)
}

fn internal(panic: Box<dyn std::any::Any + Send>) -> Error {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string());
    match LAST_PANIC.lock().unwrap_or_else(PoisonError::into_inner).take() {
        Some(place) => Error::Internal(format!("{message} (at {place})")),
        None => Error::Internal(message),
    }
}

/// `Err(Interrupted)` once the flag is up.
pub fn check(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_when_asked_and_reports_panics() {
        let result: Result<()> = run_stoppable(&|| true, |stop| loop {
            check(stop)?;
            std::thread::sleep(Duration::from_millis(1));
        });
        assert!(matches!(result, Err(Error::Interrupted)));
        let result: Result<()> = run_stoppable(&|| false, |_| panic!("boom"));
        assert!(matches!(result, Err(Error::Internal(m)) if m == "boom"));
        assert_eq!(run_stoppable(&|| false, |_| Ok(7)).unwrap(), 7);
        assert!(matches!(catching(|| -> u8 { panic!("bang") }), Err(Error::Internal(m)) if m == "bang"));
        assert_eq!(catching(|| 7).unwrap(), 7);
    }
}

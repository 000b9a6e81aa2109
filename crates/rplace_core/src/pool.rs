//! The thread pool of the batch reads: rayon's, but one per process, so that a forked child
//! (a torch loader worker started with "fork") never waits on the threads it did not inherit.

use crate::error::Result;
use crate::stop::catching;
use std::sync::{Mutex, PoisonError};

/// Runs `work` on the caller's rayon pool when it runs inside one, else on this process's pool.
///
/// A forked child (a torch loader worker started with "fork") inherits the parent's pools
/// without their threads: work sent there would wait forever. So each process builds its own
/// pool, recognised by the process id, and a child leaks the copy it inherited.
///
/// A panic in `work` (a damaged index file can make one) comes back as [`Error::Internal`].
pub fn in_pool<R: Send>(work: impl FnOnce() -> R + Send) -> Result<R> {
    static POOL: Mutex<Option<(u32, &'static rayon::ThreadPool)>> = Mutex::new(None);
    if rayon::current_thread_index().is_some() {
        return catching(work);
    }
    let pid = std::process::id();
    let pool = {
        let mut current = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        match *current {
            Some((owner, pool)) if owner == pid => Some(pool),
            _ => match rayon::ThreadPoolBuilder::new().build() {
                Ok(pool) => {
                    let pool: &'static rayon::ThreadPool = Box::leak(Box::new(pool));
                    *current = Some((pid, pool));
                    Some(pool)
                }
                Err(_) => None, // no threads to be had: do the work on this one
            },
        }
    };
    catching(|| match pool {
        Some(pool) => pool.install(work),
        None => work(),
    })
}

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

/// A slice that parallel jobs write without locks, where the caller guarantees that no two jobs
/// ever touch the same element (each element belongs to one job: an event to its tile, a user's
/// slot to the event that fills it). Bounds are checked: an index out of range panics (a
/// damaged file), it never writes outside.
pub struct Disjoint<'a, T> {
    items: *mut T,
    len: usize,
    lifetime: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: the jobs write disjoint elements (the caller's promise, see `at`) of a slice that the
// borrow keeps alive and unaliased for `'a`.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub fn new(items: &'a mut [T]) -> Self {
        Disjoint { items: items.as_mut_ptr(), len: items.len(), lifetime: std::marker::PhantomData }
    }

    /// Element `index`, to write.
    ///
    /// # Safety
    /// No other job uses element `index` while the returned reference lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn at(&self, index: usize) -> &mut T {
        assert!(index < self.len, "index {index} out of range for {} elements", self.len);
        // SAFETY: in bounds (checked above), and not used by any other job (the caller's promise).
        unsafe { &mut *self.items.add(index) }
    }
}

//! libtorch's thread count, which belongs to each thread: setting it, and running a job on a
//! thread of its own with a given count.

/// Sets the number of threads libtorch uses for intra-op parallelism on the calling thread,
/// and for the threads it starts later (0 keeps its default).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        // libtorch sets a thread's count lazily, from the last count set anywhere: let it do
        // that first, so that it cannot later replace this one.
        let _ = tch::get_num_threads();
        tch::set_num_threads(threads as i32);
    }
}

/// Runs `job` on a new thread on which libtorch uses `threads` threads, and returns its
/// result; a panic in `job` continues on the calling thread. libtorch's thread count belongs
/// to each thread, and some paths depend on it ([`crate::matmul`] computes products itself on a
/// thread set to one).
pub fn on_new_thread<T: Send>(threads: usize, job: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            set_threads(threads);
            job()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_thread_gets_its_own_thread_count() {
        let before = tch::get_num_threads();
        for threads in [1, 2, 3] {
            assert_eq!(on_new_thread(threads, tch::get_num_threads), threads as i32);
        }
        assert_eq!(tch::get_num_threads(), before);
        let panicked = std::panic::catch_unwind(|| on_new_thread(1, || panic!("job")));
        assert!(panicked.is_err());
    }
}

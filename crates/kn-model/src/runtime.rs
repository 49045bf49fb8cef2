//! Process-wide settings that applications (the `kn` binary, benchmarks) choose for the
//! libtorch runtime and the C allocator under it. The library never changes them by itself.

pub use kn_kernels::threads::{on_new_thread, set_threads};

/// Asks the C allocator (glibc) to keep freed memory for reuse instead of handing it back to
/// the system, and to serve large blocks from its heap rather than from fresh `mmap`s.
///
/// libtorch allocates and frees the same large buffers over and over (an attribution pass
/// allocates a few hundred MB of saved activations and frees them at its end). By default
/// glibc returns such blocks to the kernel, so the next pass takes every page again as a page
/// fault and the kernel zeroes it: about 100,000 faults per SmolLM2 attribution. With this
/// setting the process keeps its high-water mark of memory mapped (its peak is unchanged) and
/// later passes reuse it.
///
/// It also serves every thread from one heap (glibc's `M_ARENA_MAX` = 1). Attribution runs
/// passes on worker threads (`AttributionConfig::concurrent_passes`); with a heap per thread,
/// each kept its own high-water mark and what one worker freed could not serve the other, so
/// two concurrent SmolLM2 passes peaked at 1.51-1.53 GB instead of 1.33-1.36 GB, at the same
/// speed.
///
/// Call it early in `main`, before the model is loaded. Returns whether the allocator took the
/// settings (`false` on platforms other than Linux with glibc, where it does nothing).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 1 << 30;
        const TOP_PAD: libc::c_int = 64 << 20;
        // SAFETY: mallopt only sets allocator parameters under the allocator's own lock; the
        // values are within the ranges glibc documents.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
                && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
                && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retaining_freed_memory_is_accepted_by_glibc() {
        let taken = retain_freed_memory();
        assert_eq!(taken, cfg!(all(target_os = "linux", target_env = "gnu")));
        // Allocations still work afterwards, large ones included.
        let block = vec![1u8; 64 << 20];
        assert_eq!(block.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
    }
}

/// The memory the system could give this process now without swapping (`MemAvailable` of
/// `/proc/meminfo`), in bytes; `None` where that is not known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// `MemAvailable` (in kB) of a `/proc/meminfo` text, in bytes.
fn parse_mem_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kilobytes.checked_mul(1024)
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(20_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        #[cfg(target_os = "linux")]
        assert!(available_memory().is_some_and(|bytes| bytes > 0));
    }
}

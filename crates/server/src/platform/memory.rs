//! Memory that comes back: glibc keeps what a burst of requests freed in its arenas (80 MiB
//! after a load test, and the 85 MiB that 5,000 SSE subscribers needed, stayed resident for
//! good: docs/benchmarks.md). Requests and closing connections count as activity; once the
//! daemon has been quiet for one tick after some, [`spawn_trimmer`] asks glibc to hand the
//! free pages of every arena back to the kernel (`malloc_trim`), and lets the kernel take back
//! the clean pages of the program's own read-only file mappings (`MADV_PAGEOUT`: code and
//! constants that start-up or the burst touched; they are still in the page cache, so the next
//! use is a minor fault, never a disk read or a change of content). Between bursts it does
//! nothing, so a steady load never pays for it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static ACTIVITY: AtomicU64 = AtomicU64::new(0);

/// How long the daemon must be quiet before it trims.
const QUIET: Duration = Duration::from_secs(2);

/// Run before each trim: work that frees memory the trim should then hand back.
static BEFORE_TRIM: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Sets what runs before each trim (once per process). The daemon drains the Prometheus
/// recorder's raw histogram samples there: its housekeeping upkeep runs every 5 s, and when
/// that came after the trim that followed a load, the samples' ~3 MiB stayed resident until
/// the next load (bench/memory, docs/benchmarks.md).
pub fn before_trim(f: impl Fn() + Send + Sync + 'static) {
    let _ = BEFORE_TRIM.set(Box::new(f));
}

/// A request started or finished, or a connection closed.
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// Starts the trimmer on the current runtime.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(QUIET);
        let mut seen = ACTIVITY.load(Ordering::Relaxed);
        let mut dirty = false;
        // At once (start-up itself allocated and freed), and one tick later whether or not
        // requests came: by then the areas' start-up tasks (remounts, share sync, the first
        // metrics sample) and the document's thread have run, and what they freed is garbage
        // a quiet daemon would otherwise keep until its first quiet tick.
        let mut start_up_trims = 2;
        loop {
            tick.tick().await;
            let now = ACTIVITY.load(Ordering::Relaxed);
            let active = now != seen;
            seen = now;
            if start_up_trims > 0 {
                start_up_trims -= 1;
                dirty = active;
                let _ = tokio::task::spawn_blocking(trim).await;
            } else if active {
                dirty = true;
            } else if dirty {
                dirty = false;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    });
}

/// Sets glibc's allocator up for a daemon that should give memory back; call before any
/// thread but `main` exists. Measured with `bench/memory` (docs/benchmarks.md, issue 15):
/// * two arenas instead of 8 per core: the tokio workers, the blocking pool and the start-up
///   threads no longer each keep a heap of their own with free pages pinned by a few live
///   objects (anonymous memory after 5,000 SSE subscribers left: 11.4 → 9.3 MiB);
/// * a fixed mmap threshold of 128 KiB: glibc otherwise raises it to the size of every large
///   block freed (up to 32 MiB), after which buffers of that size (the document, big answers)
///   come from the heap and fragment it instead of going back to the kernel when freed.
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns free heap pages and clean read-only file pages to the kernel.
pub fn trim() {
    if let Some(f) = BEFORE_TRIM.get() {
        f();
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for (start, len) in read_only_file_mappings(&maps) {
            // SAFETY: MADV_PAGEOUT never changes a mapping's content: clean file pages are
            // dropped and read back on use; anything else is left alone (no swap here).
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT);
            }
        }
    }
}

/// `(start, length)` of the mappings in a `/proc/self/maps` text that are backed by a file and
/// can be neither written nor shared-written: `r--p` and `r-xp` with a path.
pub fn read_only_file_mappings(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let range = parts.next()?;
            let perms = parts.next()?;
            let path = parts.nth(3)?;
            if !path.starts_with('/') || !matches!(perms, "r--p" | "r-xp") {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let a = usize::from_str_radix(a, 16).ok()?;
            let b = usize::from_str_radix(b, 16).ok()?;
            (b > a).then_some((a, b - a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_file_mappings_are_paged_out() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 123 /usr/bin/hostplane
55d0c0100000-55d0c0800000 r-xp 00100000 fd:01 123 /usr/bin/hostplane
55d0c0800000-55d0c0900000 r--p 00800000 fd:01 123 /usr/bin/hostplane
55d0c0900000-55d0c0910000 rw-p 00900000 fd:01 123 /usr/bin/hostplane
55d0c1000000-55d0c2000000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 r--s 00000000 fd:01 9 /dev/shm/x
7f0000002000-7f0000003000 r--p 00000000 00:00 0
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
";
        assert_eq!(
            read_only_file_mappings(maps),
            [
                (0x55d0c0000000, 0x100000),
                (0x55d0c0100000, 0x700000),
                (0x55d0c0800000, 0x100000)
            ]
        );
        // Against this process's own maps: never a writable or anonymous mapping.
        let own = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!read_only_file_mappings(&own).is_empty());
        trim();
    }
}

//! Memory that comes back: glibc keeps what a burst of requests freed in its arenas (80 MiB
//! after a load test, and the 85 MiB that 5,000 SSE subscribers needed, stayed resident for
//! good: docs/benchmarks.md). Requests and closing connections count as activity; once the
//! daemon has been quiet for one tick after some, [`spawn_trimmer`] asks glibc to hand the
//! free pages of every arena back to the kernel (`malloc_trim`). Between bursts it does
//! nothing, so a steady load never pays for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static ACTIVITY: AtomicU64 = AtomicU64::new(0);

/// How long the daemon must be quiet before it trims.
const QUIET: Duration = Duration::from_secs(2);

/// A request started or finished, or a connection closed.
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// Starts the trimmer on the current runtime.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(QUIET);
        let mut seen = ACTIVITY.load(Ordering::Relaxed);
        let mut dirty = true; // start-up itself allocated and freed
        loop {
            tick.tick().await;
            let now = ACTIVITY.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                dirty = true;
            } else if dirty {
                dirty = false;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    });
}

/// Returns free heap pages to the kernel.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

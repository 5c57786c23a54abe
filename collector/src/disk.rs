//! The free-space guard: below `--min-free-mb` on the database's file
//! system, events are refused with 503 (the snippet keeps them and retries)
//! and `/readyz` says why, before SQLite itself runs out of room mid-commit.
//! Checked at most once a second, so the ingest path pays one atomic load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const RECHECK: Duration = Duration::from_secs(1);

pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    low: AtomicBool,
    /// Milliseconds since `started` at the last check.
    checked_at: AtomicU64,
    started: Instant,
}

impl DiskGuard {
    /// Guards the file system holding `db`, wanting `min_free_mb` free (0: off).
    pub fn new(db: &Path, min_free_mb: u64) -> DiskGuard {
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        DiskGuard {
            dir: dir.to_path_buf(),
            min_free: min_free_mb.saturating_mul(1024 * 1024),
            low: AtomicBool::new(false),
            checked_at: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }

    /// Why writes are refused, if free space is below the minimum.
    pub fn low(&self) -> Option<String> {
        if self.min_free == 0 {
            return None;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.checked_at.load(Ordering::Relaxed);
        if last == u64::MAX || now.saturating_sub(last) >= RECHECK.as_millis() as u64 {
            self.checked_at.store(now, Ordering::Relaxed);
            let free = free_bytes(&self.dir).unwrap_or(u64::MAX);
            self.low.store(free < self.min_free, Ordering::Relaxed);
        }
        self.low.load(Ordering::Relaxed).then(|| {
            format!(
                "less than {} MB free on the database's disk; events are refused until space is freed",
                self.min_free / (1024 * 1024)
            )
        })
    }
}

/// Bytes available to this process on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only into the struct passed; the path is a
    // NUL-terminated string that outlives the call.
    unsafe {
        let mut stats = std::mem::zeroed::<libc::statvfs>();
        (libc::statvfs(path.as_ptr(), &mut stats) == 0).then(|| stats.f_bavail as u64 * stats.f_frsize as u64)
    }
}

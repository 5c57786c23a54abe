//! The collector's clock: when events are received, and so how old a click is
//! when a signup arrives (the attribution window).
//!
//! In production it is the system clock. Tests shift it with an offset file
//! (`serve --clock-offset-file`, seconds, re-read at every tick) so "30 days
//! later" takes no time: a real collector and a real browser, with only the
//! collector's sense of time moved.

use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_file: Option<Arc<PathBuf>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock plus the whole seconds written in `path` (missing or
    /// unreadable: no offset).
    pub fn with_offset_file(path: PathBuf) -> Clock {
        Clock {
            offset_file: Some(Arc::new(path)),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        super::now_ms() + self.offset_ms()
    }

    /// How far the tests moved this clock from the system's (0 in
    /// production), in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        let offset_secs: i64 = self
            .offset_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path.as_path()).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        offset_secs * 1000
    }
}

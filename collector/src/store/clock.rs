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

/// The UTC date of `ms` (epoch milliseconds): `2026-11-25`.
pub fn date(ms: i64) -> String {
    let (year, month, day) = civil(ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `ms` (epoch milliseconds) as an RFC 3339 UTC time with milliseconds:
/// `2026-11-25T22:37:42.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{}T{h:02}:{m:02}:{s:02}.{milli:03}Z", date(ms))
}

/// Days since the epoch to a civil (year, month, day): Howard Hinnant's
/// algorithm (no date crate for two formats).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_written_as_utc() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::rfc3339(1_795_646_262_123), "2026-11-25T22:37:42.123Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

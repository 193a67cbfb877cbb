//! How times and sizes are shown and typed: offsets into a recording (`1:02:03.4`), wall-clock
//! times (UTC), byte sizes.

use time::OffsetDateTime;
use time::macros::format_description;

/// `M:SS` or `H:MM:SS` for an offset in seconds (negative and non-finite values show as 0).
pub fn offset(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Like [`offset`] with tenths of a second, for the player's position.
pub fn offset_precise(seconds: f64) -> String {
    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    let tenths = ((seconds.fract() * 10.0) as u64).min(9);
    format!("{}.{tenths}", offset(seconds))
}

/// `2024-05-01 12:03:04` (UTC) of `start + seconds`.
pub fn wall(start: OffsetDateTime, seconds: f64) -> String {
    let at = start + time::Duration::seconds_f64(if seconds.is_finite() { seconds } else { 0.0 });
    date_time(at)
}

pub fn date_time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at.format(&format).unwrap_or_default()
}

/// Parses `YYYY-MM-DD` (a browser date filter); `None` if it is not a date.
pub fn parse_date(text: &str) -> Option<time::Date> {
    let format = format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), &format).ok()
}

/// Parses an offset typed by a person: `90`, `1:30`, `1:02:03`, `90s`, `5m`, `1h30m`.
pub fn parse_offset(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(seconds);
    }
    if text.contains(':') {
        let mut total = 0.0;
        for part in text.split(':') {
            let value: f64 = part.parse().ok()?;
            if !(value.is_finite() && value >= 0.0) {
                return None;
            }
            total = total * 60.0 + value;
        }
        return Some(total);
    }
    humantime::parse_duration(text)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_format_and_parse_back() {
        assert_eq!(offset(0.0), "0:00");
        assert_eq!(offset(65.9), "1:05");
        assert_eq!(offset(3723.0), "1:02:03");
        assert_eq!(offset(f64::NAN), "0:00");
        assert_eq!(offset_precise(65.25), "1:05.2");
        assert_eq!(parse_offset("1:05"), Some(65.0));
        assert_eq!(parse_offset("1:02:03"), Some(3723.0));
        assert_eq!(parse_offset("90s"), Some(90.0));
        assert_eq!(parse_offset("1h30m"), Some(5400.0));
        assert_eq!(parse_offset("12.5"), Some(12.5));
        assert_eq!(parse_offset("-3"), None);
        assert_eq!(parse_offset("x:1"), None);
    }

    #[test]
    fn wall_clock_is_utc() {
        let start = OffsetDateTime::from_unix_timestamp(1_714_564_984).unwrap();
        assert_eq!(wall(start, 60.0), "2024-05-01 12:04:04");
        assert_eq!(parse_date("2024-05-01").map(|d| d.day()), Some(1));
        assert_eq!(parse_date("2024-13-01"), None);
    }
}

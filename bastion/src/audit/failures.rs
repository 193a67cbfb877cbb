//! Counting repeated authentication failures per source, so a peer that fails again and
//! again costs the audit log one line per window instead of one per attempt. The map of
//! sources is bounded: a new source beyond [`MAX_FAILURE_SOURCES`] closes the oldest window.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::AuditEvent;
use crate::text::capped;

/// After a source's first authentication failure is written, further failures from it during
/// this long are only counted; the count is written when the window is over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sources whose failures are being counted at once; a new source beyond it closes the oldest
/// window early (writing its count), so memory stays bounded whatever the peers do.
pub const MAX_FAILURE_SOURCES: usize = 4096;
/// Distinct user names a counted window remembers for its line.
pub const MAX_USERS_PER_SOURCE: usize = 5;
/// Where failures come from, for counting: an IPv4 address, or an IPv6 /64 (one host
/// usually holds a whole /64, so counting by address would let it write a line per address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Source {
    V4(Ipv4Addr),
    V6Net(Ipv6Addr),
}

impl Source {
    pub(super) fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(ip) => Source::V4(ip),
            IpAddr::V6(ip) => {
                let s = ip.segments();
                Source::V6Net(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(ip) => write!(f, "{ip}"),
            Source::V6Net(net) => write!(f, "{net}/64"),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct FailureWindows {
    by_source: HashMap<Source, FailureWindow>,
}

/// One source's failures since its last full line.
#[derive(Debug)]
struct FailureWindow {
    opened: Instant,
    since: OffsetDateTime,
    until: OffsetDateTime,
    repeated: u64,
    /// Capped.
    users: Vec<String>,
    users_truncated: bool,
    /// Capped.
    reason: String,
}

impl FailureWindows {
    /// Counts a failure; true when it opens a window and must be written in full. Lines for
    /// windows it closes (this source's, over; the oldest one, when full) go to `closed`.
    pub(super) fn count(
        &mut self,
        source: Source,
        now: Instant,
        wall: OffsetDateTime,
        user: &str,
        reason: &str,
        closed: &mut Vec<AuditEvent>,
    ) -> bool {
        if let Some(window) = self.by_source.get_mut(&source)
            && now.saturating_duration_since(window.opened) < FAILURE_WINDOW
        {
            window.repeat(wall, user, reason);
            return false;
        }
        if let Some(over) = self.by_source.remove(&source) {
            closed.extend(over.into_event(source));
        }
        if self.by_source.len() >= MAX_FAILURE_SOURCES {
            closed.extend(self.close_ended(now));
        }
        if self.by_source.len() >= MAX_FAILURE_SOURCES
            && let Some(oldest) = self
                .by_source
                .iter()
                .min_by_key(|(_, window)| window.opened)
                .map(|(source, _)| *source)
            && let Some(window) = self.by_source.remove(&oldest)
        {
            closed.extend(window.into_event(oldest));
        }
        self.by_source.insert(
            source,
            FailureWindow {
                opened: now,
                since: wall,
                until: wall,
                repeated: 0,
                users: Vec::new(),
                users_truncated: false,
                reason: String::new(),
            },
        );
        true
    }

    /// Removes the windows that are over, returning the lines of those that counted anything.
    pub(super) fn close_ended(&mut self, now: Instant) -> Vec<AuditEvent> {
        let ended: Vec<Source> = self
            .by_source
            .iter()
            .filter(|(_, window)| now.saturating_duration_since(window.opened) >= FAILURE_WINDOW)
            .map(|(source, _)| *source)
            .collect();
        ended
            .into_iter()
            .filter_map(|source| {
                let window = self.by_source.remove(&source)?;
                window.into_event(source)
            })
            .collect()
    }

    /// Removes every window, returning the lines of those that counted anything (the log is
    /// closing: counts still open are written rather than lost).
    pub(super) fn close_all(&mut self) -> Vec<AuditEvent> {
        std::mem::take(&mut self.by_source)
            .into_iter()
            .filter_map(|(source, window)| window.into_event(source))
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_source.len()
    }
}

impl FailureWindow {
    fn repeat(&mut self, wall: OffsetDateTime, user: &str, reason: &str) {
        self.repeated += 1;
        self.until = wall;
        self.reason = capped(reason);
        let user = capped(user);
        if !self.users.contains(&user) {
            if self.users.len() < MAX_USERS_PER_SOURCE {
                self.users.push(user);
            } else {
                self.users_truncated = true;
            }
        }
    }

    /// The line for this window, if it counted any failure.
    fn into_event(self, source: Source) -> Option<AuditEvent> {
        (self.repeated > 0).then(|| AuditEvent::AuthFailuresRepeated {
            user: self.users.first().cloned().unwrap_or_default(),
            client: source.to_string(),
            reason: self.reason,
            repeated: self.repeated,
            users: self.users,
            users_truncated: self.users_truncated,
            since: self.since,
            until: self.until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: OffsetDateTime = time::macros::datetime!(2026-11-24 10:00 UTC);

    fn source(text: &str) -> Source {
        Source::of(text.parse().unwrap())
    }

    #[test]
    fn sources_ignore_ports_and_ipv6_host_bits() {
        assert_eq!(source("203.0.113.9"), source("::ffff:203.0.113.9"));
        assert_eq!(source("2001:db8:1:2::1"), source("2001:db8:1:2:ffff::7"));
        assert_ne!(source("2001:db8:1:2::1"), source("2001:db8:1:3::1"));
        assert_eq!(source("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(source("203.0.113.9").to_string(), "203.0.113.9");
    }

    #[test]
    fn a_window_counts_repeats_and_closes_on_the_next_failure_after_it() {
        let mut windows = FailureWindows::default();
        let (t0, src) = (Instant::now(), source("203.0.113.9"));
        let mut closed = Vec::new();
        assert!(windows.count(src, t0, WALL, "root", "r0", &mut closed));
        for (i, user) in ["admin", "root", "admin", "oracle"].iter().enumerate() {
            let at = t0 + Duration::from_secs(i as u64 + 1);
            assert!(!windows.count(src, at, WALL, user, "r1", &mut closed));
        }
        assert!(closed.is_empty());
        assert!(windows.close_ended(t0 + Duration::from_secs(59)).is_empty());
        let later = t0 + FAILURE_WINDOW;
        assert!(windows.count(src, later, WALL, "x", "r2", &mut closed));
        match closed.as_slice() {
            [
                AuditEvent::AuthFailuresRepeated {
                    user,
                    client,
                    reason,
                    repeated: 4,
                    users,
                    users_truncated: false,
                    ..
                },
            ] => {
                assert_eq!(user, "admin");
                assert_eq!(client, "203.0.113.9");
                assert_eq!(reason, "r1");
                assert_eq!(users, &["admin", "root", "oracle"]);
            }
            other => panic!("{other:?}"),
        }
        // A window with no repeats closes without a line.
        assert!(windows.close_all().is_empty());
    }

    #[test]
    fn user_names_are_capped_and_few() {
        let mut windows = FailureWindows::default();
        let (t0, src) = (Instant::now(), source("198.51.100.1"));
        let mut closed = Vec::new();
        windows.count(src, t0, WALL, "first", "r", &mut closed);
        for i in 0..50 {
            let user = format!("{i}{}", "u".repeat(30_000));
            windows.count(src, t0, WALL, &user, "r", &mut closed);
        }
        let closed = windows.close_all();
        let [
            AuditEvent::AuthFailuresRepeated {
                users,
                users_truncated,
                repeated,
                ..
            },
        ] = closed.as_slice()
        else {
            panic!("one line expected: {closed:?}");
        };
        assert_eq!(*repeated, 50);
        assert!(*users_truncated);
        assert_eq!(users.len(), MAX_USERS_PER_SOURCE);
        assert!(users.iter().all(|u| u.len() < 200 && u.contains("sha256:")));
    }

    #[test]
    fn the_map_is_bounded_and_evicting_writes_the_oldest_count() {
        let mut windows = FailureWindows::default();
        let t0 = Instant::now();
        let mut closed = Vec::new();
        for i in 0..=MAX_FAILURE_SOURCES {
            let ip = Ipv4Addr::from(0x0a00_0000 + i as u32);
            let src = Source::V4(ip);
            let at = t0 + Duration::from_millis(i as u64);
            assert!(windows.count(src, at, WALL, "u", "r", &mut closed));
            assert!(!windows.count(src, at, WALL, "u", "r", &mut closed));
            assert!(windows.len() <= MAX_FAILURE_SOURCES);
        }
        match closed.as_slice() {
            [
                AuditEvent::AuthFailuresRepeated {
                    client,
                    repeated: 1,
                    ..
                },
            ] => {
                assert_eq!(client, "10.0.0.0", "the oldest source is evicted")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(windows.close_all().len(), MAX_FAILURE_SOURCES);
    }
}

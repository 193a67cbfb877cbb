//! The authorization rule, applied to a user's grants for one target whose status the database
//! has already judged against its own clock.

use super::{Decision, Denial, Grant, GrantStatus};

/// Picks the decision for `login` (`None`: the chosen grant's default login).
///
/// An active grant listing the login wins (the one expiring last when several do). Otherwise an
/// active grant for other logins says which logins are allowed. Otherwise the most useful
/// explanation: an upcoming grant (the earliest), a revocation (the latest), an expiry (the
/// latest), or no grant at all.
pub(super) fn decide(grants: Vec<(Grant, GrantStatus)>, login: Option<&str>) -> Decision {
    let mut allowed_logins: Vec<String> = Vec::new();
    let mut best_allow: Option<(Grant, String)> = None;
    let mut pending: Option<Grant> = None;
    let mut revoked: Option<Grant> = None;
    let mut expired: Option<Grant> = None;

    for (grant, status) in grants {
        match status {
            GrantStatus::Active => {
                let chosen = match login {
                    Some(login) => grant.logins.iter().find(|l| *l == login).cloned(),
                    None => grant.logins.first().cloned(),
                };
                match chosen {
                    Some(chosen) => {
                        if best_allow
                            .as_ref()
                            .is_none_or(|(best, _)| grant.expires_at > best.expires_at)
                        {
                            best_allow = Some((grant, chosen));
                        }
                    }
                    None => {
                        for l in &grant.logins {
                            if !allowed_logins.contains(l) {
                                allowed_logins.push(l.clone());
                            }
                        }
                    }
                }
            }
            GrantStatus::Pending => {
                if pending
                    .as_ref()
                    .is_none_or(|p| grant.starts_at < p.starts_at)
                {
                    pending = Some(grant);
                }
            }
            GrantStatus::Revoked => {
                if revoked
                    .as_ref()
                    .is_none_or(|r| grant.revoked_at > r.revoked_at)
                {
                    revoked = Some(grant);
                }
            }
            GrantStatus::Expired => {
                if expired
                    .as_ref()
                    .is_none_or(|e| grant.expires_at > e.expires_at)
                {
                    expired = Some(grant);
                }
            }
        }
    }

    if let Some((grant, login)) = best_allow {
        return Decision::Allow { grant, login };
    }
    let denial = if !allowed_logins.is_empty() {
        Denial::LoginNotAllowed {
            login: login.unwrap_or_default().to_string(),
            allowed: allowed_logins,
        }
    } else if let Some(grant) = pending {
        Denial::NotYetStarted {
            starts_at: grant.starts_at,
        }
    } else if let Some(revoked_at) = revoked.and_then(|g| g.revoked_at) {
        Denial::Revoked { revoked_at }
    } else if let Some(grant) = expired {
        Denial::Expired {
            expired_at: grant.expires_at,
        }
    } else {
        Denial::NoGrant
    };
    Decision::Deny(denial)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;

    fn grant(id: i64, logins: &[&str], starts: OffsetDateTime, expires: OffsetDateTime) -> Grant {
        Grant {
            id,
            user: "alice".into(),
            target: "db-1".into(),
            logins: logins.iter().map(|l| l.to_string()).collect(),
            starts_at: starts,
            expires_at: expires,
            approved_by: "carol".into(),
            reason: "test".into(),
            created_at: starts,
            revoked_at: None,
            revoked_by: None,
            commands: Vec::new(),
            pty: true,
            origin: super::super::GrantOrigin::Admin,
            request: None,
            review_required: false,
            reviewed: None,
        }
    }

    const T0: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-11-24 11:00 UTC);
    const T2: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);
    const T3: OffsetDateTime = datetime!(2026-11-24 13:00 UTC);

    #[test]
    fn allow_prefers_the_grant_expiring_last_among_those_listing_the_login() {
        let grants = vec![
            (grant(1, &["app"], T0, T2), GrantStatus::Active),
            (grant(2, &["app", "root"], T0, T3), GrantStatus::Active),
            (grant(3, &["root"], T0, T1), GrantStatus::Active),
        ];
        match decide(grants.clone(), Some("app")) {
            Decision::Allow { grant, login } => assert_eq!((grant.id, login.as_str()), (2, "app")),
            other => panic!("{other:?}"),
        }
        match decide(grants, None) {
            Decision::Allow { grant, login } => assert_eq!((grant.id, login.as_str()), (2, "app")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn active_grant_for_other_logins_beats_every_other_denial() {
        let mut revoked = grant(3, &["root"], T0, T1);
        revoked.revoked_at = Some(T0);
        let grants = vec![
            (grant(1, &["app"], T0, T2), GrantStatus::Active),
            (grant(2, &["deploy", "app"], T0, T2), GrantStatus::Active),
            (revoked, GrantStatus::Revoked),
            (grant(4, &["root"], T2, T3), GrantStatus::Pending),
        ];
        assert_eq!(
            decide(grants, Some("root")),
            Decision::Deny(Denial::LoginNotAllowed {
                login: "root".into(),
                allowed: vec!["app".into(), "deploy".into()],
            })
        );
    }

    #[test]
    fn denials_prefer_pending_then_revoked_then_expired() {
        let mut revoked_early = grant(1, &["app"], T0, T3);
        revoked_early.revoked_at = Some(T0);
        let mut revoked_late = grant(2, &["app"], T0, T3);
        revoked_late.revoked_at = Some(T1);
        let expired = (grant(3, &["app"], T0, T1), GrantStatus::Expired);
        let expired_later = (grant(4, &["app"], T0, T2), GrantStatus::Expired);
        let pending = (
            grant(5, &["app"], T3, T3 + time::Duration::HOUR),
            GrantStatus::Pending,
        );
        let pending_sooner = (grant(6, &["app"], T2, T3), GrantStatus::Pending);
        let revoked = [
            (revoked_early, GrantStatus::Revoked),
            (revoked_late, GrantStatus::Revoked),
        ];

        let all: Vec<_> = revoked
            .iter()
            .cloned()
            .chain([
                expired.clone(),
                expired_later.clone(),
                pending,
                pending_sooner,
            ])
            .collect();
        assert_eq!(
            decide(all, Some("app")),
            Decision::Deny(Denial::NotYetStarted { starts_at: T2 })
        );
        let no_pending: Vec<_> = revoked
            .iter()
            .cloned()
            .chain([expired.clone(), expired_later.clone()])
            .collect();
        assert_eq!(
            decide(no_pending, None),
            Decision::Deny(Denial::Revoked { revoked_at: T1 })
        );
        assert_eq!(
            decide(vec![expired, expired_later], None),
            Decision::Deny(Denial::Expired { expired_at: T2 })
        );
        assert_eq!(decide(Vec::new(), None), Decision::Deny(Denial::NoGrant));
    }
}

//! The text people read about requests and grants. Everything another person typed (a
//! reason, a comment) has its control characters escaped before it reaches a terminal.

use std::time::Duration;

use time::OffsetDateTime;

use crate::access::policy::{approvers, span};
use crate::config::Config;
use crate::db::{
    AccessRequest, ApprovalOutcome, Filed, Grant, GrantStatus, RequestKind, RequestState,
    human_time,
};
use crate::text::escape_controls;

/// Longest reason shown in a listing, in characters.
const REASON_CHARS: usize = 60;

/// What filing a request, an extension or break glass did.
pub fn filed(config: &Config, filed: &Filed) -> String {
    let request = &filed.request;
    let what = match request.kind {
        RequestKind::Extend => format!(
            "{} more on grant {} ({})",
            span(request.duration),
            request.grant.unwrap_or_default(),
            request.target
        ),
        _ => format!(
            "{} as {} for {}",
            request.target,
            request.logins.join(","),
            span(request.duration)
        ),
    };
    match (request.kind, request.state, &filed.grant) {
        (RequestKind::BreakGlass, _, Some(grant)) => format!(
            "BREAK GLASS: access to {} as {} is live until {} (grant {}, request {}).\n\
             This is logged and announced, and an approver of policy {} will review it.\n\
             connect with: ssh -t bastion {}",
            grant.target,
            grant.logins.join(","),
            human_time(grant.expires_at),
            grant.id,
            request.id,
            request.policy,
            grant.target
        ),
        (RequestKind::Extend, RequestState::Approved, Some(grant)) => format!(
            "extension {} approved at once by rule {}: grant {} on {} now ends at {}{}; live sessions go on",
            request.id,
            request.decided_by.as_deref().unwrap_or("auto_approve"),
            grant.id,
            grant.target,
            human_time(grant.expires_at),
            filed
                .previous_expires_at
                .map(|at| format!(" (was {})", human_time(at)))
                .unwrap_or_default()
        ),
        (_, RequestState::Approved, Some(grant)) => format!(
            "request {} approved at once by rule {}: {}\nconnect with: ssh -t bastion {}",
            request.id,
            request.decided_by.as_deref().unwrap_or("auto_approve"),
            live(grant),
            grant.target
        ),
        (_, RequestState::Expired, _) => format!(
            "extension {} changed nothing: {}",
            request.id,
            request
                .decision_note
                .as_deref()
                .unwrap_or("the grant had ended")
        ),
        _ => {
            let who = config
                .policy(&request.policy)
                .map(|policy| approvers(config, policy, &request.user).join(", "))
                .unwrap_or_default();
            let approvers_written = config
                .policy(&request.policy)
                .map(|p| p.approvers_text())
                .unwrap_or_default();
            format!(
                "request {} filed: {what} (policy {})\n\
                 it needs {} of: {who} ({approvers_written})\n\
                 undecided, it expires at {}; the clock starts at approval\n\
                 see it with: ssh bastion grants; withdraw it with: ssh bastion cancel {}",
                request.id,
                request.policy,
                approvals_phrase(request.approvals_needed),
                human_time(request.expires_at),
                request.id
            )
        }
    }
}

/// What one approval did.
pub fn approval(outcome: &ApprovalOutcome) -> String {
    match outcome {
        ApprovalOutcome::Recorded(request) => format!(
            "approved {} ({} of {} approvals); it needs {} more",
            request.id,
            request.approvals.len(),
            request.approvals_needed,
            (request.approvals_needed as usize).saturating_sub(request.approvals.len())
        ),
        ApprovalOutcome::Granted { request, grant } => format!(
            "approved {}: {} has {}",
            request.id,
            grant.user,
            live(grant)
        ),
        ApprovalOutcome::Extended {
            request,
            grant,
            previous_expires_at,
        } => format!(
            "approved {}: grant {} of {} on {} now ends at {} (was {}); live sessions go on",
            request.id,
            grant.id,
            grant.user,
            grant.target,
            human_time(grant.expires_at),
            human_time(*previous_expires_at)
        ),
        ApprovalOutcome::GrantEnded(request) => format!(
            "approved {}, but grant {} had already ended: nothing changed",
            request.id,
            request.grant.unwrap_or_default()
        ),
        // Refusals are answered before an outcome is shown.
        ApprovalOutcome::NotFound
        | ApprovalOutcome::NotPending(_)
        | ApprovalOutcome::AlreadyApproved(_) => "nothing changed".to_string(),
    }
}

/// How a request being waited for was decided.
pub fn decision(request: &AccessRequest, grant: Option<&Grant>, now: OffsetDateTime) -> String {
    let by = request
        .approvals
        .iter()
        .map(|a| a.approver.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match request.state {
        RequestState::Approved => match (request.kind, grant) {
            (RequestKind::Extend, Some(grant)) => format!(
                "{} approved by {by}: grant {} now ends at {}",
                request.id,
                grant.id,
                human_time(grant.expires_at)
            ),
            (_, Some(grant)) => format!("{} approved by {by}: {}", request.id, live(grant)),
            _ => format!("{} approved by {by}", request.id),
        },
        RequestState::Denied => format!(
            "{} denied by {}: {}",
            request.id,
            escape_controls(request.decided_by.as_deref().unwrap_or("an approver")),
            escape_controls(
                request
                    .decision_note
                    .as_deref()
                    .unwrap_or("no reason given")
            )
        ),
        RequestState::Cancelled => format!("{} was cancelled", request.id),
        RequestState::Expired | RequestState::Pending => format!(
            "{} expired undecided at {}{}",
            request.id,
            human_time(request.expires_at.min(now)),
            request
                .decision_note
                .as_deref()
                .map(|note| format!(": {note}"))
                .unwrap_or_default()
        ),
    }
}

/// `access to db-1 as app is live until ... (grant 12)`, or when it starts later.
fn live(grant: &Grant) -> String {
    if grant.starts_at > grant.created_at {
        format!(
            "access to {} as {} from {} until {} (grant {})",
            grant.target,
            grant.logins.join(","),
            human_time(grant.starts_at),
            human_time(grant.expires_at),
            grant.id
        )
    } else {
        format!(
            "access to {} as {} is live until {} (grant {})",
            grant.target,
            grant.logins.join(","),
            human_time(grant.expires_at),
            grant.id
        )
    }
}

/// The pending requests an approver may decide.
pub fn requests(requests: &[AccessRequest], approver: &str, now: OffsetDateTime) -> String {
    if requests.is_empty() {
        return "no pending requests you may decide".to_string();
    }
    let mut lines = vec![format!(
        "{:<10} {:<12} {:<14} {:<10} {:<9} {:<6} {:<9} REASON",
        "ID", "REQUESTER", "TARGET", "LOGIN", "DURATION", "AGE", "APPROVALS"
    )];
    for r in requests {
        let target = match r.kind {
            RequestKind::Extend => format!("{} +grant {}", r.target, r.grant.unwrap_or_default()),
            _ => r.target.clone(),
        };
        let mine = if r.approvals.iter().any(|a| a.approver == approver) {
            " (you)"
        } else {
            ""
        };
        lines.push(format!(
            "{:<10} {:<12} {:<14} {:<10} {:<9} {:<6} {:<9} {}",
            r.id,
            r.user,
            target,
            r.logins.join(","),
            span(r.duration),
            short(now - r.created_at),
            format!("{}/{}{mine}", r.approvals.len(), r.approvals_needed),
            reason(&r.reason)
        ));
    }
    lines.push(
        "decide with: ssh bastion approve ID [--comment TEXT] | ssh bastion deny ID --reason TEXT"
            .into(),
    );
    lines.join("\n")
}

/// A user's active and upcoming grants with the time left, and their pending requests.
pub fn access_of(
    user: &str,
    grants: &[Grant],
    requests: &[AccessRequest],
    now: OffsetDateTime,
) -> String {
    let mut lines = Vec::new();
    let mine: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.user == user)
        .filter(|g| matches!(g.status_at(now), GrantStatus::Active | GrantStatus::Pending))
        .collect();
    if mine.is_empty() {
        lines.push("your grants: none active".to_string());
    } else {
        lines.push("your grants:".to_string());
        lines.push(format!(
            "  {:<6} {:<14} {:<12} {:<8} {:<10} UNTIL",
            "GRANT", "TARGET", "LOGINS", "STATUS", "TIME LEFT"
        ));
        for g in mine {
            let status = g.status_at(now);
            let left = match status {
                GrantStatus::Pending => format!("starts in {}", short(g.starts_at - now)),
                _ => short(g.expires_at - now),
            };
            let scope = if g.commands.is_empty() {
                ""
            } else {
                " (commands only)"
            };
            let review = if g.review_required {
                " [break glass]"
            } else {
                ""
            };
            lines.push(format!(
                "  {:<6} {:<14} {:<12} {:<8} {:<10} {}{scope}{review}",
                g.id,
                g.target,
                g.logins.join(","),
                status,
                left,
                human_time(g.expires_at)
            ));
        }
    }
    if !requests.is_empty() {
        lines.push("your pending requests:".to_string());
        for r in requests {
            let what = match r.kind {
                RequestKind::Extend => format!(
                    "+{} on grant {}",
                    span(r.duration),
                    r.grant.unwrap_or_default()
                ),
                _ => format!("{} for {}", r.logins.join(","), span(r.duration)),
            };
            lines.push(format!(
                "  {:<10} {:<14} {:<20} approvals {}/{}  expires in {}",
                r.id,
                r.target,
                what,
                r.approvals.len(),
                r.approvals_needed,
                short(r.expires_at - now)
            ));
        }
    }
    lines.join("\n")
}

/// Break-glass grants waiting for a review.
pub fn reviews(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "no break-glass grants wait for a review".to_string();
    }
    let mut lines = vec![format!(
        "{:<6} {:<12} {:<14} {:<10} {:<24} REASON",
        "GRANT", "USER", "TARGET", "REQUEST", "TAKEN"
    )];
    for g in grants {
        lines.push(format!(
            "{:<6} {:<12} {:<14} {:<10} {:<24} {}",
            g.id,
            g.user,
            g.target,
            g.request.as_deref().unwrap_or("-"),
            human_time(g.created_at),
            reason(&g.reason)
        ));
    }
    lines.push("acknowledge with: bastion review GRANT --comment TEXT".into());
    lines.join("\n")
}

fn approvals_phrase(n: u32) -> String {
    if n == 1 {
        "1 approval".to_string()
    } else {
        format!("{n} distinct approvals")
    }
}

/// A reason on one line, escaped and shortened for a listing.
fn reason(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown: String = one_line.chars().take(REASON_CHARS).collect();
    if one_line.chars().count() > REASON_CHARS {
        shown.push_str("...");
    }
    escape_controls(&shown)
}

/// `42m`, `1h 5m`, `30s`: a time difference for a column, never negative.
fn short(delta: time::Duration) -> String {
    let secs = u64::try_from(delta.whole_seconds()).unwrap_or(0);
    let rounded = if secs >= 3600 { secs / 60 * 60 } else { secs };
    span(Duration::from_secs(rounded))
}

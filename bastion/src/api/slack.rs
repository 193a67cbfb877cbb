//! `POST /v1/slack/interactions`: the Approve and Deny buttons of the request messages.
//!
//! Slack signs each delivery: `X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:" + timestamp +
//! ":" + body)`. A call is acted on only if the signature checks (compared in constant time),
//! its timestamp is within 5 minutes of now, and its signature was not seen before (a replay
//! is refused, across nodes: the guard is in the database). The clicking Slack user must be
//! a configured user (`[[users]] slack_id`); the decision then goes through the same service
//! and policy as every other face (no self-approval, N of M). Whatever the outcome, the
//! answer is a Slack message: the replaced request message after a decision, an ephemeral
//! explanation otherwise, also posted to the interaction's `response_url`.

use std::time::Duration;

use aws_lc_rs::hmac;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, too_large};
use super::{ApiState, Peer};
use crate::access::{Decider, Refused};
use crate::db::{ApprovalOutcome, is_request_id};
use crate::notify::{APPROVE_ACTION, DENY_ACTION};

/// Slack's own limit on the age of a request.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// How long posting to a `response_url` may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// Checks the signature of a delivery made at `timestamp` (epoch seconds) against `secret`.
pub fn verify_signature(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(tag) = signature
        .strip_prefix("v0=")
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, &signed_text(timestamp, body), &tag).is_ok()
}

/// What Slack signs: `v0:TIMESTAMP:BODY`.
fn signed_text(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(body.len() + timestamp.len() + 4);
    message.extend_from_slice(b"v0:");
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b':');
    message.extend_from_slice(body);
    message
}

/// The `X-Slack-Signature` Slack would send for `body` at `timestamp` (what a test or a
/// proxy signing on Slack's behalf needs).
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signed_text(timestamp, body));
    format!("v0={}", hex::encode(tag.as_ref()))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn interactions(
    State(state): State<ApiState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = raw.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    let config = state.access.config().clone();
    let unauthorized = |code: &'static str, message: &str| {
        if let Some(axum::Extension(Peer(peer))) = peer {
            state
                .access
                .audit()
                .auth_failure(peer, "(slack)", &format!("slack: {code}"));
        }
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    };
    let Some(secret) = config.slack.signing_secret.as_deref() else {
        return Err(unauthorized(
            "slack_not_configured",
            "Slack interactions are off: set [slack] signing_secret or BASTION_SLACK_SIGNING_SECRET",
        ));
    };
    let (Some(timestamp), Some(signature)) = (
        header(&headers, "x-slack-request-timestamp"),
        header(&headers, "x-slack-signature"),
    ) else {
        return Err(unauthorized(
            "bad_signature",
            "missing X-Slack-Request-Timestamp or X-Slack-Signature",
        ));
    };
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| unauthorized("bad_signature", "X-Slack-Request-Timestamp is not a number"))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if now.abs_diff(sent) > MAX_SKEW.as_secs() {
        return Err(unauthorized(
            "stale_timestamp",
            "the request's timestamp is more than 5 minutes from now",
        ));
    }
    if !verify_signature(secret, timestamp, &body, signature) {
        return Err(unauthorized(
            "bad_signature",
            "the Slack signature does not match",
        ));
    }
    // Hex is case-insensitive: the guard keys on one spelling of the tag, so a replay with
    // the signature's letters in another case is still a replay.
    if !state
        .access
        .db()
        .first_slack_delivery(&signature.to_ascii_lowercase(), MAX_SKEW)
        .await?
    {
        return Err(unauthorized(
            "replayed",
            "this Slack delivery was already handled",
        ));
    }
    let payload = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| ApiError::bad_request("the body has no payload field"))?;
    let interaction: Interaction = serde_json::from_str(&payload)
        .map_err(|e| ApiError::bad_request(format!("invalid Slack payload: {e}")))?;
    let reply = decide(&state, &interaction).await?;
    if let Some(url) = interaction
        .response_url
        .clone()
        .filter(|url| is_slack_response_url(url))
    {
        let http = state.http.clone();
        let message = reply.clone();
        tokio::spawn(async move {
            let sent = http
                .post(&url)
                .timeout(RESPONSE_TIMEOUT)
                .json(&message)
                .send()
                .await;
            if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(error = %e.without_url(), "cannot update the Slack message");
            }
        });
    }
    Ok(Json(reply))
}

/// Where a reply may go: Slack's own hooks over https, or a loopback address (a local relay,
/// the tests). Nothing else, even in a signed payload: the bastion must not be made to post
/// to arbitrary hosts.
fn is_slack_response_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match (parsed.scheme(), parsed.host()) {
        ("https", Some(url::Host::Domain(host))) => {
            host == "hooks.slack.com" || host.ends_with(".slack.com")
        }
        ("http" | "https", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http" | "https", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

/// An ephemeral Slack message: only the clicking user sees it; the request message stays.
fn ephemeral(text: &str) -> Value {
    json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": crate::notify::slack::escape(text),
    })
}

async fn decide(state: &ApiState, interaction: &Interaction) -> Result<Value, ApiError> {
    if interaction.kind != "block_actions" {
        return Ok(ephemeral(
            "bastion only handles its Approve and Deny buttons",
        ));
    }
    let config = state.access.config();
    let Some(user) = config
        .users
        .iter()
        .find(|u| u.slack_id.as_deref() == Some(interaction.user.id.as_str()))
    else {
        return Ok(ephemeral(&format!(
            "Your Slack account ({}) is not linked to a bastion user, so nothing was changed: an administrator adds slack_id = \"{}\" to your [[users]] entry.",
            crate::text::capped(&interaction.user.id),
            crate::text::capped(&interaction.user.id)
        )));
    };
    let Some(action) = interaction.actions.first() else {
        return Ok(ephemeral("no action in this interaction"));
    };
    let Some(id) = action.value.as_deref().filter(|id| is_request_id(id)) else {
        return Ok(ephemeral("this button names no request"));
    };
    let client = format!("slack user {}", crate::text::capped(&interaction.user.id));
    let by = Decider {
        user: &user.name,
        client: &client,
    };
    let outcome = match action.action_id.as_str() {
        APPROVE_ACTION => state
            .access
            .approve(id, by, None)
            .await?
            .map(|outcome| approved_line(&outcome, &user.name)),
        DENY_ACTION => state
            .access
            .deny(id, by, "denied in Slack")
            .await?
            .map(|_| format!("Denied by {} in Slack.", user.name)),
        other => {
            return Ok(ephemeral(&format!(
                "unknown action {:?}",
                crate::text::capped(other)
            )));
        }
    };
    Ok(match outcome {
        Ok(line) => crate::notify::slack::slack_outcome(id, &line),
        Err(Refused { rule, .. }) => ephemeral(&format!("Nothing was changed: {rule}")),
    })
}

fn approved_line(outcome: &ApprovalOutcome, by: &str) -> String {
    match outcome {
        ApprovalOutcome::Recorded(r) => format!(
            "Approved by {by} in Slack: {} of {} approvals so far.",
            r.approvals.len(),
            r.approvals_needed
        ),
        ApprovalOutcome::Granted { grant, .. } => format!(
            "Approved by {by} in Slack: access granted until {} (grant {}).",
            crate::db::human_time(grant.expires_at),
            grant.id
        ),
        ApprovalOutcome::Extended { grant, .. } => format!(
            "Approved by {by} in Slack: grant {} now ends at {}.",
            grant.id,
            crate::db::human_time(grant.expires_at)
        ),
        ApprovalOutcome::GrantEnded(_) => {
            "The grant this extension was for has ended; nothing to extend.".to_string()
        }
        ApprovalOutcome::NotFound
        | ApprovalOutcome::NotPending(_)
        | ApprovalOutcome::AlreadyApproved(_) => "Nothing was changed.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
    #[test]
    fn replies_go_only_to_slack_or_loopback() {
        assert!(is_slack_response_url(
            "https://hooks.slack.com/actions/T1/2/x"
        ));
        assert!(is_slack_response_url("http://127.0.0.1:9000/x"));
        assert!(!is_slack_response_url(
            "http://hooks.slack.com/actions/T1/2/x"
        ));
        assert!(!is_slack_response_url("https://evil.example/x"));
        assert!(!is_slack_response_url(
            "https://hooks.slack.com.evil.example/x"
        ));
        assert!(!is_slack_response_url("http://169.254.169.254/latest"));
        assert!(!is_slack_response_url("file:///etc/passwd"));
    }

    #[test]
    fn slack_example_signature_verifies() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let timestamp = "1531420618";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(verify_signature(secret, timestamp, body, signature));
        assert!(!verify_signature(secret, "1531420619", body, signature));
        assert!(!verify_signature("other", timestamp, body, signature));
        assert!(!verify_signature(secret, timestamp, body, "v0=zz"));
        assert!(!verify_signature(secret, timestamp, body, "v1=a2114d"));
        assert_eq!(super::signature(secret, timestamp, body), signature);
    }
}

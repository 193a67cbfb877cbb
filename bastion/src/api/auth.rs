//! Who is calling: `Authorization: Bearer TOKEN` → [`Caller`], the configured user the token
//! acts as. No token, an unknown, revoked or expired one, or a token whose user is no longer
//! configured: 401. What the caller may see and do beyond their own things is decided here
//! too ([`Caller::oversees`]): API admins everything, approvers what their policies cover.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::{ApiState, Peer};
use crate::access::policy;
use crate::config::Config;
use crate::db::TokenRefusal;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The bastion user the token acts as.
    pub user: String,
    /// For the audit trail: `api token NAME (ID) from IP:PORT`.
    pub client: String,
    /// Listed in `[api] admins`.
    pub admin: bool,
}

impl Caller {
    /// Whether the caller may see and act on `user`'s grant or session on `target`: their own,
    /// any as an API admin, or as an approver of the policy that covers `user` on `target`.
    pub fn oversees(&self, config: &Config, user: &str, target: &str) -> bool {
        if self.admin || self.user == user {
            return true;
        }
        policy::applicable(config, user, target)
            .is_ok_and(|p| policy::decider(config, &p.name, &self.user, user).is_ok())
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let refused = |reason: &str, message: String| {
            // Counted per source like SSH's failed logins: a flood is one line a minute.
            if let Some(peer) = parts.extensions.get::<Peer>() {
                state
                    .access
                    .audit()
                    .auth_failure(peer.0, "(api token)", reason);
            }
            ApiError::unauthorized(message)
        };
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(refused(
                "api: no token",
                "missing bearer token: send Authorization: Bearer TOKEN (an administrator creates one with bastion token create)".into(),
            ));
        };
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty());
        let Some(secret) = secret else {
            return Err(refused(
                "api: malformed Authorization header",
                "malformed Authorization header: expected Bearer TOKEN".into(),
            ));
        };
        let token = match state.access.db().authenticate_token(secret).await? {
            Ok(token) => token,
            Err(TokenRefusal::Unknown) => {
                return Err(refused("api: unknown token", "unknown token".into()));
            }
            Err(TokenRefusal::Revoked) => {
                return Err(refused(
                    "api: revoked token",
                    "this token has been revoked".into(),
                ));
            }
            Err(TokenRefusal::Expired) => {
                return Err(refused(
                    "api: expired token",
                    "this token has expired".into(),
                ));
            }
        };
        let config = state.access.config();
        if config.user(&token.user).is_none() {
            return Err(refused(
                "api: token of a removed user",
                format!(
                    "this token acts as {}, who is no longer a configured user",
                    token.user
                ),
            ));
        }
        let peer = parts
            .extensions
            .get::<Peer>()
            .map_or_else(|| "unknown".to_string(), |peer| peer.0.to_string());
        let admin = config
            .api
            .as_ref()
            .is_some_and(|api| config.is_among(&token.user, &api.admins));
        Ok(Caller {
            client: format!("api token {} ({}) from {peer}", token.name, token.id),
            user: token.user,
            admin,
        })
    }
}

//! Carries out one verb for one user through the grant service and says what happened, as
//! the text and exit status both faces show; `--wait` is finished by [`wait`].

use std::future::Future;
use std::time::Duration;

use super::show;
use super::{DENIED_STATUS, EXPIRED_STATUS, UNAVAILABLE_STATUS, Verb};
use crate::access::{Access, AccessError, Ask, BreakGlassAsk, Decider, ExtendAsk, Refused};
use crate::db::RequestState;

/// What to show the user: `text` (stdout when `status` is 0, else stderr) and the exit
/// status; with `wait`, the face then waits for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub status: u32,
    pub wait: Option<WaitFor>,
}

/// A pending request the user asked to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    pub request: String,
}

impl Reply {
    fn ok(text: String) -> Reply {
        Reply {
            text,
            status: 0,
            wait: None,
        }
    }

    fn refused(refused: Refused) -> Reply {
        Reply {
            text: format!("bastion: {}", crate::text::escape_controls(&refused.rule)),
            status: DENIED_STATUS,
            wait: None,
        }
    }

    fn failed(error: &AccessError) -> Reply {
        tracing::error!(error = %error, "access workflow failed");
        Reply {
            text: "bastion: cannot reach the grant store right now; try again shortly".to_string(),
            status: UNAVAILABLE_STATUS,
            wait: None,
        }
    }
}

/// Runs `verb` as `user` (a configured user) connected from `client`; `admin` is true for
/// the administrator's command, whose reviews need no approver rights.
pub async fn run(access: &Access, user: &str, client: &str, verb: Verb, admin: bool) -> Reply {
    match run_inner(access, user, client, verb, admin).await {
        Ok(reply) => reply,
        Err(error) => Reply::failed(&error),
    }
}

async fn run_inner(
    access: &Access,
    user: &str,
    client: &str,
    verb: Verb,
    admin: bool,
) -> Result<Reply, AccessError> {
    let by = Decider { user, client };
    let config = access.config().clone();
    Ok(match verb {
        Verb::Request(args) => {
            let ask = Ask {
                user: user.to_string(),
                target: args.target,
                login: args.login,
                duration: args.duration,
                starts_in: args.starts_in.unwrap_or_default(),
                reason: args.reason,
                client: client.to_string(),
            };
            match access.request_access(ask).await? {
                Err(refused) => Reply::refused(refused),
                Ok(filed) => {
                    let pending = filed.grant.is_none();
                    Reply {
                        text: show::filed(&config, &filed),
                        status: 0,
                        wait: (pending && args.wait).then(|| WaitFor {
                            request: filed.request.id.clone(),
                        }),
                    }
                }
            }
        }
        Verb::Extend(args) => {
            let ask = ExtendAsk {
                user: user.to_string(),
                what: args.what,
                duration: args.duration,
                reason: args.reason,
                client: client.to_string(),
            };
            match access.request_extension(ask).await? {
                Err(refused) => Reply::refused(refused),
                Ok(filed) => {
                    let pending = filed.request.state == RequestState::Pending;
                    let status = if filed.request.state == RequestState::Expired {
                        EXPIRED_STATUS
                    } else {
                        0
                    };
                    Reply {
                        text: show::filed(&config, &filed),
                        status,
                        wait: (pending && args.wait).then(|| WaitFor {
                            request: filed.request.id.clone(),
                        }),
                    }
                }
            }
        }
        Verb::BreakGlass(args) => {
            let ask = BreakGlassAsk {
                user: user.to_string(),
                target: args.target,
                login: args.login,
                duration: args.duration,
                reason: args.reason,
                client: client.to_string(),
            };
            match access.break_glass(ask).await? {
                Err(refused) => Reply::refused(refused),
                Ok(filed) => Reply::ok(show::filed(&config, &filed)),
            }
        }
        Verb::Requests => {
            let requests = access.decidable_by(user).await?;
            let now = access.db().now().await?;
            Reply::ok(show::requests(&requests, user, now))
        }
        Verb::Approve(args) => match access
            .approve(&args.id, by, args.comment.as_deref())
            .await?
        {
            Err(refused) => Reply::refused(refused),
            Ok(outcome) => Reply::ok(show::approval(&outcome)),
        },
        Verb::Deny(args) => match access.deny(&args.id, by, &args.reason).await? {
            Err(refused) => Reply::refused(refused),
            Ok(request) => Reply::ok(format!(
                "denied {} ({} on {}); the requester sees your reason",
                request.id, request.user, request.target
            )),
        },
        Verb::Cancel(args) => match access.cancel(&args.id, by).await? {
            Err(refused) => Reply::refused(refused),
            Ok(request) => Reply::ok(format!("cancelled {} ({})", request.id, request.target)),
        },
        Verb::Grants => {
            let grants = access.db().list_grants(false).await?;
            let requests = access.db().pending_requests(Some(user)).await?;
            let now = access.db().now().await?;
            Reply::ok(show::access_of(user, &grants, &requests, now))
        }
        Verb::Reviews => {
            let grants = access.reviews().await?;
            Reply::ok(show::reviews(&grants))
        }
        Verb::Review(args) => match access
            .review(args.grant, user, &args.comment, admin)
            .await?
        {
            Err(refused) => Reply::refused(refused),
            Ok(grant) => Reply::ok(format!(
                "reviewed break-glass grant {} ({} on {})",
                grant.id, grant.user, grant.target
            )),
        },
    })
}

/// Waits until request `wait.request` is decided, polling every `poll`, or until `stop`
/// finishes (the client went away, the daemon stops): then says so and exits 75.
pub async fn wait(
    access: &Access,
    wait: &WaitFor,
    poll: Duration,
    stop: impl Future<Output = ()>,
) -> Reply {
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => {
                return Reply {
                    text: format!("bastion: stopped waiting; {} is still pending (see: ssh bastion grants)", wait.request),
                    status: EXPIRED_STATUS,
                    wait: None,
                };
            }
            _ = ticker.tick() => {}
        }
        let (request, now) = match (
            access.db().request(&wait.request).await,
            access.db().now().await,
        ) {
            (Ok(Some(request)), Ok(now)) => (request, now),
            (Ok(None), _) => {
                return Reply::refused(Refused::new(format!("request {} is gone", wait.request)));
            }
            (Err(e), _) | (_, Err(e)) => {
                // A database hiccup while waiting: keep waiting, the decision is not lost.
                tracing::warn!(error = %e, request = %wait.request, "cannot read a request being waited for");
                continue;
            }
        };
        let grant = match request.grant {
            Some(id) if request.state == RequestState::Approved => {
                access.db().grant(id).await.ok().flatten()
            }
            _ => None,
        };
        let status = match request.state {
            RequestState::Pending if now < request.expires_at => continue,
            RequestState::Approved => 0,
            RequestState::Denied | RequestState::Cancelled => DENIED_STATUS,
            RequestState::Pending | RequestState::Expired => EXPIRED_STATUS,
        };
        return Reply {
            text: show::decision(&request, grant.as_ref(), now),
            status,
            wait: None,
        };
    }
}

//! What `ssh bastion` says without a target: who you are, your access, how to use it and how
//! to ask for more.

use super::request::Builtin;
use crate::daemon::Daemon;

/// The text answering a bastion command for `user`.
pub async fn answer(daemon: &Daemon, user: &str, builtin: Builtin) -> String {
    let access = access_text(daemon, user).await;
    match builtin {
        Builtin::Help => format!(
            "bastion: you are {user}. This host gives no shell of its own.\n\
             {access}\n\
             usage:\n  \
             ssh -t bastion TARGET                          interactive shell on TARGET\n  \
             ssh -t bastion LOGIN@TARGET                    ... as one of the logins your grant allows\n  \
             ssh bastion TARGET -- COMMAND                  run one command\n  \
             ssh bastion grants                             your access and pending requests, with the time left\n  \
             ssh bastion request TARGET --for 1h --reason TEXT [--login L] [--starts-in 10m] [--wait]\n  \
             ssh bastion extend GRANT|SESSION --for 30m --reason TEXT [--wait]\n  \
             ssh bastion cancel REQUEST                     withdraw your pending request\n  \
             ssh bastion requests                           requests you may decide\n  \
             ssh bastion approve REQUEST [--comment TEXT]\n  \
             ssh bastion deny REQUEST --reason TEXT\n  \
             ssh bastion break-glass TARGET --reason TEXT [--login L]   emergency access, reviewed later\n  \
             ssh bastion VERB --help                        details of one verb\n\
             to get access: {}",
            daemon.config.access_hint_for(user, "TARGET")
        ),
    }
}

async fn access_text(daemon: &Daemon, user: &str) -> String {
    let reply = crate::verbs::run(
        &daemon.access,
        user,
        "menu",
        crate::verbs::Verb::Grants,
        false,
    )
    .await;
    if reply.status == 0 {
        reply.text
    } else {
        "your grants: unavailable right now".to_string()
    }
}

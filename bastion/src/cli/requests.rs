//! `bastion request|requests|approve|deny|cancel|extend|break-glass --as USER` and
//! `bastion reviews|review`: the access workflow from the bastion's own shell. The verbs are
//! the ones `ssh bastion` answers (`crate::verbs`), run by the same code against the same
//! service; `--as` names the configured user on whose behalf the administrator acts.

use super::{CliError, invoking_user, open_access, print};
use crate::config::Config;
use crate::verbs::{self, Reply, Verb};

/// Runs `verb` as `user` (`None`: the administrator, for reviews) and prints its reply.
pub(super) async fn run(config: &Config, user: Option<String>, verb: Verb) -> Result<(), CliError> {
    let admin = user.is_none();
    let user = match user {
        Some(user) => {
            if config.user(&user).is_none() {
                return Err(CliError::Rejected(format!(
                    "--as {:?} is not a [[users]] entry in {}",
                    crate::text::escape_controls(&user),
                    config.source
                )));
            }
            user
        }
        None => invoking_user(),
    };
    // Where the step came from, for the audit trail: this machine's shell, and who ran it.
    let client = format!("cli:{}", invoking_user());
    let access = open_access(config).await?;
    let reply = verbs::run(&access, &user, &client, verb, admin).await;
    let reply = match &reply.wait {
        None => reply,
        Some(wait) => {
            print(&format!("{}\n", reply.text))?;
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            verbs::wait(&access, wait, config.grant_poll, stop).await
        }
    };
    access.db().close().await;
    finish(reply)
}

/// Prints a successful reply on stdout; anything else becomes the command's error and exit
/// status.
fn finish(reply: Reply) -> Result<(), CliError> {
    if reply.status == 0 {
        return print(&format!("{}\n", reply.text));
    }
    let text = reply
        .text
        .strip_prefix("bastion: ")
        .unwrap_or(&reply.text)
        .to_string();
    Err(CliError::Verb {
        text,
        status: u8::try_from(reply.status).unwrap_or(1),
    })
}

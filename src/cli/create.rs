//! `swarm create`: asked Docker Hub's hosted discovery for a cluster token. The service was shut
//! down in 2019, so the command only checks that it got no arguments; running it explains why it
//! cannot work.
use super::{CliError, Command, Context};

/// One-line description.
pub(crate) const SUMMARY: &str =
    "Create a cluster token (the hosted service was shut down in 2019)";

/// `swarm create` takes nothing; stray words are kept only to refuse them with a clear message.
#[derive(Debug, clap::Args)]
#[command(
    about = SUMMARY,
    long_about = "Docker Hub's token discovery service no longer exists. Use nodes://, file:// or \
                  a key-value store (consul, etcd, zk) for discovery instead."
)]
pub(crate) struct CreateArgs {
    #[arg(hide = true)]
    extra: Vec<String>,
}

pub(crate) fn build(context: &Context<'_>, args: CreateArgs) -> Result<Command, CliError> {
    if !args.extra.is_empty() {
        return Err(CliError::Invalid(format!(
            "the `create` command takes no arguments. See '{} create --help'.",
            context.program
        )));
    }
    Ok(Command::Create)
}

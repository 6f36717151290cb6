//! `swarm create`: asked Docker Hub's hosted discovery for a cluster token. The service was shut
//! down in 2019, so the command only checks that it got no arguments; running it explains why it
//! cannot work.
use super::flags::Matches;
use super::{CliError, Command, CommandDef, Context};

pub(crate) const COMMAND: CommandDef = CommandDef {
    name: "create",
    alias: "c",
    summary: "Create a cluster token (the hosted service was shut down in 2019)",
    description: "Docker Hub's token discovery service no longer exists. Use nodes://, file:// or \
                  a key-value store (consul, etcd, zk) for discovery instead.",
    takes_discovery: false,
    flags: &[],
    notes: "",
    build,
};

fn build(context: &mut Context<'_>, matches: &Matches<'_>) -> Result<Command, CliError> {
    if !matches.positionals.is_empty() {
        return Err(CliError::Invalid(format!(
            "the `create` command takes no arguments. See '{} create --help'.",
            context.program
        )));
    }
    Ok(Command::Create)
}

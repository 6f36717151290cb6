//! `swarm list`: prints the addresses a discovery backend reports once. This module only reads and
//! checks the flags, in the original's order.
use super::duration;
use super::flags::{Arity, FlagDef, Matches};
use super::{
    check_discovery, discovery_argument, discovery_opts, CliError, Command, CommandDef, Context,
    ListOptions, DISCOVERY_OPT_FLAG,
};

pub(crate) const COMMAND: CommandDef = CommandDef {
    name: "list",
    alias: "l",
    summary: "List the engine addresses a discovery backend holds",
    description: "Prints the first list of addresses <discovery> reports, one host:port per line.",
    takes_discovery: true,
    flags: FLAGS,
    notes: "",
    build,
};

const FLAGS: &[FlagDef] = &[
    FlagDef {
        name: "timeout",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("10s"),
        env: None,
        help: "How long to wait for the list (also the backend's poll period)",
    },
    DISCOVERY_OPT_FLAG,
];

fn build(context: &mut Context<'_>, matches: &Matches<'_>) -> Result<Command, CliError> {
    let invalid = |message: String| CliError::Invalid(message);
    let discovery = discovery_argument(matches, context.env);
    if discovery.is_empty() {
        return Err(invalid(format!(
            "discovery required to list a cluster. See '{} list --help'.",
            context.program
        )));
    }
    let timeout = duration::parse(matches.value("timeout"))
        .map_err(|error| invalid(format!("invalid --timeout: {error}")))?
        .to_std()
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| invalid("--timeout should be a positive number".to_string()))?;
    let discovery_opts = discovery_opts(matches)?;
    check_discovery(&discovery)?;
    Ok(Command::List(ListOptions {
        discovery,
        timeout,
        discovery_opts,
    }))
}

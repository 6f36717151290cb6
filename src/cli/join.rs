//! `swarm join`: registers a Docker engine's address in the discovery backend every heartbeat.
//! This module only reads and checks the flags, in the original's order.
use super::duration;
use super::flags::{Arity, FlagDef, Matches};
use super::{
    bad_advertise, check_discovery, discovery_argument, discovery_opts, heartbeat, is_host_port,
    CliError, Command, CommandDef, Context, JoinOptions, DISCOVERY_OPT_FLAG,
};

pub(crate) const COMMAND: CommandDef = CommandDef {
    name: "join",
    alias: "j",
    summary: "Register a Docker engine with a cluster's discovery backend",
    description: "Writes --advertise to <discovery> every --heartbeat, with a lifetime of --ttl, \
                  so that managers watching it find the engine. Only key-value backends \
                  (consul, etcd, zk) and token:// accept registrations.",
    takes_discovery: true,
    flags: FLAGS,
    notes: "",
    build,
};

const FLAGS: &[FlagDef] = &[
    FlagDef {
        name: "advertise",
        aliases: &["addr"],
        arity: Arity::Single,
        value_name: "<host:port>",
        default: None,
        env: Some("SWARM_ADVERTISE"),
        help: "Address of the Docker engine to register; managers must reach it there (required)",
    },
    FlagDef {
        name: "heartbeat",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("60s"),
        env: None,
        help: "Registration period; at least 1s",
    },
    FlagDef {
        name: "ttl",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("180s"),
        env: None,
        help: "Lifetime of each registration; more than --heartbeat",
    },
    FlagDef {
        name: "delay",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("0s"),
        env: None,
        help: "Wait a random time below this before the first registration, so that many \
               engines started together do not register at once",
    },
    DISCOVERY_OPT_FLAG,
];

fn invalid(message: impl Into<String>) -> CliError {
    CliError::Invalid(message.into())
}

fn build(context: &mut Context<'_>, matches: &Matches<'_>) -> Result<Command, CliError> {
    let discovery = discovery_argument(matches, context.env);
    if discovery.is_empty() {
        return Err(invalid(format!(
            "discovery required to join a cluster. See '{} join --help'.",
            context.program
        )));
    }
    let advertise = matches.value_or_env("advertise", context.env);
    if advertise.is_empty() {
        return Err(invalid("missing mandatory --advertise flag"));
    }
    if !is_host_port(&advertise) {
        return Err(bad_advertise());
    }
    let delay = duration::parse(matches.value("delay"))
        .map_err(|error| invalid(format!("invalid --delay: {error}")))?
        .to_std()
        .ok_or_else(|| invalid("--delay should not be a negative number"))?;
    let heartbeat = heartbeat(matches)?;
    let ttl = duration::parse(matches.value("ttl"))
        .map_err(|error| invalid(format!("invalid --ttl: {error}")))?;
    let ttl = ttl
        .to_std()
        .filter(|ttl| *ttl > heartbeat)
        .ok_or_else(|| invalid("--ttl must be strictly superior to the heartbeat value"))?;
    let discovery_opts = discovery_opts(matches)?;
    check_discovery(&discovery)?;
    Ok(Command::Join(JoinOptions {
        discovery,
        advertise,
        heartbeat,
        ttl,
        delay,
        discovery_opts,
    }))
}

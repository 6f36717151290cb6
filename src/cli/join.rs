//! `swarm join`: registers a Docker engine's address in the discovery backend every heartbeat.
//! This module only declares and checks the flags, in the original's order.
use super::duration::{self, GoDuration};
use super::{
    bad_advertise, check_discovery, discovery_argument, discovery_opts, heartbeat, is_host_port,
    CliError, Command, Context, JoinOptions,
};

/// One-line description.
pub(crate) const SUMMARY: &str = "Register a Docker engine with a cluster's discovery backend";

/// `swarm join [OPTIONS] <discovery>`.
#[derive(Debug, clap::Args)]
#[command(
    about = SUMMARY,
    long_about = "Writes --advertise to <discovery> every --heartbeat, with a lifetime of --ttl, \
                  so that managers watching it find the engine. Only key-value backends \
                  (consul, etcd, zk) and token:// accept registrations."
)]
pub(crate) struct JoinArgs {
    #[arg(value_name = "discovery")]
    discovery: Vec<String>,
    /// Address of the Docker engine to register; managers must reach it there (required)
    #[arg(
        long,
        visible_alias = "addr",
        value_name = "host:port",
        env = "SWARM_ADVERTISE",
        default_value = ""
    )]
    advertise: String,
    /// Registration period; at least 1s
    #[arg(long, value_name = "duration", default_value = "60s", value_parser = duration::parse)]
    heartbeat: GoDuration,
    /// Lifetime of each registration; more than --heartbeat
    #[arg(long, value_name = "duration", default_value = "180s", value_parser = duration::parse)]
    ttl: GoDuration,
    /// Wait a random time below this before the first registration, so that many engines
    /// started together do not register at once
    #[arg(long, value_name = "duration", default_value = "0s", value_parser = duration::parse)]
    delay: GoDuration,
    #[arg(long, value_name = "key=value", help = super::DISCOVERY_OPT_HELP)]
    discovery_opt: Vec<String>,
}

fn invalid(message: impl Into<String>) -> CliError {
    CliError::Invalid(message.into())
}

pub(crate) fn build(context: &Context<'_>, args: JoinArgs) -> Result<Command, CliError> {
    let discovery = discovery_argument(&args.discovery, context.env);
    if discovery.is_empty() {
        return Err(invalid(format!(
            "discovery required to join a cluster. See '{} join --help'.",
            context.program
        )));
    }
    let advertise = args.advertise;
    if advertise.is_empty() {
        return Err(invalid("missing mandatory --advertise flag"));
    }
    if !is_host_port(&advertise) {
        return Err(bad_advertise());
    }
    let delay = args
        .delay
        .to_std()
        .ok_or_else(|| invalid("--delay should not be a negative number"))?;
    let heartbeat = heartbeat(args.heartbeat)?;
    let ttl = args
        .ttl
        .to_std()
        .filter(|ttl| *ttl > heartbeat)
        .ok_or_else(|| invalid("--ttl must be strictly superior to the heartbeat value"))?;
    let discovery_opts = discovery_opts(&args.discovery_opt)?;
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

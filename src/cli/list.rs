//! `swarm list`: prints the addresses a discovery backend reports once. This module only declares
//! and checks the flags, in the original's order.
use super::duration::{self, GoDuration};
use super::{
    check_discovery, discovery_argument, discovery_opts, CliError, Command, Context, ListOptions,
};

/// One-line description.
pub(crate) const SUMMARY: &str = "List the engine addresses a discovery backend holds";

/// `swarm list [OPTIONS] <discovery>`.
#[derive(Debug, clap::Args)]
#[command(
    about = SUMMARY,
    long_about = "Prints the first list of addresses <discovery> reports, one host:port per line."
)]
pub(crate) struct ListArgs {
    #[arg(value_name = "discovery")]
    discovery: Vec<String>,
    /// How long to wait for the list (also the backend's poll period)
    #[arg(long, value_name = "duration", default_value = "10s", value_parser = duration::parse)]
    timeout: GoDuration,
    #[arg(long, value_name = "key=value", help = super::DISCOVERY_OPT_HELP)]
    discovery_opt: Vec<String>,
}

pub(crate) fn build(context: &Context<'_>, args: ListArgs) -> Result<Command, CliError> {
    let discovery = discovery_argument(&args.discovery, context.env);
    if discovery.is_empty() {
        return Err(CliError::Invalid(format!(
            "discovery required to list a cluster. See '{} list --help'.",
            context.program
        )));
    }
    let timeout = args
        .timeout
        .to_std()
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| CliError::Invalid("--timeout should be a positive number".to_string()))?;
    let discovery_opts = discovery_opts(&args.discovery_opt)?;
    check_discovery(&discovery)?;
    Ok(Command::List(ListOptions {
        discovery,
        timeout,
        discovery_opts,
    }))
}

//! The program's own flags and its list of commands, declared for clap, and the adjustments that
//! make clap read flags the way the classic binary did: every boolean takes an optional
//! `=value` in Go's spellings, a repeated single-value flag keeps its last value, and help is
//! rendered by `help.rs` rather than clap. Also `swarm completion`.
use clap::{Arg, ArgAction, CommandFactory};

use super::create::CreateArgs;
use super::go_values::go_bool;
use super::join::JoinArgs;
use super::list::ListArgs;
use super::manage::ManageArgs;

/// `swarm [OPTIONS] COMMAND [arg...]`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "swarm",
    about = "A Docker-native clustering system",
    disable_help_subcommand = true,
    disable_version_flag = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Option<Subcommand>,
}

/// Flags that go before the command.
#[derive(Debug, clap::Args)]
pub(crate) struct GlobalArgs {
    /// Log at debug level (unless --log-level is given) and serve the /debug routes
    #[arg(long, env = "DEBUG")]
    pub(crate) debug: bool,
    /// Log level: debug, info, warn, error, fatal or panic
    #[arg(short = 'l', long, value_name = "level", default_value = "info")]
    pub(crate) log_level: String,
    /// Log format: text, or json for one JSON object per line
    #[arg(long, value_name = "format", default_value = "text")]
    pub(crate) log_format: String,
    /// Report experimental features as enabled in /info and /version
    #[arg(long)]
    pub(crate) experimental: bool,
    /// Print the version and exit
    #[arg(short = 'v', long)]
    pub(crate) version: bool,
}

/// The commands, in help order.
#[derive(Debug, clap::Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "read once per process; boxing would only make matching on it clumsier"
)]
pub(crate) enum Subcommand {
    #[command(visible_alias = "c")]
    Create(CreateArgs),
    #[command(visible_alias = "l")]
    List(ListArgs),
    #[command(visible_alias = "m")]
    Manage(ManageArgs),
    #[command(visible_alias = "j")]
    Join(JoinArgs),
    /// Print the help of swarm or of one command
    #[command(alias = "h")]
    Help(HelpArgs),
    /// Print a completion script for bash, zsh or fish
    Completion(CompletionArgs),
}

/// `swarm help [COMMAND]`.
#[derive(Debug, clap::Args)]
pub(crate) struct HelpArgs {
    /// The command to describe (only the first one given counts)
    #[arg(value_name = "command")]
    pub(crate) topic: Vec<String>,
}

/// `swarm completion <shell>`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionArgs {
    /// The shell to complete for: bash, zsh or fish
    #[arg(value_name = "shell", value_enum)]
    pub(crate) shell: Shell,
}

/// The shells `swarm completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The whole command tree as the program reads it.
pub(crate) fn command() -> clap::Command {
    classic(Cli::command())
}

/// `command` with the environment variables dropped from every flag. Their values come in through
/// the caller's lookup instead (see `go_syntax::add_environment`), so that what clap read from the
/// process environment when the flags were declared never counts twice or behind the lookup's
/// back.
pub(crate) fn without_environment(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    let mut command = command.mut_args(|arg| arg.env(None::<&str>));
    for name in names {
        command = command.mut_subcommand(name, without_environment);
    }
    command
}

/// Applies the classic flag rules to `command` and its subcommands.
fn classic(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    let mut command = command
        .disable_help_flag(true)
        .args_override_self(true)
        .mut_args(go_switch);
    for name in names {
        command = command.mut_subcommand(name, classic);
    }
    command
}

/// [`classic`] for a command built by a test.
#[cfg(test)]
pub(crate) fn classic_for_tests(command: clap::Command) -> clap::Command {
    classic(command)
}

/// A boolean flag as Go's `flag` package read it: present means true, and a value is taken only
/// after `=` (`--tls=false`), so `--tls nodes://…` leaves the URL alone.
fn go_switch(arg: Arg) -> Arg {
    if !matches!(arg.get_action(), ArgAction::SetTrue) {
        return arg;
    }
    arg.action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value("false")
        .value_parser(go_bool)
}

/// Whether `arg` is a boolean switch (after [`go_switch`]).
pub(crate) fn is_switch(arg: &Arg) -> bool {
    arg.get_num_args()
        .is_some_and(|range| range.min_values() == 0)
}

/// The completion script for `shell`, completing `program`.
pub(crate) fn completion_script(shell: Shell, program: &str) -> String {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), program, &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

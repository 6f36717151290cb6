//! Go's flag syntax, which the classic `swarm` accepted, rewritten into the form clap reads:
//! `-name` and `--name` are the same flag (one dash is not a cluster of one-letter flags), values
//! come as `--name value` or `--name=value`, and booleans take a value only as `--name=false`.
//! Every flag comes out as `--long` or `--long=value`, positionals separately, so clap never has
//! to guess whether a word is a value. Unlike Go, positionals may appear anywhere among a
//! command's flags. Also feeds the environment variables flags declare into the same form.
use super::args::is_switch;
use super::go_values::{parse_bool, quote};
use super::CliError;

/// Where flag reading stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At the first positional argument (the command name, for the program's own flags).
    AtFirstPositional,
    /// Only at `--`; positionals are collected wherever they are.
    AtDoubleDash,
}

/// A command line in clap's form.
#[derive(Debug, Default)]
pub(crate) struct Normalised {
    /// `--long` or `--long=value`, in the order given.
    pub(crate) flags: Vec<String>,
    /// Non-flag arguments in order (with [`Stop::AtFirstPositional`]: everything from the first).
    pub(crate) positionals: Vec<String>,
    /// `-h`, `-help` or `--help` was met; reading stopped there, so help works even when later
    /// arguments are wrong.
    pub(crate) help: bool,
}

/// Rewrites `args` against the flags `command` declares. `hint` ends every error
/// (`See 'swarm manage --help'.`); the messages are Go's.
pub(crate) fn normalise(
    command: &clap::Command,
    args: &[String],
    stop: Stop,
    hint: &str,
) -> Result<Normalised, CliError> {
    let usage = |message: String| CliError::Usage(format!("{message}. {hint}"));
    let mut out = Normalised::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        if arg == "--" {
            out.positionals.extend(args[index..].iter().cloned());
            break;
        }
        if arg == "-" || !arg.starts_with('-') {
            out.positionals.push(arg.clone());
            if stop == Stop::AtFirstPositional {
                out.positionals.extend(args[index..].iter().cloned());
                break;
            }
            continue;
        }
        let body = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .unwrap_or(arg);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        // The flag as the user typed it, for messages.
        let typed = &arg[..arg.len() - body.len() + name.len()];
        if name == "h" || name == "help" {
            out.help = true;
            return Ok(out);
        }
        let Some(flag) = find(command, name) else {
            return Err(usage(format!("flag provided but not defined: {typed}")));
        };
        let long = flag.get_long().unwrap_or(name);
        let value = match inline_value {
            // Checked here rather than by clap, so that the message names the flag as typed.
            Some(value) if is_switch(flag) && parse_bool(value).is_none() => {
                return Err(usage(format!(
                    "invalid boolean value {} for {typed}: parse error",
                    quote(value)
                )));
            }
            Some(value) => Some(value.to_string()),
            None if is_switch(flag) => None,
            None => match args.get(index) {
                Some(next) => {
                    index += 1;
                    Some(next.clone())
                }
                None => return Err(usage(format!("flag needs an argument: {typed}"))),
            },
        };
        out.flags.push(match value {
            Some(value) => format!("--{long}={value}"),
            None => format!("--{long}"),
        });
    }
    Ok(out)
}

/// Appends, for every flag of `command` that declares an environment variable and is absent from
/// `flags`, the variable's value as `env` sees it. Empty values count as unset; a repeatable
/// flag's variable holds a comma-separated list (blank entries skipped); a boolean's variable is
/// ignored unless it is one of Go's spellings, as the original ignored `DEBUG=yes`.
pub(crate) fn add_environment(
    command: &clap::Command,
    flags: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) {
    for arg in command.get_arguments() {
        let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let flag = format!("--{long}");
        let given = flags
            .iter()
            .any(|given| given == &flag || given.starts_with(&format!("{flag}=")));
        let Some(value) = variable.to_str().and_then(env) else {
            continue;
        };
        if given || value.is_empty() {
            continue;
        }
        if is_switch(arg) {
            if let Some(value) = parse_bool(&value) {
                flags.push(format!("{flag}={value}"));
            }
        } else if matches!(arg.get_action(), clap::ArgAction::Append) {
            flags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(|entry| format!("{flag}={entry}")),
            );
        } else {
            flags.push(format!("{flag}={value}"));
        }
    }
}

/// The flag `name` answers to: its long name, one-letter name or an alias.
fn find<'c>(command: &'c clap::Command, name: &str) -> Option<&'c clap::Arg> {
    let mut chars = name.chars();
    let short = match (chars.next(), chars.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    };
    command.get_arguments().find(|arg| {
        !arg.is_positional()
            && (arg.get_long() == Some(name)
                || (short.is_some() && arg.get_short() == short)
                || arg
                    .get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name)))
    })
}

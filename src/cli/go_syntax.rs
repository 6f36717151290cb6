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

#[cfg(test)]
mod tests {
    use super::*;

    /// A command with one flag of each kind.
    fn command() -> clap::Command {
        let command = clap::Command::new("t")
            .arg(clap::Arg::new("strategy").long("strategy"))
            .arg(
                clap::Arg::new("host")
                    .short('H')
                    .long("host")
                    .action(clap::ArgAction::Append)
                    .env("T_HOSTS"),
            )
            .arg(
                clap::Arg::new("tls")
                    .long("tls")
                    .action(clap::ArgAction::SetTrue)
                    .env("T_TLS"),
            )
            .arg(
                clap::Arg::new("advertise")
                    .long("advertise")
                    .visible_alias("addr")
                    .env("T_ADV"),
            );
        super::super::args::classic_for_tests(command)
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Result<Normalised, String> {
        normalise(&command(), &args(list), Stop::AtDoubleDash, "See help.")
            .map_err(|error| error.to_string())
    }

    #[test]
    fn every_spelling_of_a_flag_comes_out_long_with_its_value_attached() {
        for form in [
            &["-strategy", "binpack"][..],
            &["--strategy", "binpack"],
            &["-strategy=binpack"],
            &["--strategy=binpack"],
        ] {
            assert_eq!(run(form).unwrap().flags, ["--strategy=binpack"], "{form:?}");
        }
        let out = run(&[
            "-H", "a", "--host=b", "--H", "c", "-host", "d", "-addr", "x:1",
        ])
        .unwrap();
        assert_eq!(
            out.flags,
            [
                "--host=a",
                "--host=b",
                "--host=c",
                "--host=d",
                "--advertise=x:1"
            ]
        );
        assert_eq!(run(&["--strategy", "-x"]).unwrap().flags, ["--strategy=-x"]);
    }

    #[test]
    fn switches_take_a_value_only_after_an_equals_sign() {
        let out = run(&["--tls", "nodes://a:1"]).unwrap();
        assert_eq!(out.flags, ["--tls"]);
        assert_eq!(out.positionals, ["nodes://a:1"]);
        assert_eq!(run(&["-tls=false"]).unwrap().flags, ["--tls=false"]);
        assert_eq!(
            run(&["-tls=maybe"]).unwrap_err(),
            "invalid boolean value \"maybe\" for -tls: parse error. See help."
        );
    }

    #[test]
    fn positionals_are_collected_anywhere_and_everything_after_a_double_dash() {
        let out = run(&["first", "--strategy", "random", "second", "--", "--tls"]).unwrap();
        assert_eq!(out.positionals, ["first", "second", "--tls"]);
        let out = normalise(
            &command(),
            &args(&["--tls", "manage", "--bogus"]),
            Stop::AtFirstPositional,
            "",
        )
        .unwrap();
        assert_eq!(out.positionals, ["manage", "--bogus"]);
    }

    #[test]
    fn syntax_errors_name_the_flag_as_typed() {
        assert_eq!(
            run(&["-bogus=1"]).unwrap_err(),
            "flag provided but not defined: -bogus. See help."
        );
        assert_eq!(
            run(&["--strategy"]).unwrap_err(),
            "flag needs an argument: --strategy. See help."
        );
        assert_eq!(
            run(&["---x"]).unwrap_err(),
            "bad flag syntax: ---x. See help."
        );
    }

    #[test]
    fn help_stops_reading_so_later_mistakes_do_not_matter() {
        assert!(run(&["--help", "--bogus"]).unwrap().help);
        assert!(run(&["x", "-help"]).unwrap().help);
        assert!(run(&["--bogus", "-h"]).is_err());
    }

    #[test]
    fn the_environment_fills_in_absent_flags_only() {
        let env = |name: &str| match name {
            "T_HOSTS" => Some(" a:1, ,b:2,".to_string()),
            "T_TLS" => Some("yes".to_string()),
            "T_ADV" => Some("e:1".to_string()),
            _ => None,
        };
        let mut flags = Vec::new();
        add_environment(&command(), &mut flags, &env);
        // A boolean variable that is not a Go boolean is ignored, not refused.
        assert_eq!(flags, ["--host=a:1", "--host=b:2", "--advertise=e:1"]);
        let mut flags = vec!["--host=c:3".to_string(), "--advertise=f:1".to_string()];
        add_environment(&command(), &mut flags, &env);
        assert_eq!(flags, ["--host=c:3", "--advertise=f:1"]);
        let mut flags = Vec::new();
        add_environment(&command(), &mut flags, &|_| Some(String::new()));
        assert!(flags.is_empty());
    }
}

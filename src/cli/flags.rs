//! Reads one command's flags the way Go's `flag` package did for the classic `swarm`: `-name` and
//! `--name` are the same flag, values come as `--name value` or `--name=value`, and booleans take a
//! value only as `--name=false` (so `--tls nodes://…` does not eat the discovery URL). Unlike Go,
//! positional arguments may appear anywhere among the flags. Knows flag definitions, not meanings.
use std::collections::HashMap;

use super::go_values::{parse_bool, quote};
use super::CliError;

/// How a flag takes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// A boolean: present means true; a value only with `=`.
    Switch,
    /// One value; the last occurrence wins.
    Single,
    /// Repeatable; every occurrence is kept, in order.
    Repeated,
}

/// One flag of a command, with what its help line shows.
#[derive(Debug)]
pub(crate) struct FlagDef {
    /// Canonical name, used as the key in [`Matches`] and shown with two dashes.
    pub(crate) name: &'static str,
    /// Other accepted names (`H` for `host`, `addr` for `advertise`).
    pub(crate) aliases: &'static [&'static str],
    /// How values are taken.
    pub(crate) arity: Arity,
    /// Placeholder for the value in help (`<duration>`); empty for switches.
    pub(crate) value_name: &'static str,
    /// Value used when the flag is absent (and shown in help).
    pub(crate) default: Option<&'static str>,
    /// Environment variable consulted when the flag is absent (shown in help).
    pub(crate) env: Option<&'static str>,
    /// One-line description.
    pub(crate) help: &'static str,
}

impl FlagDef {
    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Where flag parsing stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At the first positional argument (the command name, for global flags).
    AtFirstPositional,
    /// Only at `--`; positionals are collected wherever they are.
    AtDoubleDash,
}

/// The flags and positionals found on a command line.
#[derive(Debug)]
pub(crate) struct Matches<'d> {
    /// The definitions the arguments were read against (for defaults).
    defs: &'d [FlagDef],
    /// Values given on the command line, keyed by canonical name, in order.
    given: HashMap<&'static str, Vec<String>>,
    /// Non-flag arguments in order (with [`Stop::AtFirstPositional`]: everything from the first).
    pub(crate) positionals: Vec<String>,
    /// `-h`/`--help` was given.
    pub(crate) help: bool,
}

impl<'d> Matches<'d> {
    /// Whether the flag appeared on the command line.
    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// The last value given on the command line.
    pub(crate) fn last(&self, name: &str) -> Option<&str> {
        self.given
            .get(name)
            .and_then(|values| values.last())
            .map(String::as_str)
    }

    /// Every value given on the command line, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.given
            .get(name)
            .map(|values| values.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The last value given, else the flag's default, else the empty string.
    pub(crate) fn value(&self, name: &str) -> &str {
        self.last(name).unwrap_or_else(|| {
            self.defs
                .iter()
                .find(|def| def.name == name)
                .and_then(|def| def.default)
                .unwrap_or("")
        })
    }

    /// A switch's value (already checked while parsing); absent means false.
    pub(crate) fn switch(&self, name: &str) -> bool {
        self.last(name) == Some("true")
    }

    /// The value of a single-value flag: the command line, else its environment variable when set
    /// and non-empty, else the default.
    pub(crate) fn value_or_env(&self, name: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
        if let Some(value) = self.last(name) {
            return value.to_string();
        }
        let def = self.defs.iter().find(|def| def.name == name);
        if let Some(from_env) = def
            .and_then(|def| def.env)
            .and_then(env)
            .filter(|value| !value.is_empty())
        {
            return from_env;
        }
        def.and_then(|def| def.default).unwrap_or("").to_string()
    }
}

/// Reads `args` against `defs`. `hint` ends every error (`See 'swarm manage --help'.`). Parsing
/// stops early when `-h`/`--help` is met, so help works even if later arguments are wrong.
pub(crate) fn parse<'d>(
    defs: &'d [FlagDef],
    args: &[String],
    stop: Stop,
    hint: &str,
) -> Result<Matches<'d>, CliError> {
    let usage = |message: String| CliError::Usage(format!("{message}. {hint}"));
    let mut matches = Matches {
        defs,
        given: HashMap::new(),
        positionals: Vec::new(),
        help: false,
    };
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        if arg == "--" {
            matches.positionals.extend(args[index..].iter().cloned());
            break;
        }
        if arg == "-" || !arg.starts_with('-') {
            match stop {
                Stop::AtFirstPositional => {
                    matches
                        .positionals
                        .extend(args[index - 1..].iter().cloned());
                    break;
                }
                Stop::AtDoubleDash => {
                    matches.positionals.push(arg.clone());
                    continue;
                }
            }
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
            matches.help = true;
            return Ok(matches);
        }
        let Some(def) = defs.iter().find(|def| def.answers_to(name)) else {
            return Err(usage(format!("flag provided but not defined: {typed}")));
        };
        let value = match (def.arity, inline_value) {
            (Arity::Switch, None) => "true".to_string(),
            (Arity::Switch, Some(text)) => match parse_bool(text) {
                Some(value) => value.to_string(),
                None => {
                    return Err(usage(format!(
                        "invalid boolean value {} for {typed}: parse error",
                        quote(text)
                    )))
                }
            },
            (_, Some(text)) => text.to_string(),
            (_, None) => match args.get(index) {
                Some(next) => {
                    index += 1;
                    next.clone()
                }
                None => return Err(usage(format!("flag needs an argument: {typed}"))),
            },
        };
        matches.given.entry(def.name).or_default().push(value);
    }
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &[FlagDef] = &[
        FlagDef {
            name: "strategy",
            aliases: &[],
            arity: Arity::Single,
            value_name: "<name>",
            default: Some("spread"),
            env: None,
            help: "",
        },
        FlagDef {
            name: "host",
            aliases: &["H"],
            arity: Arity::Repeated,
            value_name: "<addr>",
            default: None,
            env: Some("HOSTS"),
            help: "",
        },
        FlagDef {
            name: "tls",
            aliases: &[],
            arity: Arity::Switch,
            value_name: "",
            default: None,
            env: None,
            help: "",
        },
        FlagDef {
            name: "advertise",
            aliases: &["addr"],
            arity: Arity::Single,
            value_name: "<addr>",
            default: None,
            env: Some("ADV"),
            help: "",
        },
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parse_ok(list: &[&str]) -> Matches<'static> {
        parse(DEFS, &args(list), Stop::AtDoubleDash, "See help.").unwrap()
    }

    fn parse_err(list: &[&str]) -> String {
        parse(DEFS, &args(list), Stop::AtDoubleDash, "See help.")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn one_or_two_dashes_and_both_value_forms_work() {
        for form in [
            &["-strategy", "binpack"][..],
            &["--strategy", "binpack"],
            &["-strategy=binpack"],
            &["--strategy=binpack"],
        ] {
            assert_eq!(parse_ok(form).value("strategy"), "binpack", "{form:?}");
        }
        assert_eq!(parse_ok(&[]).value("strategy"), "spread");
        assert_eq!(parse_ok(&["--strategy="]).value("strategy"), "");
    }

    #[test]
    fn aliases_and_repeats_collect_in_order() {
        let m = parse_ok(&["-H", "a", "--host=b", "--H", "c", "-host", "d"]);
        assert_eq!(m.all("host"), ["a", "b", "c", "d"]);
        assert!(m.is_set("host"));
        assert!(!m.is_set("strategy"));
        assert_eq!(parse_ok(&["--addr", "x:1"]).last("advertise"), Some("x:1"));
    }

    #[test]
    fn switches_never_consume_the_next_argument() {
        let m = parse_ok(&["--tls", "nodes://a:1"]);
        assert!(m.switch("tls"));
        assert_eq!(m.positionals, ["nodes://a:1"]);
        assert!(!parse_ok(&["--tls=false"]).switch("tls"));
        assert!(parse_ok(&["-tls=1"]).switch("tls"));
        assert!(!parse_ok(&[]).switch("tls"));
        assert_eq!(
            parse_err(&["--tls=maybe"]),
            "invalid boolean value \"maybe\" for --tls: parse error. See help."
        );
    }

    #[test]
    fn positionals_may_come_before_between_and_after_flags() {
        let m = parse_ok(&["first", "--strategy", "random", "second", "--tls", "third"]);
        assert_eq!(m.positionals, ["first", "second", "third"]);
        assert_eq!(m.value("strategy"), "random");
        let m = parse_ok(&["--tls", "--", "--strategy", "x"]);
        assert_eq!(m.positionals, ["--strategy", "x"]);
        assert_eq!(parse_ok(&["-"]).positionals, ["-"]);
    }

    #[test]
    fn values_may_start_with_a_dash() {
        assert_eq!(parse_ok(&["--strategy", "-x"]).value("strategy"), "-x");
    }

    #[test]
    fn stopping_at_the_first_positional_keeps_the_rest_verbatim() {
        let m = parse(
            DEFS,
            &args(&["--tls", "manage", "--bogus", "x"]),
            Stop::AtFirstPositional,
            "",
        )
        .unwrap();
        assert!(m.switch("tls"));
        assert_eq!(m.positionals, ["manage", "--bogus", "x"]);
    }

    #[test]
    fn syntax_errors_name_the_flag_and_end_with_the_hint() {
        assert_eq!(
            parse_err(&["--bogus"]),
            "flag provided but not defined: --bogus. See help."
        );
        assert_eq!(
            parse_err(&["-bogus=1"]),
            "flag provided but not defined: -bogus. See help."
        );
        assert_eq!(
            parse_err(&["--strategy"]),
            "flag needs an argument: --strategy. See help."
        );
        assert_eq!(parse_err(&["---x"]), "bad flag syntax: ---x. See help.");
        assert_eq!(parse_err(&["-=x"]), "bad flag syntax: -=x. See help.");
    }

    #[test]
    fn help_wins_over_later_mistakes_but_not_earlier_ones() {
        assert!(parse_ok(&["--help", "--bogus"]).help);
        assert!(parse_ok(&["-h"]).help);
        assert!(parse_ok(&["-help"]).help);
        assert!(parse_ok(&["x", "--help"]).help);
        assert!(parse(DEFS, &args(&["--bogus", "-h"]), Stop::AtDoubleDash, "").is_err());
    }

    #[test]
    fn environment_fills_in_for_an_absent_flag() {
        let env = |name: &str| match name {
            "ADV" => Some("env:1".to_string()),
            _ => None,
        };
        assert_eq!(parse_ok(&[]).value_or_env("advertise", &env), "env:1");
        assert_eq!(
            parse_ok(&["--advertise", "flag:1"]).value_or_env("advertise", &env),
            "flag:1"
        );
        let empty_env = |_: &str| Some(String::new());
        assert_eq!(parse_ok(&[]).value_or_env("advertise", &empty_env), "");
        assert_eq!(parse_ok(&[]).value_or_env("strategy", &empty_env), "spread");
    }
}

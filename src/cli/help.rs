//! Help text for `swarm --help` and for each command (`swarm manage --help`, `swarm help join`).
//! The original panicked on per-command help; this prints usage, arguments, every flag with its
//! default and environment variable, and command-specific notes. Rendering only.
use super::flags::{Arity, FlagDef};
use super::{CommandDef, COMMANDS, GLOBAL_FLAGS};

/// The forms a discovery argument can take, as listed under "Arguments".
const DISCOVERY_FORMS: &[&str] = &[
    "token://<token>",
    "consul://<ip>/<path>",
    "etcd://<ip1>,<ip2>/<path>",
    "file://path/to/file",
    "zk://<ip1>,<ip2>/<path>",
    "[nodes://]<ip1>,<ip2>",
];

/// Labels wider than this put their description on the next line.
const LABEL_WIDTH: usize = 42;

/// Descriptions are wrapped to fit this many columns (but keep at least 40 for the text).
const LINE_WIDTH: usize = 100;

/// `swarm --help`: usage, global options and the command list.
pub(crate) fn app_help(program: &str, version: &str) -> String {
    let mut out = format!(
        "Usage: {program} [OPTIONS] COMMAND [arg...]\n\n\
         A Docker-native clustering system\n\n\
         Version: {version}\n\n\
         Options:\n"
    );
    render_flags(&mut out, GLOBAL_FLAGS, "Print the help and exit");
    out.push_str("\nCommands:\n");
    let mut rows: Vec<(String, &str)> = COMMANDS
        .iter()
        .map(|command| {
            (
                format!("{}, {}", command.name, command.alias),
                command.summary,
            )
        })
        .collect();
    rows.push((
        "help".to_string(),
        "Print the help of swarm or of one command",
    ));
    for (label, summary) in rows {
        out.push_str(&format!("  {label:<12}{summary}\n"));
    }
    out.push_str(&format!(
        "\nRun '{program} COMMAND --help' for more information on a command.\n"
    ));
    out
}

/// `swarm <command> --help`.
pub(crate) fn command_help(program: &str, command: &CommandDef) -> String {
    let argument = if command.takes_discovery {
        " <discovery>"
    } else {
        ""
    };
    let options = if command.flags.is_empty() {
        ""
    } else {
        " [OPTIONS]"
    };
    let mut out = format!(
        "Usage: {program} {}{options}{argument}\n\n{}\n",
        command.name, command.summary
    );
    if !command.description.is_empty() {
        out.push('\n');
        let words: Vec<&str> = command.description.split_whitespace().collect();
        for line in wrap(&words, LINE_WIDTH) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if command.takes_discovery {
        out.push_str(
            "\nArguments:\n  <discovery>  Discovery URL, one of the forms below. When not exactly \
             one argument\n               is given, the value of $SWARM_DISCOVERY is used.\n",
        );
        for form in DISCOVERY_FORMS {
            out.push_str(&format!("                 {form}\n"));
        }
    }
    out.push_str("\nOptions:\n");
    render_flags(&mut out, command.flags, "Print this help and exit");
    if !command.notes.is_empty() {
        out.push('\n');
        out.push_str(command.notes);
    }
    if !command.flags.is_empty() {
        out.push_str(
            "\nFlags take one or two dashes (-name or --name) and values as \"--name value\"\n\
             or \"--name=value\"; boolean flags take a value only as \"--name=false\".\n",
        );
    }
    out
}

fn render_flags(out: &mut String, flags: &[FlagDef], help_text: &str) {
    let mut rows: Vec<(String, Vec<String>)> = flags
        .iter()
        .map(|def| (label(def), describe(def)))
        .collect();
    rows.push((
        "-h, --help".to_string(),
        help_text.split_whitespace().map(str::to_string).collect(),
    ));
    let width = rows
        .iter()
        .map(|(label, _)| label.len())
        .filter(|len| *len <= LABEL_WIDTH)
        .max()
        .unwrap_or(0);
    let indent = " ".repeat(2 + width + 2);
    let text_width = LINE_WIDTH.saturating_sub(indent.len()).max(40);
    for (label, words) in rows {
        let lines = wrap(&words, text_width);
        if label.len() > width {
            out.push_str(&format!("  {label}\n"));
        } else {
            out.push_str(&format!("  {label:<width$}  "));
        }
        for (index, line) in lines.iter().enumerate() {
            if index > 0 || label.len() > width {
                out.push_str(&indent);
            }
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// Greedy word wrap; a word longer than the width gets a line of its own. A no-break space inside
/// a word holds it together and is printed as a plain space.
fn wrap<S: AsRef<str>>(words: &[S], width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in words {
        let word = word.as_ref().replace('\u{a0}', " ");
        let word = word.as_str();
        let line = lines.last_mut().expect("lines is never empty");
        if line.is_empty() {
            line.push_str(word);
        } else if line.len() + 1 + word.len() <= width {
            line.push(' ');
            line.push_str(word);
        } else {
            lines.push(word.to_string());
        }
    }
    lines
}

/// `-H, --host <addr>`: one-letter names first with one dash, long names with two.
fn label(def: &FlagDef) -> String {
    let mut names: Vec<String> = def
        .aliases
        .iter()
        .filter(|alias| alias.len() == 1)
        .map(|alias| format!("-{alias}"))
        .collect();
    names.push(format!("--{}", def.name));
    names.extend(
        def.aliases
            .iter()
            .filter(|alias| alias.len() > 1)
            .map(|alias| format!("--{alias}")),
    );
    let mut label = names.join(", ");
    if def.arity != Arity::Switch {
        label.push(' ');
        label.push_str(def.value_name);
    }
    label
}

/// The words of a flag's description, ready for [`wrap`]: its help, then its default and its
/// environment variable, each kept from being split right after its opening word.
fn describe(def: &FlagDef) -> Vec<String> {
    let mut words: Vec<String> = def.help.split_whitespace().map(str::to_string).collect();
    if def.arity == Arity::Repeated {
        if let Some(last) = words.last_mut() {
            last.push(';');
        }
        words.push("repeatable".to_string());
    }
    if let Some(default) = def.default.filter(|default| !default.is_empty()) {
        let mut values = default.split_whitespace();
        let first = values.next().unwrap_or_default();
        let mut rest: Vec<String> = values.map(str::to_string).collect();
        match rest.last_mut() {
            Some(last) => {
                last.push(')');
                words.push(format!("(default:\u{a0}{first}"));
            }
            None => words.push(format!("(default:\u{a0}{first})")),
        }
        words.append(&mut rest);
    }
    if let Some(env) = def.env {
        words.push(format!("[env:\u{a0}{env}]"));
    }
    words
}

//! Help text for `swarm --help` and for each command (`swarm manage --help`, `swarm help join`),
//! in the classic layout, rendered from clap's metadata: usage, arguments, every flag with its
//! default and environment variable, and command-specific notes. Rendering only.
use clap::{Arg, ArgAction};

use super::args::is_switch;

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
pub(crate) fn app_help(app: &clap::Command, program: &str, version: &str) -> String {
    let mut out = format!(
        "Usage: {program} [OPTIONS] COMMAND [arg...]\n\n\
         {}\n\n\
         Version: {version}\n\n\
         Options:\n",
        text(app.get_about())
    );
    render_flags(&mut out, app, "Print the help and exit");
    out.push_str("\nCommands:\n");
    for command in app.get_subcommands() {
        let mut label = command.get_name().to_string();
        for alias in command.get_visible_aliases() {
            label.push_str(", ");
            label.push_str(alias);
        }
        let summary = text(command.get_about());
        out.push_str(&format!("  {label:<12}{summary}\n"));
    }
    out.push_str(&format!(
        "\nRun '{program} COMMAND --help' for more information on a command.\n"
    ));
    out
}

/// `swarm <command> --help`.
pub(crate) fn command_help(command: &clap::Command, program: &str) -> String {
    let has_flags = flags(command).next().is_some();
    let positionals: Vec<&Arg> = command
        .get_positionals()
        .filter(|arg| !arg.is_hide_set())
        .collect();
    let mut out = format!("Usage: {program} {}", command.get_name());
    if has_flags {
        out.push_str(" [OPTIONS]");
    }
    for arg in &positionals {
        out.push_str(&format!(" <{}>", value_name(arg)));
    }
    out.push_str(&format!("\n\n{}\n", text(command.get_about())));
    let description = text(command.get_long_about());
    if !description.is_empty() {
        out.push('\n');
        let words: Vec<&str> = description.split_whitespace().collect();
        for line in wrap(&words, LINE_WIDTH) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !positionals.is_empty() {
        out.push_str("\nArguments:\n");
    }
    for arg in &positionals {
        if arg.get_id() == "discovery" {
            out.push_str(
                "  <discovery>  Discovery URL, one of the forms below. When not exactly \
                 one argument\n               is given, the value of $SWARM_DISCOVERY is used.\n",
            );
            for form in DISCOVERY_FORMS {
                out.push_str(&format!("                 {form}\n"));
            }
        } else {
            let label = format!("<{}>", value_name(arg));
            out.push_str(&format!("  {label}  {}\n", text(arg.get_help())));
        }
    }
    out.push_str("\nOptions:\n");
    render_flags(&mut out, command, "Print this help and exit");
    let notes = text(command.get_after_help());
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    if has_flags {
        out.push_str(
            "\nFlags take one or two dashes (-name or --name) and values as \"--name value\"\n\
             or \"--name=value\"; boolean flags take a value only as \"--name=false\".\n",
        );
    }
    out
}

/// The flags of `command` shown in help.
fn flags(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command
        .get_arguments()
        .filter(|arg| !arg.is_positional() && !arg.is_hide_set())
}

/// Metadata text (about, help), or empty.
fn text(styled: Option<&clap::builder::StyledStr>) -> String {
    styled.map(ToString::to_string).unwrap_or_default()
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(ToString::to_string)
        .unwrap_or_else(|| arg.get_id().to_string())
}

fn render_flags(out: &mut String, command: &clap::Command, help_text: &str) {
    let mut rows: Vec<(String, Vec<String>)> = flags(command)
        .map(|arg| (label(arg), describe(arg)))
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

/// `-H, --host <addr>`: the one-letter name first with one dash, long names with two.
fn label(arg: &Arg) -> String {
    let mut names: Vec<String> = arg
        .get_short()
        .map(|short| format!("-{short}"))
        .into_iter()
        .collect();
    names.extend(arg.get_long().map(|long| format!("--{long}")));
    names.extend(
        arg.get_visible_aliases()
            .into_iter()
            .flatten()
            .map(|alias| format!("--{alias}")),
    );
    let mut label = names.join(", ");
    if !is_switch(arg) {
        label.push_str(&format!(" <{}>", value_name(arg)));
    }
    label
}

/// The words of a flag's description, ready for [`wrap`]: its help, then its default and its
/// environment variable, each kept from being split right after its opening word.
fn describe(arg: &Arg) -> Vec<String> {
    let help = text(arg.get_help());
    let mut words: Vec<String> = help.split_whitespace().map(str::to_string).collect();
    if matches!(arg.get_action(), ArgAction::Append) {
        if let Some(last) = words.last_mut() {
            last.push(';');
        }
        words.push("repeatable".to_string());
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|value| value.to_string_lossy().into_owned())
        .filter(|value| !value.is_empty())
        .collect();
    if !is_switch(arg) && !defaults.is_empty() {
        let default = defaults.join(", ");
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
    if let Some(env) = arg.get_env() {
        words.push(format!("[env:\u{a0}{}]", env.to_string_lossy()));
    }
    words
}

//! Tests of the whole command line: argv and environment in, options or exact messages out.
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// Parses `line` (split on spaces, program `swarm`) with the given environment.
fn parse_with(line: &[&str], env: &[(&str, &str)]) -> Result<Invocation, CliError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.get(name).cloned();
    let mut args: Vec<OsString> = vec!["swarm".into()];
    args.extend(line.iter().map(OsString::from));
    parse(args, &lookup)
}

fn command(line: &[&str]) -> Command {
    parse_with(line, &[]).unwrap().command
}

fn manage_with(line: &[&str], env: &[(&str, &str)]) -> ManageOptions {
    let mut full = vec!["manage"];
    full.extend_from_slice(line);
    match parse_with(&full, env).unwrap().command {
        Command::Manage(options) => options,
        other => panic!("expected manage, got {other:?}"),
    }
}

fn manage(line: &[&str]) -> ManageOptions {
    manage_with(line, &[])
}

fn error_with(line: &[&str], env: &[(&str, &str)]) -> String {
    match parse_with(line, env) {
        Err(error) => error.to_string(),
        Ok(invocation) => panic!("expected an error, got {invocation:?}"),
    }
}

fn error(line: &[&str]) -> String {
    error_with(line, &[])
}

/// Help text with every whitespace run turned into one space, so searches ignore wrapping.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn help_text(line: &[&str]) -> String {
    match command(line) {
        Command::Help(text) => text,
        other => panic!("expected help, got {other:?}"),
    }
}

const NODES: &str = "nodes://10.0.0.1:2375";

// ---- global options -------------------------------------------------------------------------

#[test]
fn global_defaults() {
    let invocation = parse_with(&["manage", NODES], &[]).unwrap();
    assert_eq!(invocation.program, "swarm");
    assert_eq!(
        invocation.global,
        GlobalOptions {
            debug: false,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            experimental: false
        }
    );
    assert!(invocation.warnings.is_empty());
}

#[test]
fn debug_forces_debug_level_unless_a_level_is_given() {
    let global = |line: &[&str], env: &[(&str, &str)]| parse_with(line, env).unwrap().global;
    let g = global(&["--debug", "manage", NODES], &[]);
    assert!(g.debug);
    assert_eq!(g.log_level, "debug");
    let g = global(&["--debug", "-l", "warn", "manage", NODES], &[]);
    assert!(g.debug);
    assert_eq!(g.log_level, "warn");
    let g = global(&["--log-level=info", "-debug", "manage", NODES], &[]);
    assert_eq!(g.log_level, "info");
    let g = global(&["manage", NODES], &[("DEBUG", "true")]);
    assert!(g.debug);
    assert_eq!(g.log_level, "debug");
    let g = global(&["manage", NODES], &[("DEBUG", "1")]);
    assert!(g.debug);
    let g = global(&["manage", NODES], &[("DEBUG", "not-a-bool")]);
    assert!(!g.debug);
    let g = global(&["--debug=false", "manage", NODES], &[("DEBUG", "true")]);
    assert!(!g.debug);
    assert_eq!(g.log_level, "info");
}

#[test]
fn log_format_is_text_or_json_and_anything_else_is_refused() {
    let format = |line: &[&str]| parse_with(line, &[]).unwrap().global.log_format;
    assert_eq!(format(&["manage", NODES]), LogFormat::Text);
    assert_eq!(
        format(&["--log-format", "json", "manage", NODES]),
        LogFormat::Json
    );
    assert_eq!(
        format(&["--log-format=text", "-l", "debug", "manage", NODES]),
        LogFormat::Text
    );
    assert_eq!(
        error(&["--log-format", "xml", "manage", NODES]),
        "invalid log format: \"xml\" (use text or json)"
    );
    assert_eq!(
        error(&["--log-format=JSON", "manage", NODES]),
        "invalid log format: \"JSON\" (use text or json)"
    );
}

#[test]
fn log_levels_are_checked_and_normalised() {
    for (given, effective) in [
        ("debug", "debug"),
        ("info", "info"),
        ("warn", "warn"),
        ("warning", "warn"),
        ("error", "error"),
        ("fatal", "fatal"),
        ("panic", "panic"),
        ("DEBUG", "debug"),
    ] {
        let g = parse_with(&["-l", given, "manage", NODES], &[])
            .unwrap()
            .global;
        assert_eq!(g.log_level, effective, "{given}");
    }
    assert_eq!(
        error(&["--log-level", "loud", "manage", NODES]),
        "not a valid logrus Level: \"loud\""
    );
    assert_eq!(
        error(&["-l=", "manage", NODES]),
        "not a valid logrus Level: \"\""
    );
}

#[test]
fn experimental_is_a_global_switch() {
    let g = parse_with(&["--experimental", "manage", NODES], &[])
        .unwrap()
        .global;
    assert!(g.experimental);
}

#[test]
fn version_prints_program_version_and_commit() {
    let expected = format!("swarm version {} (HEAD)", crate::VERSION);
    for line in [
        &["-v"][..],
        &["--version"],
        &["-version"],
        &["-v", "manage"],
    ] {
        assert_eq!(
            command(line),
            Command::Version(expected.clone()),
            "{line:?}"
        );
    }
}

#[test]
fn program_name_is_the_basename_of_argv0() {
    let lookup = |_: &str| None;
    let invocation = parse(
        vec!["/usr/local/bin/swarm-classic".into(), "manage".into()],
        &lookup,
    );
    assert_eq!(
        invocation.unwrap_err().to_string(),
        "discovery required to manage a cluster. See 'swarm-classic manage --help'."
    );
    let invocation = parse(Vec::new(), &lookup).unwrap();
    assert_eq!(invocation.program, "swarm");
}

#[test]
fn global_flag_errors_point_at_app_help() {
    assert_eq!(
        error(&["--bogus", "manage"]),
        "flag provided but not defined: --bogus. See 'swarm --help'."
    );
    assert_eq!(
        error(&["-l"]),
        "flag needs an argument: -l. See 'swarm --help'."
    );
    assert_eq!(
        error(&["frobnicate"]),
        "'frobnicate' is not a swarm command. See 'swarm --help'."
    );
}

#[test]
fn non_utf8_arguments_are_refused_without_panicking() {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let lookup = |_: &str| None;
        let args = vec![
            OsString::from("swarm"),
            OsString::from("manage"),
            OsString::from_vec(vec![0x66, 0xff, 0x6f]),
        ];
        assert!(matches!(parse(args, &lookup), Err(CliError::Usage(_))));
    }
}

// ---- commands and help --------------------------------------------------------------------

#[test]
fn command_aliases_select_the_same_command() {
    assert!(matches!(command(&["m", NODES]), Command::Manage(_)));
    assert!(matches!(
        command(&["j", "--advertise", "a:1", NODES]),
        Command::Join(_)
    ));
    assert!(matches!(command(&["l", NODES]), Command::List(_)));
    assert_eq!(command(&["c"]), Command::Create);
    assert_eq!(command(&["create"]), Command::Create);
}

#[test]
fn app_help_lists_commands_and_global_options() {
    let texts = [
        help_text(&[]),
        help_text(&["--help"]),
        help_text(&["-h"]),
        help_text(&["help"]),
        help_text(&["h"]),
        help_text(&["--debug"]),
    ];
    for text in &texts {
        assert_eq!(text, &texts[0]);
    }
    let text = &texts[0];
    assert!(text.starts_with("Usage: swarm [OPTIONS] COMMAND [arg...]\n"));
    assert!(text.contains("A Docker-native clustering system"));
    for needle in [
        "create, c",
        "list, l",
        "manage, m",
        "join, j",
        "help ",
        "--debug",
        "[env: DEBUG]",
        "-l, --log-level <level>",
        "(default: info)",
        "--log-format <format>",
        "(default: text)",
        "--experimental",
        "-v, --version",
        "-h, --help",
    ] {
        assert!(flat(text).contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn help_wins_over_version_and_bad_flags_after_it() {
    assert!(matches!(command(&["--help", "-v"]), Command::Help(_)));
    assert!(matches!(command(&["-v", "--help"]), Command::Help(_)));
    assert!(matches!(
        command(&["manage", "--help", "--bogus"]),
        Command::Help(_)
    ));
}

#[test]
fn every_command_help_has_usage_and_exits_cleanly() {
    for (name, alias) in [("manage", "m"), ("join", "j"), ("list", "l")] {
        let forms = [
            help_text(&[name, "--help"]),
            help_text(&[name, "-h"]),
            help_text(&[name, "-help"]),
            help_text(&[alias, "--help"]),
            help_text(&["help", name]),
            help_text(&["help", alias]),
            help_text(&[name, NODES, "--help", "--strategy"]),
        ];
        for text in &forms {
            assert_eq!(text, &forms[0], "{name}");
        }
        let text = &forms[0];
        assert!(
            text.starts_with(&format!("Usage: swarm {name} [OPTIONS] <discovery>\n")),
            "{text}"
        );
        for needle in [
            "Arguments:",
            "token://<token>",
            "consul://<ip>/<path>",
            "etcd://<ip1>,<ip2>/<path>",
            "file://path/to/file",
            "zk://<ip1>,<ip2>/<path>",
            "[nodes://]<ip1>,<ip2>",
            "$SWARM_DISCOVERY",
            "--discovery-opt <key=value>",
            "-h, --help",
        ] {
            assert!(
                flat(text).contains(needle),
                "{name}: missing {needle:?} in\n{text}"
            );
        }
    }
    let create = help_text(&["create", "--help"]);
    assert!(create.starts_with("Usage: swarm create\n"), "{create}");
    assert!(!create.contains("<discovery>"));
    assert_eq!(help_text(&["help", "create"]), create);
}

#[test]
fn command_help_shows_the_one_line_description() {
    let summaries = [
        ("manage", manage::SUMMARY),
        ("join", join::SUMMARY),
        ("list", list::SUMMARY),
        ("create", create::SUMMARY),
    ];
    for (name, summary) in summaries {
        let text = help_text(&[name, "--help"]);
        assert_eq!(text.lines().nth(2), Some(summary), "{name}");
    }
}

#[test]
fn manage_help_shows_every_flag_default_env_and_cluster_option() {
    let text = help_text(&["manage", "--help"]);
    let flat_text = flat(&text);
    for needle in [
        "--strategy <name>",
        "(default: spread)",
        "-f, --filter <name>",
        "health, port, containerslots, dependency, affinity, constraint, whitelist",
        "-H, --host <addr>",
        "(default: tcp://127.0.0.1:2375)",
        "[env: SWARM_HOST]",
        "--replication ",
        "--replication-ttl <duration>",
        "(default: 20s)",
        "--advertise, --addr <host:port>",
        "[env: SWARM_ADVERTISE]",
        "--tls ",
        "--tlscacert <path>",
        "--tlscert <path>",
        "--tlskey <path>",
        "--tlsverify",
        "--engine-refresh-min-interval <duration>",
        "(default: 30s)",
        "--engine-refresh-max-interval <duration>",
        "(default: 60s)",
        "--engine-failure-retry <count>",
        "(default: 3)",
        "--engine-refresh-retry <count>",
        "--heartbeat <duration>",
        "--api-enable-cors, --cors",
        "-c, --cluster-driver <name>",
        "(default: swarm)",
        "--cluster-opt <key=value>",
        "--discovery-opt <key=value>",
        "--refresh-on-node-filter",
        "--container-name-refresh-filter <name>",
        "swarm.overcommit=0.05",
        "swarm.createretry=0",
    ] {
        assert!(flat_text.contains(needle), "missing {needle:?} in\n{text}");
    }
    for line in text.lines() {
        assert!(line.len() <= 100, "line too long: {line:?}");
    }
}

#[test]
fn join_and_list_help_show_their_flags() {
    let join = help_text(&["join", "--help"]);
    for needle in [
        "--advertise, --addr <host:port>",
        "[env: SWARM_ADVERTISE]",
        "--heartbeat <duration>",
        "(default: 60s)",
        "--ttl <duration>",
        "(default: 180s)",
        "--delay <duration>",
        "(default: 0s)",
    ] {
        assert!(flat(&join).contains(needle), "join: missing {needle:?}");
    }
    let list = flat(&help_text(&["list", "--help"]));
    assert!(list.contains("--timeout <duration>"));
    assert!(list.contains("(default: 10s)"));
}

#[test]
fn help_for_an_unknown_topic_is_an_error() {
    assert_eq!(
        error(&["help", "bogus"]),
        "No help topic for 'bogus'. See 'swarm --help'."
    );
}

// ---- manage: parsing ----------------------------------------------------------------------

#[test]
fn manage_defaults_match_the_classic_ones() {
    let options = manage(&[NODES]);
    assert_eq!(
        options,
        ManageOptions {
            discovery: NODES.to_string(),
            ..ManageOptions::default()
        }
    );
    assert_eq!(options.hosts, ["tcp://127.0.0.1:2375"]);
    assert_eq!(options.strategy, "spread");
    assert_eq!(
        options.filters,
        [
            "health",
            "port",
            "containerslots",
            "dependency",
            "affinity",
            "constraint",
            "whitelist"
        ]
    );
    assert_eq!(options.replication_ttl, Duration::from_secs(20));
    assert_eq!(options.engine_refresh_min_interval, Duration::from_secs(30));
    assert_eq!(options.engine_refresh_max_interval, Duration::from_secs(60));
    assert_eq!(options.engine_failure_retry, 3);
    assert_eq!(options.heartbeat, Duration::from_secs(60));
    assert_eq!(options.overcommit, 0.05);
    assert_eq!(options.create_retry, 0);
    assert!(!options.cors && !options.replication && !options.refresh_on_node_filter);
    assert_eq!(options.advertise, None);
    assert_eq!(options.container_name_refresh_filter, None);
    assert_eq!(options.tls, TlsOptions::default());
}

#[test]
fn manage_reads_every_flag() {
    let options = manage(&[
        "--strategy",
        "binpack",
        "-f",
        "health",
        "--filter=constraint",
        "-H",
        "tcp://0.0.0.0:4000",
        "--host",
        "unix:///var/run/swarm.sock",
        "--replication",
        "--replication-ttl",
        "30s",
        "--advertise",
        "10.0.0.9:4000",
        "--tlsverify",
        "--tlscacert",
        "ca.pem",
        "--tlscert=cert.pem",
        "-tlskey",
        "key.pem",
        "--engine-refresh-min-interval",
        "5s",
        "--engine-refresh-max-interval",
        "1m",
        "--engine-failure-retry",
        "7",
        "--engine-call-timeout",
        "1m30s",
        "--api-max-connections",
        "500",
        "--api-write-stall-timeout=45s",
        "--engine-refresh-retry",
        "3",
        "--heartbeat",
        "2s",
        "--cors",
        "--cluster-driver",
        "swarm",
        "--cluster-opt",
        "swarm.overcommit=0.5",
        "--cluster-opt",
        "swarm.createretry=2",
        "--discovery-opt",
        "kv.path=a/b",
        "--discovery-opt=kv.certfile=/c=d",
        "--refresh-on-node-filter",
        "--container-name-refresh-filter",
        "refresh-me",
        "etcd://127.0.0.1:2379/test",
    ]);
    assert_eq!(
        options,
        ManageOptions {
            discovery: "etcd://127.0.0.1:2379/test".into(),
            hosts: vec![
                "tcp://0.0.0.0:4000".into(),
                "unix:///var/run/swarm.sock".into()
            ],
            strategy: "binpack".into(),
            filters: vec!["health".into(), "constraint".into()],
            replication: true,
            replication_ttl: Duration::from_secs(30),
            advertise: Some("10.0.0.9:4000".into()),
            tls: TlsOptions {
                tls: true,
                verify: true,
                ca: Some(PathBuf::from("ca.pem")),
                cert: Some(PathBuf::from("cert.pem")),
                key: Some(PathBuf::from("key.pem")),
            },
            engine_refresh_min_interval: Duration::from_secs(5),
            engine_refresh_max_interval: Duration::from_secs(60),
            engine_failure_retry: 7,
            engine_call_timeout: Duration::from_secs(90),
            api_header_timeout: Duration::from_secs(30),
            api_max_connections: Some(500),
            api_max_body_size: 16 << 20,
            api_write_stall_timeout: Duration::from_secs(45),
            heartbeat: Duration::from_secs(2),
            cors: true,
            overcommit: 0.5,
            create_retry: 2,
            discovery_opts: vec![
                ("kv.path".into(), "a/b".into()),
                ("kv.certfile".into(), "/c=d".into())
            ],
            refresh_on_node_filter: true,
            container_name_refresh_filter: Some("refresh-me".into()),
            metrics_addr: None,
        }
    );
}

#[test]
fn single_dash_long_flags_and_aliases_work() {
    let options = manage(&[
        "-strategy",
        "random",
        "-host",
        ":4000",
        "-api-enable-cors",
        "-addr",
        "h:1",
        "-c",
        "swarm",
        NODES,
    ]);
    assert_eq!(options.strategy, "random");
    assert_eq!(options.hosts, ["tcp://0.0.0.0:4000"]);
    assert!(options.cors);
    assert_eq!(options.advertise.as_deref(), Some("h:1"));
}

#[test]
fn positionals_may_precede_or_follow_flags() {
    let before = manage(&[NODES, "--strategy", "binpack"]);
    let after = manage(&["--strategy", "binpack", NODES]);
    let between = manage(&["--tls=false", NODES, "--strategy=binpack"]);
    assert_eq!(before, after);
    assert_eq!(before, between);
    assert_eq!(before.strategy, "binpack");
    assert_eq!(before.discovery, NODES);
}

#[test]
fn booleans_do_not_swallow_the_discovery_argument() {
    let options = manage(&["--cors", NODES]);
    assert!(options.cors);
    assert_eq!(options.discovery, NODES);
    let options = manage(&["--cors=false", "--refresh-on-node-filter=true", NODES]);
    assert!(!options.cors);
    assert!(options.refresh_on_node_filter);
    assert_eq!(
        error(&["manage", "--cors=yes", NODES]),
        "invalid boolean value \"yes\" for --cors: parse error. See 'swarm manage --help'."
    );
}

#[test]
fn unknown_flags_and_missing_values_name_the_flag_and_hint_at_help() {
    assert_eq!(
        error(&["manage", "--bogus", NODES]),
        "flag provided but not defined: --bogus. See 'swarm manage --help'."
    );
    assert_eq!(
        error(&["manage", "-debug", NODES]),
        "flag provided but not defined: -debug. See 'swarm manage --help'."
    );
    assert_eq!(
        error(&["join", "--strategy", "x", NODES]),
        "flag provided but not defined: --strategy. See 'swarm join --help'."
    );
    assert_eq!(
        error(&["manage", NODES, "--strategy"]),
        "flag needs an argument: --strategy. See 'swarm manage --help'."
    );
    assert_eq!(
        error(&["list", "--timeout"]),
        "flag needs an argument: --timeout. See 'swarm list --help'."
    );
    assert_eq!(
        error(&["create", "--x"]),
        "flag provided but not defined: --x. See 'swarm create --help'."
    );
}

#[test]
fn discovery_comes_from_the_environment_unless_exactly_one_argument() {
    let env = [("SWARM_DISCOVERY", "nodes://9.9.9.9:1")];
    assert_eq!(manage_with(&[], &env).discovery, "nodes://9.9.9.9:1");
    assert_eq!(manage_with(&[NODES], &env).discovery, NODES);
    assert_eq!(
        manage_with(&[NODES, "nodes://b:1"], &env).discovery,
        "nodes://9.9.9.9:1"
    );
    assert_eq!(
        error(&["manage", NODES, "nodes://b:1"]),
        "discovery required to manage a cluster. See 'swarm manage --help'."
    );
    assert_eq!(
        error_with(&["manage"], &[("SWARM_DISCOVERY", "")]),
        "discovery required to manage a cluster. See 'swarm manage --help'."
    );
    // After `--` even a word that looks like a flag is the discovery argument.
    assert_eq!(manage(&["--", "-h:1"]).discovery, "-h:1");
}

#[test]
fn hosts_come_from_flags_else_environment_else_default() {
    assert_eq!(manage(&[NODES]).hosts, ["tcp://127.0.0.1:2375"]);
    let env = [("SWARM_HOST", "tcp://0.0.0.0:1000, :2000 ,unix:///s.sock,")];
    assert_eq!(
        manage_with(&[NODES], &env).hosts,
        ["tcp://0.0.0.0:1000", "tcp://0.0.0.0:2000", "unix:///s.sock"]
    );
    // -H replaces the environment list entirely (the original dropped only its first entry).
    assert_eq!(
        manage_with(&["-H", "127.0.0.1:3000", NODES], &env).hosts,
        ["tcp://127.0.0.1:3000"]
    );
    assert_eq!(
        manage_with(&[NODES], &[("SWARM_HOST", "")]).hosts,
        ["tcp://127.0.0.1:2375"]
    );
    assert_eq!(
        manage_with(&[NODES], &[("SWARM_HOST", ":2375")]).hosts,
        ["tcp://0.0.0.0:2375"]
    );
}

#[test]
fn hosts_are_normalised_and_checked() {
    for (given, normalised) in [
        ("10.0.0.1:4000", "tcp://10.0.0.1:4000"),
        (":4000", "tcp://0.0.0.0:4000"),
        ("tcp://:4000", "tcp://0.0.0.0:4000"),
        ("tcp://[::1]:4000", "tcp://[::1]:4000"),
        ("localhost:2375", "tcp://localhost:2375"),
        ("unix:///var/run/swarm.sock", "unix:///var/run/swarm.sock"),
    ] {
        assert_eq!(manage(&["-H", given, NODES]).hosts, [normalised], "{given}");
    }
    assert_eq!(
        error(&["manage", "-H", "udp://1.2.3.4:1", NODES]),
        "unsupported protocol: \"udp\""
    );
    assert_eq!(
        error(&["manage", "-H", "1.2.3.4", NODES]),
        "invalid --host \"1.2.3.4\": address 1.2.3.4: missing port in address"
    );
    assert_eq!(
        error(&["manage", "-H", "unix://", NODES]),
        "invalid --host \"unix://\": missing socket path"
    );
    assert_eq!(
        error_with(&["manage", NODES], &[("SWARM_HOST", "http://x:1")]),
        "unsupported protocol: \"http\""
    );
}

#[test]
fn advertise_comes_from_flag_or_environment() {
    let env = [("SWARM_ADVERTISE", "10.0.0.5:4000")];
    assert_eq!(
        manage_with(&[NODES], &env).advertise.as_deref(),
        Some("10.0.0.5:4000")
    );
    assert_eq!(
        manage_with(&["--advertise", "h:1", NODES], &env)
            .advertise
            .as_deref(),
        Some("h:1")
    );
    // Without replication the address is not checked.
    assert_eq!(
        manage(&["--advertise", "garbage", NODES])
            .advertise
            .as_deref(),
        Some("garbage")
    );
}

#[test]
fn strategies_and_filters() {
    assert_eq!(
        manage(&["--strategy", "binpacking", NODES]).strategy,
        "binpack"
    );
    assert_eq!(manage(&["--strategy", "random", NODES]).strategy, "random");
    assert_eq!(manage(&["--strategy", "spread", NODES]).strategy, "spread");
    assert_eq!(
        error(&["manage", "--strategy", "Spread", NODES]),
        "strategy not supported"
    );
    assert_eq!(
        manage(&["-f", "port", "-f", "port", NODES]).filters,
        ["port", "port"]
    );
    assert_eq!(
        error(&["manage", "-f", "health", "-f", "magic", NODES]),
        "filter not supported"
    );
}

#[test]
fn cluster_options_follow_the_classic_rules() {
    let opt = |value: &str| manage(&["--cluster-opt", value, NODES]);
    assert_eq!(opt("swarm.overcommit=0.2").overcommit, 0.2);
    assert_eq!(opt("swarm.overcommit=garbage").overcommit, 0.0);
    assert_eq!(opt("swarm.createretry=0x10").create_retry, 16);
    assert_eq!(opt("swarm.createretry=five").create_retry, 0);
    let first_wins = manage(&[
        "--cluster-opt",
        "swarm.createretry=1",
        "--cluster-opt",
        "swarm.createretry=2",
        NODES,
    ]);
    assert_eq!(first_wins.create_retry, 1);

    let negative = parse_with(
        &["manage", "--cluster-opt", "swarm.overcommit=-0.5", NODES],
        &[],
    )
    .unwrap();
    assert!(matches!(&negative.command, Command::Manage(o) if o.overcommit == -0.5));
    assert_eq!(negative.warnings.len(), 1);

    let unknown = parse_with(&["manage", "--cluster-opt", "refreshloopmin=1", NODES], &[]).unwrap();
    assert_eq!(
        unknown.warnings,
        ["Ignoring unknown cluster option \"refreshloopmin\""]
    );

    assert_eq!(
        error(&["manage", "--cluster-opt", "swarm.overcommit=-1", NODES]),
        "swarm.overcommit should be larger than -1, -1.000000 is invalid"
    );
    assert_eq!(
        error(&["manage", "--cluster-opt", "swarm.overcommit=-2.5", NODES]),
        "swarm.overcommit should be larger than -1, -2.500000 is invalid"
    );
    assert_eq!(
        error(&["manage", "--cluster-opt", "swarm.overcommit=NaN", NODES]),
        "swarm.overcommit should be larger than -1, NaN is invalid"
    );
    assert_eq!(
        error(&["manage", "--cluster-opt", "swarm.createretry=-3", NODES]),
        "swarm.createretry can not be negative, -3 is invalid"
    );
    assert_eq!(
        error(&["manage", "--cluster-opt", "swarm.createretry", NODES]),
        "--cluster-opt must contain key=value strings"
    );
}

#[test]
fn cluster_driver_must_be_swarm() {
    assert_eq!(
        error(&["manage", "-c", "mesos-experimental", NODES]),
        "unsupported cluster \"mesos-experimental\""
    );
    assert_eq!(
        error(&["manage", "--cluster-driver=", NODES]),
        "unsupported cluster \"\""
    );
}

#[test]
fn discovery_options_must_be_pairs() {
    assert_eq!(
        manage(&["--discovery-opt", "kv.path=", NODES]).discovery_opts,
        [("kv.path".to_string(), String::new())]
    );
    for command in [&["manage"][..], &["list"], &["join", "--advertise", "a:1"]] {
        let mut line = command.to_vec();
        line.extend(["--discovery-opt", "kv.path", NODES]);
        assert_eq!(
            error(&line),
            "--discovery-opt must contain key=value strings",
            "{command:?}"
        );
    }
}

// ---- manage: validation messages and their order ------------------------------------------

#[test]
fn tls_flag_combinations() {
    assert_eq!(
        error(&["manage", "--tlscert", "c", NODES]),
        "--tlscert, --tlskey and --tlscacert require the use of either --tls or --tlsverify"
    );
    assert_eq!(
        error(&["manage", "--tlscacert", "ca", NODES]),
        "--tlscert, --tlskey and --tlscacert require the use of either --tls or --tlsverify"
    );
    assert_eq!(
        error(&["manage", "--tls", "--tlscert", "c", NODES]),
        "--tlscert and --tlskey must be provided when using --tls"
    );
    assert_eq!(
        error(&["manage", "--tlsverify", NODES]),
        "--tlscert and --tlskey must be provided when using --tls"
    );
    assert_eq!(
        error(&[
            "manage",
            "--tlsverify",
            "--tlscert",
            "c",
            "--tlskey",
            "k",
            NODES
        ]),
        "--tlscacert must be provided when using --tlsverify"
    );
    let tls = manage(&["--tls", "--tlscert", "c", "--tlskey", "k", NODES]).tls;
    assert!(tls.tls && !tls.verify);
    assert_eq!(tls.ca, None);
    // The TLS check comes first, before even the discovery check.
    assert_eq!(
        error(&["manage", "--tls"]),
        "--tlscert and --tlskey must be provided when using --tls"
    );
}

#[test]
fn refresh_settings_are_checked() {
    let check = |args: &[&str]| {
        let mut line = vec!["manage"];
        line.extend_from_slice(args);
        line.push(NODES);
        error(&line)
    };
    let min = "min refresh interval should be a positive number";
    assert_eq!(check(&["--engine-refresh-min-interval", "0s"]), min);
    assert_eq!(check(&["--engine-refresh-min-interval", "-5s"]), min);
    assert_eq!(check(&["--engine-refresh-min-interval", "soon"]), min);
    let max = "max refresh interval cannot be less than min refresh interval";
    assert_eq!(check(&["--engine-refresh-max-interval", "10s"]), max);
    assert_eq!(check(&["--engine-refresh-max-interval", "later"]), max);
    assert_eq!(
        check(&["--engine-refresh-retry", "4"]),
        "--engine-refresh-retry is deprecated. Use --engine-failure-retry"
    );
    assert_eq!(
        check(&["--engine-failure-retry", "0"]),
        "invalid failure retry count"
    );
    assert_eq!(
        check(&["--engine-failure-retry", "-1"]),
        "invalid failure retry count"
    );
    assert_eq!(
        check(&["--engine-failure-retry", "x"]),
        "invalid value \"x\" for flag --engine-failure-retry: parse error. See 'swarm manage --help'."
    );
    assert_eq!(
        check(&["--engine-refresh-retry", "99999999999999999999"]),
        "invalid value \"99999999999999999999\" for flag --engine-refresh-retry: value out of \
         range. See 'swarm manage --help'."
    );
    let equal = manage(&[
        "--engine-refresh-min-interval=45s",
        "--engine-refresh-max-interval=45s",
        "--engine-refresh-retry=0x3",
        "--engine-failure-retry=010",
        NODES,
    ]);
    assert_eq!(equal.engine_refresh_min_interval, Duration::from_secs(45));
    assert_eq!(equal.engine_refresh_max_interval, Duration::from_secs(45));
    assert_eq!(equal.engine_failure_retry, 8);
    assert_eq!(
        manage(&["--engine-failure-retry", "99999999999", NODES]).engine_failure_retry,
        u32::MAX
    );
}

#[test]
fn heartbeat_is_checked() {
    assert_eq!(
        error(&["manage", "--heartbeat", "10", NODES]),
        "invalid --heartbeat: time: missing unit in duration \"10\""
    );
    assert_eq!(
        error(&["manage", "--heartbeat", "999ms", NODES]),
        "--heartbeat should be at least one second"
    );
    assert_eq!(
        error(&["manage", "--heartbeat", "-1m", NODES]),
        "--heartbeat should be at least one second"
    );
    assert_eq!(
        manage(&["--heartbeat", "1s", NODES]).heartbeat,
        Duration::from_secs(1)
    );
}

#[test]
fn discovery_url_errors_are_fatal() {
    assert_eq!(
        error(&["manage", "1.2.3.4"]),
        "address 1.2.3.4: missing port in address, please check you are using the correct \
         discovery (missing token:// ?)"
    );
    assert_eq!(
        error(&["manage", "http://1.2.3.4:1"]),
        "discovery service not supported"
    );
    assert_eq!(error(&["manage", "token://"]), "token is empty");
    assert_eq!(
        error(&["manage", "consul://a:1,b:1/x"]),
        "consul does not support multiple endpoints"
    );
    assert_eq!(
        manage(&["10.0.0.[1:3]:2375"]).discovery,
        "10.0.0.[1:3]:2375"
    );
    assert_eq!(
        manage(&["file:///etc/cluster"]).discovery,
        "file:///etc/cluster"
    );
}

#[test]
fn validation_follows_the_classic_order() {
    // refresh before discovery; discovery before heartbeat; heartbeat before the URL;
    // the URL before the strategy; strategy before filters before the driver before options.
    assert_eq!(
        error(&["manage", "--engine-failure-retry=0"]),
        "invalid failure retry count"
    );
    assert_eq!(
        error(&["manage", "--heartbeat=0s"]),
        "discovery required to manage a cluster. See 'swarm manage --help'."
    );
    assert_eq!(
        error(&["manage", "--heartbeat=0s", "1.2.3.4"]),
        "--heartbeat should be at least one second"
    );
    assert_eq!(
        error(&["manage", "--discovery-opt=x", "1.2.3.4"]),
        "--discovery-opt must contain key=value strings"
    );
    assert_eq!(
        error(&["manage", "--strategy=x", "1.2.3.4"]),
        "address 1.2.3.4: missing port in address, please check you are using the correct \
         discovery (missing token:// ?)"
    );
    assert_eq!(
        error(&["manage", "--strategy=x", "-f", "x", NODES]),
        "strategy not supported"
    );
    assert_eq!(
        error(&["manage", "-f", "x", "-c", "x", NODES]),
        "filter not supported"
    );
    assert_eq!(
        error(&[
            "manage",
            "-c",
            "x",
            "--cluster-opt=swarm.createretry=-1",
            NODES
        ]),
        "unsupported cluster \"x\""
    );
    assert_eq!(
        error(&[
            "manage",
            "--cluster-opt=swarm.createretry=-1",
            "--replication",
            NODES
        ]),
        "swarm.createretry can not be negative, -1 is invalid"
    );
    assert_eq!(
        error(&["manage", "--replication", "-H", "udp://x:1", NODES]),
        "--advertise address must be provided when using --leader-election"
    );
}

#[test]
fn replication_needs_an_address_a_ttl_and_a_key_value_store() {
    let etcd = "etcd://127.0.0.1:2379/test";
    assert_eq!(
        error(&["manage", "--replication", etcd]),
        "--advertise address must be provided when using --leader-election"
    );
    for bad in ["nohost", "h:0", "h:65536", "h:port", "::1:4000", "h:"] {
        assert_eq!(
            error(&["manage", "--replication", "--advertise", bad, etcd]),
            "--advertise should be of the form ip:port or hostname:port",
            "{bad}"
        );
    }
    assert_eq!(
        error(&[
            "manage",
            "--replication",
            "--addr=h:1",
            "--replication-ttl=x",
            etcd
        ]),
        "invalid --replication-ttl: time: invalid duration \"x\""
    );
    assert_eq!(
        error(&[
            "manage",
            "--replication",
            "--addr=h:1",
            "--replication-ttl=0",
            etcd
        ]),
        "--replication-ttl should be a positive number"
    );
    assert_eq!(
        error(&[
            "manage",
            "--replication",
            "--addr=h:1",
            "--replication-ttl=-1s",
            etcd
        ]),
        "--replication-ttl should be a positive number"
    );
    for not_kv in [NODES, "file:///x", "token://abc"] {
        assert_eq!(
            error(&["manage", "--replication", "--addr=h:1", not_kv]),
            "Leader election is only supported with consul, etcd and zookeeper discovery.",
            "{not_kv}"
        );
    }
    for kv in [etcd, "consul://c:8500", "zk://z1:2181,z2:2181/p"] {
        let options = manage(&[
            "--replication",
            "--addr",
            "[::1]:4000",
            "--replication-ttl=6s",
            kv,
        ]);
        assert!(options.replication);
        assert_eq!(options.replication_ttl, Duration::from_secs(6));
        assert_eq!(options.advertise.as_deref(), Some("[::1]:4000"));
    }
    let from_env = manage_with(&["--replication", etcd], &[("SWARM_ADVERTISE", "m1:4000")]);
    assert_eq!(from_env.advertise.as_deref(), Some("m1:4000"));
    // Without replication a bad TTL is ignored, as in the original.
    assert_eq!(
        manage(&["--replication-ttl=x", NODES]).replication_ttl,
        Duration::from_secs(20)
    );
}

// ---- join ---------------------------------------------------------------------------------

fn join(line: &[&str], env: &[(&str, &str)]) -> JoinOptions {
    let mut full = vec!["join"];
    full.extend_from_slice(line);
    match parse_with(&full, env).unwrap().command {
        Command::Join(options) => options,
        other => panic!("expected join, got {other:?}"),
    }
}

#[test]
fn join_defaults_and_flags() {
    let options = join(&["--advertise=10.0.0.1:2375", "etcd://e:2379"], &[]);
    assert_eq!(
        options,
        JoinOptions {
            discovery: "etcd://e:2379".into(),
            advertise: "10.0.0.1:2375".into(),
            heartbeat: Duration::from_secs(60),
            ttl: Duration::from_secs(180),
            delay: Duration::ZERO,
            discovery_opts: Vec::new(),
        }
    );
    let options = join(
        &[
            "etcd://e:2379",
            "-addr",
            "h:1",
            "-heartbeat",
            "5s",
            "--ttl=15s",
            "--delay",
            "1m30s",
            "--discovery-opt",
            "kv.path=x",
        ],
        &[],
    );
    assert_eq!(options.advertise, "h:1");
    assert_eq!(options.heartbeat, Duration::from_secs(5));
    assert_eq!(options.ttl, Duration::from_secs(15));
    assert_eq!(options.delay, Duration::from_secs(90));
    assert_eq!(options.discovery_opts, [("kv.path".into(), "x".into())]);
    let from_env = join(
        &[],
        &[
            ("SWARM_ADVERTISE", "e:1"),
            ("SWARM_DISCOVERY", "nodes://a:1"),
        ],
    );
    assert_eq!(from_env.advertise, "e:1");
    assert_eq!(from_env.discovery, "nodes://a:1");
}

#[test]
fn join_validation_messages_in_order() {
    assert_eq!(
        error(&["join", "--advertise=h:1"]),
        "discovery required to join a cluster. See 'swarm join --help'."
    );
    assert_eq!(
        error(&["join", NODES]),
        "missing mandatory --advertise flag"
    );
    assert_eq!(
        error(&["join", "--advertise", "h", NODES]),
        "--advertise should be of the form ip:port or hostname:port"
    );
    let join_error = |args: &[&str]| {
        let mut line = vec!["join", "--advertise", "h:1"];
        line.extend_from_slice(args);
        line.push(NODES);
        error(&line)
    };
    assert_eq!(
        join_error(&["--delay", "x"]),
        "invalid --delay: time: invalid duration \"x\""
    );
    assert_eq!(
        join_error(&["--delay", "-1s"]),
        "--delay should not be a negative number"
    );
    assert_eq!(
        join_error(&["--heartbeat", "1"]),
        "invalid --heartbeat: time: missing unit in duration \"1\""
    );
    assert_eq!(
        join_error(&["--heartbeat", "100ms"]),
        "--heartbeat should be at least one second"
    );
    assert_eq!(
        join_error(&["--ttl", "1y"]),
        "invalid --ttl: time: unknown unit \"y\" in duration \"1y\""
    );
    assert_eq!(
        join_error(&["--ttl", "60s"]),
        "--ttl must be strictly superior to the heartbeat value"
    );
    assert_eq!(
        join_error(&["--heartbeat", "10s", "--ttl", "-20s"]),
        "--ttl must be strictly superior to the heartbeat value"
    );
    assert_eq!(
        join_error(&["--discovery-opt", "novalue"]),
        "--discovery-opt must contain key=value strings"
    );
    assert_eq!(
        error(&["join", "--advertise", "h:1", "zk"]),
        "address zk: missing port in address, please check you are using the correct discovery \
         (missing token:// ?)"
    );
    // The delay is checked before the heartbeat.
    assert_eq!(
        join_error(&["--delay", "-1s", "--heartbeat", "0s"]),
        "--delay should not be a negative number"
    );
}

// ---- list ---------------------------------------------------------------------------------

#[test]
fn list_defaults_and_flags() {
    assert_eq!(
        command(&["list", NODES]),
        Command::List(ListOptions {
            discovery: NODES.into(),
            timeout: Duration::from_secs(10),
            discovery_opts: Vec::new(),
        })
    );
    assert_eq!(
        command(&[
            "list",
            "--timeout",
            "500ms",
            "--discovery-opt",
            "a=b",
            NODES
        ]),
        Command::List(ListOptions {
            discovery: NODES.into(),
            timeout: Duration::from_millis(500),
            discovery_opts: vec![("a".into(), "b".into())],
        })
    );
    assert!(matches!(
        parse_with(&["list"], &[("SWARM_DISCOVERY", NODES)]).unwrap().command,
        Command::List(ListOptions { ref discovery, .. }) if discovery == NODES
    ));
}

#[test]
fn list_validation_messages() {
    assert_eq!(
        error(&["list"]),
        "discovery required to list a cluster. See 'swarm list --help'."
    );
    assert_eq!(
        error(&["list", "--timeout", "soon", NODES]),
        "invalid --timeout: time: invalid duration \"soon\""
    );
    assert_eq!(
        error(&["list", "--timeout", "0", NODES]),
        "--timeout should be a positive number"
    );
    assert_eq!(
        error(&["list", "--timeout", "-1s", NODES]),
        "--timeout should be a positive number"
    );
    assert_eq!(
        error(&["list", "ftp://x"]),
        "discovery service not supported"
    );
}

// ---- create -------------------------------------------------------------------------------

#[test]
fn create_takes_no_arguments() {
    assert_eq!(
        error(&["create", "extra"]),
        "the `create` command takes no arguments. See 'swarm create --help'."
    );
}

// ---- robustness ---------------------------------------------------------------------------

#[test]
fn odd_input_never_panics() {
    let odd: &[&[&str]] = &[
        &[""],
        &["-"],
        &["--"],
        &["manage", ""],
        &["manage", "-"],
        &["manage", "--", "--"],
        &["manage", "="],
        &["manage", "--=x"],
        &["manage", "-H", "", NODES],
        &["manage", "-H", "://", NODES],
        &["manage", "[:]"],
        &["manage", "[1:2]"],
        &["manage", "a:[1:99999999999999999999]"],
        &["manage", "a:[-9223372036854775808:9223372036854775807]"],
        &["manage", "--heartbeat", "9999999999999999999h", NODES],
        &["manage", "--heartbeat", "\u{b5}s", NODES],
        &["manage", "--cluster-opt", "swarm.overcommit=inf", NODES],
        &["manage", "--cluster-opt", "swarm.overcommit=-inf", NODES],
        &["manage", "--cluster-opt", "=", NODES],
        &["manage", "--replication", "--addr", "[", "etcd://x"],
        &["manage", "--replication", "--addr", "]:1", "etcd://x"],
        &["join", "--advertise", "\u{1F600}:1", "\u{1F600}"],
        &["join", "--advertise", "h:1", "--delay", "\u{1F600}", NODES],
        &["list", "--timeout", ".", NODES],
        &["help", ""],
        &["-l", "\u{1F600}"],
    ];
    for line in odd {
        let _ = parse_with(line, &[("SWARM_HOST", ",,,"), ("DEBUG", "\u{1F600}")]);
    }
}

#[test]
fn the_engine_call_timeout_must_be_a_duration_of_at_least_a_second() {
    for (value, message) in [
        ("soon", "invalid --engine-call-timeout"),
        (
            "500ms",
            "--engine-call-timeout should be at least one second",
        ),
        ("-5s", "--engine-call-timeout should be at least one second"),
    ] {
        let err = error(&["manage", "--engine-call-timeout", value, NODES]);
        assert!(err.contains(message), "{value}: {err}");
    }
}

#[test]
fn client_limits_are_checked() {
    for (flag, value, message) in [
        (
            "--api-header-timeout",
            "0s",
            "--api-header-timeout should be at least one second",
        ),
        (
            "--api-write-stall-timeout",
            "x",
            "invalid --api-write-stall-timeout",
        ),
        (
            "--api-max-connections",
            "-1",
            "--api-max-connections cannot be negative",
        ),
        (
            "--api-max-body-size",
            "100",
            "--api-max-body-size should be at least 1024 bytes",
        ),
    ] {
        let err = error(&["manage", flag, value, NODES]);
        assert!(err.contains(message), "{flag} {value}: {err}");
    }
    let defaults = manage(&[NODES]);
    assert_eq!(defaults.api_max_connections, None, "0 derives the cap");
    assert_eq!(defaults.metrics_addr, None, "metrics are off by default");
    assert_eq!(defaults.api_max_body_size, 16 << 20);
    assert_eq!(
        manage(&["--api-max-body-size", "0x100000", NODES]).api_max_body_size,
        1 << 20
    );
}

// ---- additions on clap ----------------------------------------------------------------------

#[test]
fn metrics_addr_is_off_by_default_or_when_empty_and_a_bad_address_is_a_bad_value() {
    assert_eq!(manage(&[NODES]).metrics_addr, None);
    assert_eq!(manage(&["--metrics-addr=", NODES]).metrics_addr, None);
    assert_eq!(
        manage(&["-metrics-addr", "127.0.0.1:9323", NODES]).metrics_addr,
        Some("127.0.0.1:9323".parse().unwrap())
    );
    assert_eq!(
        error(&["manage", "--metrics-addr", "nowhere", NODES]),
        "invalid value \"nowhere\" for flag --metrics-addr: invalid socket address syntax. \
         See 'swarm manage --help'."
    );
    let help = flat(&help_text(&["manage", "--help"]));
    assert!(help.contains(
        "--metrics-addr <addr> Address to serve Prometheus metrics on (/metrics); off when empty"
    ));
}

#[test]
fn completion_prints_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _swarm"),
        ("zsh", "#compdef swarm"),
        ("fish", "complete -c swarm"),
    ] {
        let Command::Completion(script) = command(&["completion", shell]) else {
            panic!("{shell}: expected a completion script");
        };
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("strategy"),
            "{shell}: manage's flags are completed"
        );
    }
    assert!(matches!(
        parse_with(&["completion", "csh"], &[]),
        Err(CliError::Usage(message)) if message.ends_with("See 'swarm completion --help'.")
    ));
    assert_eq!(
        error(&["completion"]),
        "the following required arguments were not provided: <shell>. \
         See 'swarm completion --help'."
    );
    assert!(flat(&help_text(&[])).contains("completion Print a completion script"));
}

#[test]
fn process_environment_never_overrides_the_lookup() {
    // Whatever the test process's own environment holds, only the lookup counts.
    let invocation = parse_with(&["manage", NODES], &[]).unwrap();
    assert!(!invocation.global.debug);
    assert!(matches!(
        invocation.command,
        Command::Manage(ref options) if options.hosts == ["tcp://127.0.0.1:2375"]
    ));
}

//! Go durations and the command line on arbitrary argv and environment.
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::prelude::*;

use super::{config, tricky_string};
use crate::cli::duration::{self, GoDuration};
use crate::cli::{self, Command};

/// Duration text: terms with huge, fractional or missing numbers and known or unknown units.
fn duration_text() -> BoxedStrategy<String> {
    let number = prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("9223372036854775807".to_string()),
        Just("9223372036854775808".to_string()),
        Just("99999999999999999999999".to_string()),
        "[0-9]{0,3}\\.[0-9]{0,25}",
        Just(".".to_string()),
        Just(String::new()),
    ];
    let unit = prop::sample::select(
        &[
            "ns", "us", "µs", "μs", "ms", "s", "m", "h", "", "d", "sec", "M",
        ][..],
    );
    let term = (number, unit).prop_map(|(n, u)| format!("{n}{u}"));
    prop_oneof![
        4 => (prop::sample::select(&["", "-", "+", "--"][..]), prop::collection::vec(term, 0..4))
            .prop_map(|(sign, terms)| format!("{sign}{}", terms.concat())),
        1 => tricky_string(),
    ]
    .boxed()
}

/// Flags of every command with values of every kind, commands, and stray words.
fn argument() -> BoxedStrategy<String> {
    let flag = prop::sample::select(
        &[
            "--heartbeat",
            "--ttl",
            "--delay",
            "--timeout",
            "--strategy",
            "--filter",
            "-H",
            "--host",
            "--replication",
            "--replication-ttl",
            "--advertise",
            "--addr",
            "--tls",
            "--tlsverify",
            "--tlscacert",
            "--engine-refresh-min-interval",
            "--engine-refresh-max-interval",
            "--engine-failure-retry",
            "--engine-refresh-retry",
            "--cluster-opt",
            "--discovery-opt",
            "--cluster-driver",
            "--log-level",
            "--debug",
            "--experimental",
            "-v",
            "--version",
            "--help",
            "-h",
            "-",
            "--",
            "---x",
            "--api-enable-cors",
            "--refresh-on-node-filter",
            "--container-name-refresh-filter",
        ][..],
    );
    let value = prop_oneof![
        duration_text(),
        tricky_string(),
        prop::sample::select(
            &[
                "swarm.overcommit=1e400",
                "swarm.overcommit=-1",
                "swarm.overcommit=NaN",
                "swarm.createretry=0x7fffffffffffffff",
                "swarm.createretry=-0b1_0",
                "swarm.createretry=0o_7",
                "kv.path=",
                "=",
                "0x",
                "0_1",
                "1__0",
                "-0",
                "nodes://10.0.0.[1:99999999]:2375",
                "token://",
                "consul://a,b",
                "spread",
                "binpack",
                "true",
                "False",
                "2",
                "-9223372036854775808",
            ][..],
        )
        .prop_map(str::to_string),
    ];
    prop_oneof![
        2 => (flag.clone(), value.clone()).prop_map(|(f, v)| format!("{f}={v}")),
        2 => flag.prop_map(str::to_string),
        2 => value,
        1 => prop::sample::select(&["manage", "join", "list", "create", "help", "h", "m"][..])
            .prop_map(str::to_string),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn any_duration_text_parses_or_fails_with_gos_message(text in duration_text()) {
        match duration::parse(&text) {
            Ok(d) => {
                // Go's printed form reads back as the same duration.
                prop_assert_eq!(duration::parse(&d.to_string()), Ok(d), "{}", d);
            }
            Err(err) => prop_assert!(err.to_string().starts_with("time: "), "{err}"),
        }
    }

    #[test]
    fn every_go_duration_prints_and_reads_back(nanos in any::<i64>()) {
        let d = GoDuration::from_nanos(nanos);
        prop_assert_eq!(duration::parse(&d.to_string()), Ok(d));
        if let Some(std) = d.to_std() {
            prop_assert_eq!(duration::format(std), d.to_string());
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn any_command_line_parses_or_fails_with_a_message(
        command in prop::sample::select(&["manage", "join", "list", "create", "help", ""][..]),
        args in prop::collection::vec(argument(), 0..8),
        discovery in prop::option::of(prop_oneof![Just("a:1".to_string()), tricky_string()]),
        env in prop::collection::btree_map(
            prop::sample::select(&["SWARM_HOST", "SWARM_DISCOVERY", "SWARM_HEARTBEAT", "SWARM_ADVERTISE", "SWARM_STRATEGY", "DOCKER_TLS_VERIFY"][..]),
            tricky_string(),
            0..3,
        ),
        raw in prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
    ) {
        let mut argv: Vec<OsString> = vec!["swarm".into()];
        if !command.is_empty() {
            argv.push(command.into());
        }
        argv.extend(args.into_iter().map(OsString::from));
        argv.extend(discovery.map(OsString::from));
        // Arguments need not be UTF-8 at all.
        argv.extend(raw.map(OsString::from_vec));
        let lookup = |name: &str| env.get(name).cloned();
        match cli::parse(argv, &lookup) {
            Ok(invocation) => {
                if let Command::Manage(options) = invocation.command {
                    prop_assert!(options.engine_failure_retry > 0);
                    prop_assert!(options.engine_refresh_min_interval <= options.engine_refresh_max_interval);
                }
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn integer_flags_take_every_go_spelling_of_an_i64(
        n in 1i64..=i64::MAX,
        spelling in 0..4u8,
    ) {
        let text = match spelling {
            0 => n.to_string(),
            1 => format!("0x{n:x}"),
            2 => format!("0o{n:o}"),
            _ => format!("+0b{n:b}"),
        };
        let argv: Vec<OsString> = ["swarm", "manage", &format!("--engine-failure-retry={text}"), "a:1"]
            .iter()
            .map(OsString::from)
            .collect();
        let invocation = cli::parse(argv, &|_| None).unwrap();
        let Command::Manage(options) = invocation.command else {
            panic!("manage expected");
        };
        prop_assert_eq!(u64::from(options.engine_failure_retry), u64::try_from(n).unwrap().min(u64::from(u32::MAX)));
    }
}

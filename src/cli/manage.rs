//! `swarm manage`: its flags and every check the classic manager made before listening, in the
//! same order (so the first problem reported is the same one). Certificate files are not read here;
//! loading them is the TLS module's job.
use std::path::PathBuf;
use std::time::Duration;

use super::duration;
use super::flags::{Arity, FlagDef, Matches};
use super::go_values::{
    format_float_f, parse_float_lenient, parse_int_base0, parse_int_base0_lenient, quote,
};
use super::{
    bad_advertise, check_discovery, discovery_argument, discovery_opts, heartbeat, is_host_port,
    CliError, Command, CommandDef, Context, ManageOptions, TlsOptions, DISCOVERY_OPT_FLAG,
};

/// Where the manager listens when neither `-H` nor `SWARM_HOST` says otherwise.
pub(crate) const DEFAULT_HOST: &str = "tcp://127.0.0.1:2375";

/// Every scheduling filter, in the default order: the scheduler's own list.
pub(crate) const FILTERS: [&str; 7] = crate::scheduler::filter::DEFAULT_FILTERS;

const STRATEGIES: [&str; 3] = ["spread", "binpack", "random"];

pub(crate) const COMMAND: CommandDef = CommandDef {
    name: "manage",
    alias: "m",
    summary: "Manage a Docker cluster",
    description: "Serves the Docker API on the --host addresses and schedules containers across \
                  the engines found through <discovery>.",
    takes_discovery: true,
    flags: FLAGS,
    notes: "Cluster options (--cluster-opt key=value):\n  \
            swarm.overcommit=0.05   Fraction of each engine's CPUs and memory that may be \
            reserved\n  \x20                       beyond its capacity; must be above -1\n  \
            swarm.createretry=0     How many more times a failed container create is retried on\n  \
            \x20                       another engine\n",
    build,
};

const FLAGS: &[FlagDef] = &[
    FlagDef {
        name: "strategy",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<name>",
        default: Some("spread"),
        env: None,
        help: "Placement strategy: spread, binpack or random",
    },
    FlagDef {
        name: "filter",
        aliases: &["f"],
        arity: Arity::Repeated,
        value_name: "<name>",
        default: Some("health, port, containerslots, dependency, affinity, constraint, whitelist"),
        env: None,
        help: "Scheduling filter; when given, exactly the filters named are used, in that order",
    },
    FlagDef {
        name: "host",
        aliases: &["H"],
        arity: Arity::Repeated,
        value_name: "<addr>",
        default: Some(DEFAULT_HOST),
        env: Some("SWARM_HOST"),
        help: "Address to listen on: [tcp://]host:port, :port (all interfaces) or unix:///path \
               (the variable holds a comma-separated list)",
    },
    FlagDef {
        name: "replication",
        aliases: &[],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Run for leader election among managers (needs consul, etcd or zk discovery and \
               --advertise)",
    },
    FlagDef {
        name: "replication-ttl",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("20s"),
        env: None,
        help: "How long the leader lock outlives a primary that stops renewing it",
    },
    FlagDef {
        name: "advertise",
        aliases: &["addr"],
        arity: Arity::Single,
        value_name: "<host:port>",
        default: None,
        env: Some("SWARM_ADVERTISE"),
        help: "Address at which the other managers reach this one",
    },
    FlagDef {
        name: "tls",
        aliases: &[],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Serve TLS with --tlscert/--tlskey and present them to engines",
    },
    FlagDef {
        name: "tlscacert",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<path>",
        default: None,
        env: None,
        help: "CA certificate that clients and engines must be signed by (with --tlsverify)",
    },
    FlagDef {
        name: "tlscert",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<path>",
        default: None,
        env: None,
        help: "TLS certificate file",
    },
    FlagDef {
        name: "tlskey",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<path>",
        default: None,
        env: None,
        help: "TLS private key file",
    },
    FlagDef {
        name: "tlsverify",
        aliases: &[],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Like --tls, and require client certificates signed by --tlscacert",
    },
    FlagDef {
        name: "engine-refresh-min-interval",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("30s"),
        env: None,
        help: "Shortest delay between two refreshes of an engine",
    },
    FlagDef {
        name: "engine-refresh-max-interval",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("60s"),
        env: None,
        help: "Longest delay between two refreshes of an engine",
    },
    FlagDef {
        name: "engine-failure-retry",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<count>",
        default: Some("3"),
        env: None,
        help: "Consecutive failures after which an engine is marked unhealthy",
    },
    FlagDef {
        name: "engine-call-timeout",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("30s"),
        env: None,
        help: "How long an engine may take to start answering a call before the client gets \
               504 and the call counts as a failure; at least 1s",
    },
    FlagDef {
        name: "api-header-timeout",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("30s"),
        env: None,
        help: "How long a client may take to send a request's headers (also the idle timeout \
               of kept-alive connections); at least 1s",
    },
    FlagDef {
        name: "api-max-connections",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<count>",
        default: Some("0"),
        env: None,
        help: "Client connections open at once over all listeners; 0 derives the cap from the \
               open-file limit",
    },
    FlagDef {
        name: "api-max-body-size",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<bytes>",
        default: Some("16777216"),
        env: None,
        help: "Largest request body read whole (create, exec, network and volume bodies); \
               larger ones get 413",
    },
    FlagDef {
        name: "api-write-stall-timeout",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("2m"),
        env: None,
        help: "How long a client may stop reading an answer before its connection is closed",
    },
    FlagDef {
        name: "metrics-addr",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<addr>",
        default: None,
        env: None,
        help: "Address to serve Prometheus metrics on (/metrics); off when empty",
    },
    FlagDef {
        name: "engine-refresh-retry",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<count>",
        default: Some("3"),
        env: None,
        help: "Deprecated, use --engine-failure-retry",
    },
    FlagDef {
        name: "heartbeat",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<duration>",
        default: Some("60s"),
        env: None,
        help: "Poll period of file:// and token:// discovery and retry delay of key-value \
               watches; at least 1s",
    },
    FlagDef {
        name: "api-enable-cors",
        aliases: &["cors"],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Send CORS headers in API responses",
    },
    FlagDef {
        name: "cluster-driver",
        aliases: &["c"],
        arity: Arity::Single,
        value_name: "<name>",
        default: Some("swarm"),
        env: None,
        help: "Cluster driver (only swarm)",
    },
    FlagDef {
        name: "cluster-opt",
        aliases: &[],
        arity: Arity::Repeated,
        value_name: "<key=value>",
        default: None,
        env: None,
        help: "Cluster option, see below",
    },
    DISCOVERY_OPT_FLAG,
    FlagDef {
        name: "refresh-on-node-filter",
        aliases: &[],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Refresh an engine's containers before answering a container list filtered by \
               that node",
    },
    FlagDef {
        name: "container-name-refresh-filter",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<name>",
        default: None,
        env: None,
        help: "Refresh every engine's containers before answering a container list filtered by \
               exactly this name",
    },
];

fn invalid(message: impl Into<String>) -> CliError {
    CliError::Invalid(message.into())
}

fn build(context: &mut Context<'_>, matches: &Matches<'_>) -> Result<Command, CliError> {
    let env = context.env;
    let hint = format!("See '{} manage --help'.", context.program);

    // 1. TLS flag combinations.
    let verify = matches.switch("tlsverify");
    let tls = matches.switch("tls") || verify;
    let path = |name| matches.last(name).map(PathBuf::from);
    let (ca, cert, key) = (path("tlscacert"), path("tlscert"), path("tlskey"));
    if tls {
        if cert.is_none() || key.is_none() {
            return Err(invalid(
                "--tlscert and --tlskey must be provided when using --tls",
            ));
        }
        if verify && ca.is_none() {
            return Err(invalid(
                "--tlscacert must be provided when using --tlsverify",
            ));
        }
    } else if cert.is_some() || key.is_some() || ca.is_some() {
        return Err(invalid(
            "--tlscert, --tlskey and --tlscacert require the use of either --tls or --tlsverify",
        ));
    }

    // 2. Engine refresh settings. The original read these intervals leniently: garbage is zero.
    let lenient = |name| {
        duration::parse(matches.value(name))
            .map(|parsed| parsed.as_nanos())
            .unwrap_or(0)
    };
    let (min_interval, max_interval) = (
        lenient("engine-refresh-min-interval"),
        lenient("engine-refresh-max-interval"),
    );
    if min_interval <= 0 {
        return Err(invalid("min refresh interval should be a positive number"));
    }
    if max_interval < min_interval {
        return Err(invalid(
            "max refresh interval cannot be less than min refresh interval",
        ));
    }
    let int_flag = |name: &str| {
        parse_int_base0(matches.value(name)).map_err(|error| {
            CliError::Usage(format!(
                "invalid value {} for flag --{name}: {}. {hint}",
                quote(matches.value(name)),
                error.reason()
            ))
        })
    };
    if int_flag("engine-refresh-retry")? != 3 {
        return Err(invalid(
            "--engine-refresh-retry is deprecated. Use --engine-failure-retry",
        ));
    }
    let failure_retry = int_flag("engine-failure-retry")?;
    if failure_retry <= 0 {
        return Err(invalid("invalid failure retry count"));
    }
    let at_least_a_second = |name: &str| {
        duration::parse(matches.value(name))
            .map_err(|error| invalid(format!("invalid --{name}: {error}")))?
            .to_std()
            .filter(|t| *t >= Duration::from_secs(1))
            .ok_or_else(|| invalid(format!("--{name} should be at least one second")))
    };
    let engine_call_timeout = at_least_a_second("engine-call-timeout")?;
    let api_header_timeout = at_least_a_second("api-header-timeout")?;
    let api_write_stall_timeout = at_least_a_second("api-write-stall-timeout")?;
    let api_max_connections = match int_flag("api-max-connections")? {
        0 => None,
        n if n < 0 => return Err(invalid("--api-max-connections cannot be negative")),
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let api_max_body_size = match int_flag("api-max-body-size")? {
        n if n < 1024 => return Err(invalid("--api-max-body-size should be at least 1024 bytes")),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let metrics_addr = match matches.value("metrics-addr") {
        "" => None,
        addr => Some(addr.parse().map_err(|_| {
            invalid(format!(
                "invalid --metrics-addr {}: not an ip:port address",
                quote(addr)
            ))
        })?),
    };

    // 3–4. Discovery.
    let discovery = discovery_argument(matches, env);
    if discovery.is_empty() {
        return Err(invalid(format!(
            "discovery required to manage a cluster. See '{} manage --help'.",
            context.program
        )));
    }
    let heartbeat = heartbeat(matches)?;
    let discovery_opts = discovery_opts(matches)?;
    let scheme = check_discovery(&discovery)?;

    // 5. Scheduler and cluster.
    let strategy = match matches.value("strategy") {
        "binpacking" => "binpack",
        name => name,
    };
    if !STRATEGIES.contains(&strategy) {
        return Err(invalid("strategy not supported"));
    }
    let filters: Vec<String> = if matches.is_set("filter") {
        matches
            .all("filter")
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        FILTERS.iter().map(|name| name.to_string()).collect()
    };
    if filters.iter().any(|name| !FILTERS.contains(&name.as_str())) {
        return Err(invalid("filter not supported"));
    }
    let driver = matches.value("cluster-driver");
    if driver != "swarm" {
        return Err(invalid(format!("unsupported cluster {}", quote(driver))));
    }
    let (overcommit, create_retry) = cluster_options(matches, &mut context.warnings)?;

    // 6. Replication.
    let replication = matches.switch("replication");
    let advertise = matches.value_or_env("advertise", env);
    let default_ttl = Duration::from_secs(20);
    let replication_ttl = if replication {
        if advertise.is_empty() {
            return Err(invalid(
                "--advertise address must be provided when using --leader-election",
            ));
        }
        if !is_host_port(&advertise) {
            return Err(bad_advertise());
        }
        let ttl = duration::parse(matches.value("replication-ttl"))
            .map_err(|error| invalid(format!("invalid --replication-ttl: {error}")))?;
        let ttl = ttl
            .to_std()
            .filter(|ttl| !ttl.is_zero())
            .ok_or_else(|| invalid("--replication-ttl should be a positive number"))?;
        if !scheme.is_key_value() {
            return Err(invalid(
                "Leader election is only supported with consul, etcd and zookeeper discovery.",
            ));
        }
        ttl
    } else {
        // Unused without replication; the original did not even parse it then.
        duration::parse(matches.value("replication-ttl"))
            .ok()
            .and_then(|ttl| ttl.to_std())
            .filter(|ttl| !ttl.is_zero())
            .unwrap_or(default_ttl)
    };

    // 7. Listen addresses.
    let hosts = listen_addresses(matches, env)?
        .iter()
        .map(|host| normalize_host(host))
        .collect::<Result<Vec<_>, _>>()?;

    let non_empty = |value: String| Some(value).filter(|value| !value.is_empty());
    Ok(Command::Manage(ManageOptions {
        discovery,
        hosts,
        strategy: strategy.to_string(),
        filters,
        replication,
        replication_ttl,
        advertise: non_empty(advertise),
        tls: TlsOptions {
            tls,
            verify,
            ca,
            cert,
            key,
        },
        engine_refresh_min_interval: Duration::from_nanos(min_interval as u64),
        engine_refresh_max_interval: Duration::from_nanos(max_interval as u64),
        engine_failure_retry: u32::try_from(failure_retry).unwrap_or(u32::MAX),
        engine_call_timeout,
        api_header_timeout,
        api_max_connections,
        api_max_body_size,
        api_write_stall_timeout,
        metrics_addr,
        heartbeat,
        cors: matches.switch("api-enable-cors"),
        overcommit,
        create_retry,
        discovery_opts,
        refresh_on_node_filter: matches.switch("refresh-on-node-filter"),
        container_name_refresh_filter: non_empty(
            matches.value("container-name-refresh-filter").to_string(),
        ),
    }))
}

/// `swarm.overcommit` and `swarm.createretry` from `--cluster-opt`. The first occurrence of a key
/// wins and unparseable numbers count as 0, as in the original; unknown keys are ignored with a
/// warning (the original ignored them silently, which hid typos).
fn cluster_options(
    matches: &Matches<'_>,
    warnings: &mut Vec<String>,
) -> Result<(f64, i64), CliError> {
    let mut overcommit: Option<f64> = None;
    let mut create_retry: Option<i64> = None;
    for option in matches.all("cluster-opt") {
        let Some((key, value)) = option.split_once('=') else {
            return Err(invalid("--cluster-opt must contain key=value strings"));
        };
        match key {
            "swarm.overcommit" if overcommit.is_none() => {
                overcommit = Some(parse_float_lenient(value));
            }
            "swarm.createretry" if create_retry.is_none() => {
                create_retry = Some(parse_int_base0_lenient(value));
            }
            "swarm.overcommit" | "swarm.createretry" => {}
            unknown => warnings.push(format!(
                "Ignoring unknown cluster option {}",
                quote(unknown)
            )),
        }
    }
    let overcommit = overcommit.unwrap_or(0.05);
    if overcommit.is_nan() || overcommit <= -1.0 {
        return Err(invalid(format!(
            "swarm.overcommit should be larger than -1, {} is invalid",
            format_float_f(overcommit)
        )));
    }
    if overcommit < 0.0 {
        warnings.push(
            "-1 < swarm.overcommit < 0 makes swarm reserve less than the engines offer".to_string(),
        );
    }
    let create_retry = create_retry.unwrap_or(0);
    if create_retry < 0 {
        return Err(invalid(format!(
            "swarm.createretry can not be negative, {create_retry} is invalid"
        )));
    }
    Ok((overcommit, create_retry))
}

/// `-H` values when given (they replace `SWARM_HOST` entirely, fixing the original's habit of
/// keeping all but the first environment entry), else the `SWARM_HOST` list, else the default.
fn listen_addresses(
    matches: &Matches<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, CliError> {
    if matches.is_set("host") {
        return Ok(matches
            .all("host")
            .into_iter()
            .map(str::to_string)
            .collect());
    }
    let from_env: Vec<String> = env("SWARM_HOST")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_string)
        .collect();
    if from_env.is_empty() {
        Ok(vec![DEFAULT_HOST.to_string()])
    } else {
        Ok(from_env)
    }
}

/// `[tcp://|unix://]address` to `tcp://host:port` or `unix://path`: no scheme means tcp, a bare
/// `:port` means all interfaces.
pub(crate) fn normalize_host(host: &str) -> Result<String, CliError> {
    let (protocol, address) = host.split_once("://").unwrap_or(("tcp", host));
    match protocol {
        "tcp" => {
            let address = if address.starts_with(':') {
                format!("0.0.0.0{address}")
            } else {
                address.to_string()
            };
            crate::discovery::split_host_port(&address)
                .map_err(|error| invalid(format!("invalid --host {}: {error}", quote(host))))?;
            Ok(format!("tcp://{address}"))
        }
        "unix" if address.is_empty() => Err(invalid(format!(
            "invalid --host {}: missing socket path",
            quote(host)
        ))),
        "unix" => Ok(format!("unix://{address}")),
        other => Err(invalid(format!("unsupported protocol: {}", quote(other)))),
    }
}

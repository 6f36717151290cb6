//! `swarm manage`: its flags and every check the classic manager made before listening, in the
//! same order (so the first problem reported is the same one). Certificate files are not read here;
//! loading them is the TLS module's job.
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{self, GoDuration};
use super::go_values::{
    format_float_f, go_int, parse_float_lenient, parse_int_base0_lenient, quote,
};
use super::{
    bad_advertise, check_discovery, discovery_argument, discovery_opts, heartbeat, is_host_port,
    CliError, Command, Context, ManageOptions, TlsOptions,
};

/// Where the manager listens when neither `-H` nor `SWARM_HOST` says otherwise.
pub(crate) const DEFAULT_HOST: &str = "tcp://127.0.0.1:2375";

/// Every scheduling filter, in the default order: the scheduler's own list.
pub(crate) const FILTERS: [&str; 7] = crate::scheduler::filter::DEFAULT_FILTERS;

const STRATEGIES: [&str; 3] = ["spread", "binpack", "random"];

/// One-line description.
pub(crate) const SUMMARY: &str = "Manage a Docker cluster";

/// `swarm manage [OPTIONS] <discovery>`. Durations that the original read leniently (the refresh
/// intervals, the replication TTL) stay text here and are read in [`build`].
#[derive(Debug, clap::Args)]
#[command(
    about = SUMMARY,
    long_about = "Serves the Docker API on the --host addresses and schedules containers across \
                  the engines found through <discovery>.",
    after_help = "Cluster options (--cluster-opt key=value):\n  \
            swarm.overcommit=0.05   Fraction of each engine's CPUs and memory that may be \
            reserved\n  \x20                       beyond its capacity; must be above -1\n  \
            swarm.createretry=0     How many more times a failed container create is retried on\n  \
            \x20                       another engine\n"
)]
pub(crate) struct ManageArgs {
    #[arg(value_name = "discovery")]
    discovery: Vec<String>,
    /// Placement strategy: spread, binpack or random
    #[arg(long, value_name = "name", default_value = "spread")]
    strategy: String,
    /// Scheduling filter; when given, exactly the filters named are used, in that order
    #[arg(short = 'f', long, value_name = "name", default_values = FILTERS)]
    filter: Vec<String>,
    /// Address to listen on: [tcp://]host:port, :port (all interfaces) or unix:///path (the
    /// variable holds a comma-separated list)
    #[arg(short = 'H', long, value_name = "addr", default_value = DEFAULT_HOST, env = "SWARM_HOST")]
    host: Vec<String>,
    /// Run for leader election among managers (needs consul, etcd or zk discovery and
    /// --advertise)
    #[arg(long)]
    replication: bool,
    /// How long the leader lock outlives a primary that stops renewing it
    #[arg(long, value_name = "duration", default_value = "20s")]
    replication_ttl: String,
    /// Address at which the other managers reach this one
    #[arg(
        long,
        visible_alias = "addr",
        value_name = "host:port",
        env = "SWARM_ADVERTISE"
    )]
    advertise: Option<String>,
    /// Serve TLS with --tlscert/--tlskey and present them to engines
    #[arg(long)]
    tls: bool,
    /// CA certificate that clients and engines must be signed by (with --tlsverify)
    #[arg(long, value_name = "path")]
    tlscacert: Option<PathBuf>,
    /// TLS certificate file
    #[arg(long, value_name = "path")]
    tlscert: Option<PathBuf>,
    /// TLS private key file
    #[arg(long, value_name = "path")]
    tlskey: Option<PathBuf>,
    /// Like --tls, and require client certificates signed by --tlscacert
    #[arg(long)]
    tlsverify: bool,
    /// Shortest delay between two refreshes of an engine
    #[arg(long, value_name = "duration", default_value = "30s")]
    engine_refresh_min_interval: String,
    /// Longest delay between two refreshes of an engine
    #[arg(long, value_name = "duration", default_value = "60s")]
    engine_refresh_max_interval: String,
    /// Consecutive failures after which an engine is marked unhealthy
    #[arg(long, value_name = "count", default_value = "3", value_parser = go_int)]
    engine_failure_retry: i64,
    /// How long an engine may take to start answering a call before the client gets 504 and
    /// the call counts as a failure; at least 1s
    #[arg(long, value_name = "duration", default_value = "30s", value_parser = duration::parse)]
    engine_call_timeout: GoDuration,
    /// How long a client may take to send a request's headers (also the idle timeout of
    /// kept-alive connections); at least 1s
    #[arg(long, value_name = "duration", default_value = "30s", value_parser = duration::parse)]
    api_header_timeout: GoDuration,
    /// Client connections open at once over all listeners; 0 derives the cap from the
    /// open-file limit
    #[arg(long, value_name = "count", default_value = "0", value_parser = go_int)]
    api_max_connections: i64,
    /// Largest request body read whole (create, exec, network and volume bodies); larger ones
    /// get 413
    #[arg(long, value_name = "bytes", default_value = "16777216", value_parser = go_int)]
    api_max_body_size: i64,
    /// How long a client may stop reading an answer before its connection is closed
    #[arg(long, value_name = "duration", default_value = "2m", value_parser = duration::parse)]
    api_write_stall_timeout: GoDuration,
    /// Deprecated, use --engine-failure-retry
    #[arg(long, value_name = "count", default_value = "3", value_parser = go_int)]
    engine_refresh_retry: i64,
    /// Poll period of file:// and token:// discovery and retry delay of key-value watches; at
    /// least 1s
    #[arg(long, value_name = "duration", default_value = "60s", value_parser = duration::parse)]
    heartbeat: GoDuration,
    /// Send CORS headers in API responses
    #[arg(long, visible_alias = "cors")]
    api_enable_cors: bool,
    /// Cluster driver (only swarm)
    #[arg(short = 'c', long, value_name = "name", default_value = "swarm")]
    cluster_driver: String,
    /// Cluster option, see below
    #[arg(long, value_name = "key=value")]
    cluster_opt: Vec<String>,
    #[arg(long, value_name = "key=value", help = super::DISCOVERY_OPT_HELP)]
    discovery_opt: Vec<String>,
    /// Refresh an engine's containers before answering a container list filtered by that node
    #[arg(long)]
    refresh_on_node_filter: bool,
    /// Refresh every engine's containers before answering a container list filtered by exactly
    /// this name
    #[arg(long, value_name = "name")]
    container_name_refresh_filter: Option<String>,
    /// Address to serve Prometheus metrics on (/metrics); off when empty
    #[arg(long, value_name = "addr")]
    metrics_addr: Option<String>,
}

fn invalid(message: impl Into<String>) -> CliError {
    CliError::Invalid(message.into())
}

pub(crate) fn build(context: &mut Context<'_>, args: ManageArgs) -> Result<Command, CliError> {
    // 0. A bad --metrics-addr is a bad value, reported as clap reports the others: first.
    let metrics_addr = match args.metrics_addr.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse().map_err(|error| {
            CliError::Usage(format!(
                "invalid value {} for flag --metrics-addr: {error}. {}",
                quote(text),
                context.hint
            ))
        })?),
    };

    // 1. TLS flag combinations.
    let verify = args.tlsverify;
    let tls = args.tls || verify;
    let (ca, cert, key) = (args.tlscacert, args.tlscert, args.tlskey);
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
    let lenient = |text: &str| {
        duration::parse(text)
            .map(|parsed| parsed.as_nanos())
            .unwrap_or(0)
    };
    let (min_interval, max_interval) = (
        lenient(&args.engine_refresh_min_interval),
        lenient(&args.engine_refresh_max_interval),
    );
    if min_interval <= 0 {
        return Err(invalid("min refresh interval should be a positive number"));
    }
    if max_interval < min_interval {
        return Err(invalid(
            "max refresh interval cannot be less than min refresh interval",
        ));
    }
    if args.engine_refresh_retry != 3 {
        return Err(invalid(
            "--engine-refresh-retry is deprecated. Use --engine-failure-retry",
        ));
    }
    let failure_retry = args.engine_failure_retry;
    if failure_retry <= 0 {
        return Err(invalid("invalid failure retry count"));
    }
    let at_least_a_second = |name: &str, parsed: GoDuration| {
        parsed
            .to_std()
            .filter(|t| *t >= Duration::from_secs(1))
            .ok_or_else(|| invalid(format!("--{name} should be at least one second")))
    };
    let engine_call_timeout = at_least_a_second("engine-call-timeout", args.engine_call_timeout)?;
    let api_header_timeout = at_least_a_second("api-header-timeout", args.api_header_timeout)?;
    let api_write_stall_timeout =
        at_least_a_second("api-write-stall-timeout", args.api_write_stall_timeout)?;
    let api_max_connections = match args.api_max_connections {
        0 => None,
        n if n < 0 => return Err(invalid("--api-max-connections cannot be negative")),
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let api_max_body_size = match args.api_max_body_size {
        n if n < 1024 => return Err(invalid("--api-max-body-size should be at least 1024 bytes")),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };

    // 3–4. Discovery.
    let env = context.env;
    let discovery = discovery_argument(&args.discovery, env);
    if discovery.is_empty() {
        return Err(invalid(format!(
            "discovery required to manage a cluster. See '{} manage --help'.",
            context.program
        )));
    }
    let heartbeat = heartbeat(args.heartbeat)?;
    let discovery_opts = discovery_opts(&args.discovery_opt)?;
    let scheme = check_discovery(&discovery)?;

    // 5. Scheduler and cluster.
    let strategy = match args.strategy.as_str() {
        "binpacking" => "binpack",
        name => name,
    };
    if !STRATEGIES.contains(&strategy) {
        return Err(invalid("strategy not supported"));
    }
    let filters = args.filter;
    if filters.iter().any(|name| !FILTERS.contains(&name.as_str())) {
        return Err(invalid("filter not supported"));
    }
    if args.cluster_driver != "swarm" {
        return Err(invalid(format!(
            "unsupported cluster {}",
            quote(&args.cluster_driver)
        )));
    }
    let (overcommit, create_retry) = cluster_options(&args.cluster_opt, &mut context.warnings)?;

    // 6. Replication.
    let replication = args.replication;
    let advertise = args.advertise.unwrap_or_default();
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
        let ttl = duration::parse(&args.replication_ttl)
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
        duration::parse(&args.replication_ttl)
            .ok()
            .and_then(|ttl| ttl.to_std())
            .filter(|ttl| !ttl.is_zero())
            .unwrap_or(default_ttl)
    };

    // 7. Listen addresses: `-H` values replace `SWARM_HOST` entirely (the original kept all but
    // the first environment entry), and the list falls back to the default.
    let hosts = args
        .host
        .iter()
        .map(|host| normalize_host(host))
        .collect::<Result<Vec<_>, _>>()?;

    let non_empty = |value: Option<String>| value.filter(|value| !value.is_empty());
    Ok(Command::Manage(ManageOptions {
        discovery,
        hosts,
        strategy: strategy.to_string(),
        filters,
        replication,
        replication_ttl,
        advertise: non_empty(Some(advertise)),
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
        heartbeat,
        cors: args.api_enable_cors,
        overcommit,
        create_retry,
        discovery_opts,
        refresh_on_node_filter: args.refresh_on_node_filter,
        container_name_refresh_filter: non_empty(args.container_name_refresh_filter),
        metrics_addr,
    }))
}

/// `swarm.overcommit` and `swarm.createretry` from `--cluster-opt`. The first occurrence of a key
/// wins and unparseable numbers count as 0, as in the original; unknown keys are ignored with a
/// warning (the original ignored them silently, which hid typos).
fn cluster_options(options: &[String], warnings: &mut Vec<String>) -> Result<(f64, i64), CliError> {
    let mut overcommit: Option<f64> = None;
    let mut create_retry: Option<i64> = None;
    for option in options {
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

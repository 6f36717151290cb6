// Provisional entry point (replaced by the full one).
fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,shoal=debug"))
        .init();
    let args: Vec<String> = std::env::args().collect();
    let opts = shoal::cli::ManageOptions {
        discovery: args[2].clone(),
        hosts: vec![args[1].clone()],
        strategy: "spread".into(),
        filters: vec!["health".into()],
        replication: false,
        replication_ttl: std::time::Duration::from_secs(20),
        advertise: None,
        tls: Default::default(),
        engine_refresh_min_interval: std::time::Duration::from_secs(1),
        engine_refresh_max_interval: std::time::Duration::from_secs(2),
        engine_failure_retry: 2,
        heartbeat: std::time::Duration::from_secs(1),
        cors: false,
        overcommit: 0.05,
        create_retry: 0,
        discovery_opts: vec![],
        refresh_on_node_filter: false,
        container_name_refresh_filter: None,
    };
    let global = shoal::cli::GlobalOptions {
        debug: false,
        log_level: "info".into(),
        experimental: false,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(shoal::manage::run(global, opts)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

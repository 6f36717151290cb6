//! Serves many simulated Docker engines on loopback ports, for scale runs and fault injection.
//!
//! ```sh
//! cargo run --release --example engine_simulator -- --engines 1000 --containers 30 --out /tmp/engines
//! swarm manage -H 127.0.0.1:2375 file:///tmp/engines
//! ```
//!
//! A control port (printed at start) takes fault injections:
//! `POST /engines/<index>/refuse`, `/hang`, `/up`, `/break-events`, `/latency?ms=N`.
mod measure;
mod simulator;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use measure::arg;
use simulator::{Mode, SimFleet};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let engines: usize = arg(&args, "--engines", "10").parse().unwrap_or(10);
    let containers: usize = arg(&args, "--containers", "30").parse().unwrap_or(30);
    let out = arg(&args, "--out", "");
    let fleet = Arc::new(SimFleet::start(engines, containers).await?);
    if out.is_empty() {
        println!("{}", fleet.nodes_url());
    } else {
        std::fs::write(&out, fleet.addrs().join("\n") + "\n")?;
        println!("file://{out}");
    }
    let control = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    eprintln!(
        "simulating {engines} engines x {containers} containers; control on http://{}",
        control.local_addr()?
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            accepted = control.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let fleet = fleet.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let fleet = fleet.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let query = req.uri().query().unwrap_or("").to_string();
                            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                            let reply = match parts.as_slice() {
                                ["engines", i, action] => match i.parse::<usize>().ok().and_then(|i| fleet.engines.get(i)) {
                                    Some(e) => {
                                        match *action {
                                            "refuse" => e.set_mode(Mode::Refuse),
                                            "hang" => e.set_mode(Mode::Hang),
                                            "up" => e.set_mode(Mode::Up),
                                            "break-events" => e.break_events(),
                                            "latency" => e.set_latency(
                                                query.strip_prefix("ms=").and_then(|v| v.parse().ok()).unwrap_or(0),
                                            ),
                                            _ => {}
                                        }
                                        "ok\n"
                                    }
                                    None => "no such engine\n",
                                },
                                _ => "unknown\n",
                            };
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(reply))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

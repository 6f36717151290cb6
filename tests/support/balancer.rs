//! A real HAProxy in front of several managers, as an operator would run it: TCP mode, round
//! robin per connection, a readiness check (`GET /_ping?ready=1`) every 500 ms, `retries` and
//! `option redispatch`. The configuration is the one `docs/ha.md` documents.
//!
//! The process is Debian's `haproxy` binary run in the foreground with a configuration written
//! to a temporary directory (never the packaged service); it is stopped when dropped.
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;

use super::manager::free_port;
use rustix::process::Signal;

use super::processes::{self, spawn_tied, tied_command};
use super::{poll_until, SupportError};

/// How long HAProxy may take to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The HAProxy configuration for `managers`, listening on `port`.
pub fn haproxy_config(port: u16, managers: &[String]) -> String {
    let mut config = format!(
        "global\n\
         \x20   maxconn 256\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 1s\n\
         \x20   timeout check 1s\n\
         \x20   timeout client 120s\n\
         \x20   timeout server 120s\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         listen managers\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk\n\
         \x20   http-check send meth GET uri /_ping?ready=1\n\
         \x20   http-check expect status 200\n\
         \x20   default-server inter 500ms fall 1 rise 1\n"
    );
    for (index, manager) in managers.iter().enumerate() {
        config.push_str(&format!("    server manager{index} {manager} check\n"));
    }
    config
}

/// A running HAProxy in front of some managers.
pub struct Balancer {
    port: u16,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
    /// Holds the configuration and log; declared last so it outlives the process.
    _dir: TempDir,
}

impl Balancer {
    /// Starts HAProxy in front of `managers` (`host:port` each); panics with its log on failure.
    #[track_caller]
    pub fn start(managers: &[String]) -> Balancer {
        Self::try_start(managers).unwrap_or_else(|e| panic!("cannot start haproxy:\n{e}"))
    }

    fn try_start(managers: &[String]) -> Result<Balancer, SupportError> {
        let dir = tempfile::Builder::new()
            .prefix("shoal-haproxy-")
            .tempdir()?;
        let port = free_port();
        let config_path = dir.path().join("haproxy.cfg");
        fs::write(&config_path, haproxy_config(port, managers))?;
        let log_path = dir.path().join("haproxy.log");
        let log = fs::File::create(&log_path)?;
        let mut command = tied_command("haproxy");
        command
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_tied(command)?;
        let balancer = Balancer {
            port,
            log_path,
            child: Mutex::new(Some(child)),
            _dir: dir,
        };
        let address = balancer.addr();
        if !poll_until(START_TIMEOUT, || {
            std::net::TcpStream::connect(&address).is_ok()
        }) {
            return Err(SupportError::new(format!(
                "haproxy does not listen on {address} after {START_TIMEOUT:?}:\n{}",
                balancer.logs()
            )));
        }
        Ok(balancer)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `tcp://127.0.0.1:PORT`, for `docker -H`.
    pub fn host(&self) -> String {
        format!("tcp://{}", self.addr())
    }

    /// What HAProxy wrote so far (server state changes among others).
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Stops HAProxy (SIGTERM, then SIGKILL after two seconds).
    pub fn stop(&self) {
        let taken = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = taken {
            processes::signal(child.id(), Signal::TERM);
            if !processes::wait_child(&mut child, Duration::from_secs(2)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop();
    }
}

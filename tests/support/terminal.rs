//! Running docker CLI commands under a pseudo-terminal, for `-it` runs and execs.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::DockerCli;

/// Runs a docker command under a pseudo-terminal (`script`), feeding `input` slowly.
pub fn in_terminal(cli: &DockerCli, host: &str, args: &str, input: &[&str]) -> String {
    let cmd = format!("{} -H {host} {args}", cli.path().display());
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("DOCKER_CONFIG", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    for line in input {
        std::thread::sleep(Duration::from_millis(700));
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

//! Hijacked exec streams between plain sockets, which the manager moves in the kernel
//! (`splice(2)`): a large stdout arrives intact, and stdin's end still ends the command, with
//! every docker CLI flavour.
mod support;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{wait_until, DockerCli, EngineSet, Manager};

/// The stdout of the large exec: 64 MiB.
const LARGE: usize = 64 << 20;

/// How long one transfer may take, however loaded the machine.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `command` with stdin from `input` (or none) and stdout into `output`, killing it after
/// [`TRANSFER_TIMEOUT`]; panics unless it exits with status 0.
fn run_to_file(mut command: Command, input: Option<&Path>, output: &Path) {
    let stdin = match input {
        Some(path) => Stdio::from(File::open(path).unwrap()),
        None => Stdio::null(),
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::from(File::create(output).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("docker CLI");
    let deadline = Instant::now() + TRANSFER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {TRANSFER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{command:?}: {status}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes no compressor or pattern check would mistake: a xorshift sequence.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn spliced_exec_streams_move_large_output_intact_and_pass_stdin_end() {
    let engines = EngineSet::start(1);
    // At debug level the manager logs how each relay moved its bytes.
    let m = Manager::builder()
        .global_arg("--log-level")
        .global_arg("debug")
        .start(&engines.nodes_url());
    let host = m.host();
    let modern = DockerCli::modern();
    wait_until(Duration::from_secs(30), "the engine healthy", || {
        modern
            .run(&host, &["info"])
            .stdout
            .contains("Status: Healthy")
    });
    modern
        .run(
            &host,
            &["run", "-d", "--name", "big", "busybox", "sleep", "600"],
        )
        .assert_success();
    let made = modern
        .run(
            &host,
            &[
                "exec",
                "big",
                "sh",
                "-c",
                &format!("head -c {LARGE} /dev/urandom > /data && sha256sum /data"),
            ],
        )
        .assert_success();
    let expected = made.stdout.split_whitespace().next().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    let sent = noise(8 << 20);
    std::fs::File::create(&input)
        .unwrap()
        .write_all(&sent)
        .unwrap();
    for cli in DockerCli::all() {
        // Stdout only: the engine sends the bytes as they are, with no TTY and nothing on
        // stdin. The client's copy of them must hash as the container's does.
        let output = dir.path().join(format!("{}-large", cli.label()));
        let mut command = cli.command(&host);
        command.args(["exec", "big", "cat", "/data"]);
        run_to_file(command, None, &output);
        let received = std::fs::read(&output).unwrap();
        assert_eq!(received.len(), LARGE, "{}: bytes received", cli.label());
        assert_eq!(sha256_hex(&received), expected, "{}: checksum", cli.label());

        // Stdin to its end: the client half-closes, cat sees end of input and exits, and the
        // command returns with everything echoed.
        let echoed = dir.path().join(format!("{}-echoed", cli.label()));
        let mut command = cli.command(&host);
        command.args(["exec", "-i", "big", "cat"]);
        run_to_file(command, Some(&input), &echoed);
        let echoed = std::fs::read(&echoed).unwrap();
        assert_eq!(echoed.len(), sent.len(), "{}: bytes echoed", cli.label());
        assert!(echoed == sent, "{}: the echo differs", cli.label());
    }
    // The streams above went through the kernel, not through the copy for TLS.
    wait_until(
        Duration::from_secs(10),
        "the relays logged their end",
        || m.logs().matches("spliced=true").count() >= 2 * DockerCli::all().len(),
    );
    assert!(!m.logs().contains("spliced=false"), "{}", m.logs());
}

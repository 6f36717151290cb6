//! `file://<path>`: a text file of engine addresses, read at once and then every heartbeat. One
//! address (or `[a:b]` range) per line; `#` starts a comment, blank lines are ignored. A new list
//! is reported only when it differs from the last one reported; read errors are reported every
//! time and polling goes on. There is nothing to register in.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    push_expanded, AddrError, Backend, DiscoveryError, Entry, RegisterFuture, Watch, WatchEvent,
};

/// The largest file read; a bigger one (far more than [`super::MAX_LIST_ADDRESSES`] lines) is
/// reported as an error rather than read into memory every heartbeat.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// A heartbeat of zero would spin; polls are at least this far apart.
const MIN_POLL_PERIOD: Duration = Duration::from_millis(10);

/// Addresses in a file's content, ranges expanded, in file order. Lines are trimmed; a line that
/// starts with `#` is skipped and text from an inline `#` on is dropped.
pub fn parse_content(content: &str) -> Result<Vec<Entry>, AddrError> {
    let mut entries = Vec::new();
    for line in content.lines() {
        let line = line.trim();
        let line = match line.find('#') {
            Some(comment) => line[..comment].trim_end(),
            None => line,
        };
        if line.is_empty() {
            continue;
        }
        push_expanded(line, &mut entries)?;
    }
    Ok(entries)
}

/// The backend for a polled file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBackend {
    /// The file, exactly as given after `file://`.
    path: PathBuf,
    /// Delay between two reads.
    heartbeat: Duration,
}

impl FileBackend {
    /// A backend reading `path` every `heartbeat`.
    pub fn new(path: impl Into<PathBuf>, heartbeat: Duration) -> Self {
        FileBackend {
            path: path.into(),
            heartbeat,
        }
    }

    /// Reads and parses the file once. The error text is what the watch reports.
    pub async fn fetch(&self) -> Result<Vec<Entry>, String> {
        let content = read(&self.path)
            .await
            .map_err(|e| format!("failed to read '{}': {e}", self.path.display()))?;
        parse_content(&String::from_utf8_lossy(&content)).map_err(|e| e.to_string())
    }

    async fn run(self: Arc<Self>, sender: mpsc::Sender<WatchEvent>, shutdown: CancellationToken) {
        let period = self.heartbeat.max(MIN_POLL_PERIOD);
        let mut last_sent: Option<Vec<Entry>> = None;
        loop {
            let event = match self.fetch().await {
                Ok(entries) if last_sent.as_ref() == Some(&entries) => None,
                Ok(entries) => {
                    last_sent = Some(entries.clone());
                    Some(WatchEvent::Entries(entries))
                }
                Err(message) => Some(WatchEvent::Error(message)),
            };
            if let Some(event) = event {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    sent = sender.send(event) => if sent.is_err() { return },
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sender.closed() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    }
}

impl Backend for FileBackend {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch {
        Watch::spawn(8, |sender| self.run(sender, shutdown))
    }

    fn register<'a>(&'a self, _addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async { Err(DiscoveryError::NotImplemented) })
    }
}

/// Reads the whole file, wording failures the way the original did (`open /x: no such file or
/// directory`), since users compare these log lines with the classic ones.
async fn read(path: &Path) -> Result<Vec<u8>, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| go_style_error("open", path, &e))?;
    let mut content = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut content)
        .await
        .map_err(|e| go_style_error("read", path, &e))?;
    if content.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("read {}: file larger than 16 MiB", path.display()));
    }
    Ok(content)
}

fn go_style_error(operation: &str, path: &Path, error: &io::Error) -> String {
    let text = error.to_string();
    // std appends " (os error N)" to the C library's sentence; Go prints it in lower case.
    let text = match (error.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(cut)) => lowercase_first(&text[..cut]),
        _ => text,
    };
    format!("{operation} {}: {text}", path.display())
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn entries(list: &[(&str, &str)]) -> WatchEvent {
        WatchEvent::Entries(list.iter().map(|(h, p)| Entry::new(*h, *p)).collect())
    }

    #[test]
    fn content_skips_comments_and_blank_lines_and_expands_ranges() {
        let content = "\n  # a comment\n10.0.0.1:2375  \n\n  10.0.0.[2:3]:2375 # two more\n\
                       #10.0.0.9:2375\n\t[::1]:4000\r\n   \n";
        assert_eq!(
            parse_content(content).unwrap(),
            [
                Entry::new("10.0.0.1", "2375"),
                Entry::new("10.0.0.2", "2375"),
                Entry::new("10.0.0.3", "2375"),
                Entry::new("::1", "4000"),
            ]
        );
        assert_eq!(parse_content("").unwrap(), []);
        assert_eq!(parse_content("# only\n#comments").unwrap(), []);
    }

    #[test]
    fn a_bad_line_fails_the_whole_read() {
        assert_eq!(
            parse_content("a:1\n1.2.3.4\n").unwrap_err().to_string(),
            "address 1.2.3.4: missing port in address"
        );
    }

    #[tokio::test]
    async fn errors_read_like_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let backend = FileBackend::new(&missing, Duration::from_secs(1));
        assert_eq!(
            backend.fetch().await.unwrap_err(),
            format!(
                "failed to read '{0}': open {0}: no such file or directory",
                missing.display()
            )
        );
        let directory = FileBackend::new(dir.path(), Duration::from_secs(1));
        assert_eq!(
            directory.fetch().await.unwrap_err(),
            format!(
                "failed to read '{0}': read {0}: is a directory",
                dir.path().display()
            )
        );
    }

    #[tokio::test]
    async fn registering_is_not_possible() {
        let backend = FileBackend::new("/nonexistent", Duration::from_secs(1));
        assert_eq!(
            backend.register("a:1").await,
            Err(DiscoveryError::NotImplemented)
        );
    }

    /// A watch on a file in a fresh temporary directory; `None` leaves the file absent.
    struct WatchedFile {
        _dir: tempfile::TempDir,
        path: PathBuf,
        events: Watch,
        shutdown: CancellationToken,
    }

    fn watch_file(content: Option<&str>, heartbeat: Duration) -> WatchedFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster");
        if let Some(content) = content {
            fs::write(&path, content).unwrap();
        }
        let shutdown = CancellationToken::new();
        let events = Arc::new(FileBackend::new(&path, heartbeat)).watch(shutdown.clone());
        WatchedFile {
            _dir: dir,
            path,
            events,
            shutdown,
        }
    }

    /// Lets the watch task run until it waits on its timer again (file reads go through the
    /// blocking pool, which paused time does not see).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_reported_once_per_change() {
        let WatchedFile {
            _dir,
            path,
            mut events,
            shutdown,
        } = watch_file(Some("a:1\nb:2\n"), Duration::from_secs(10));

        assert_eq!(
            events.recv().await,
            Some(entries(&[("a", "1"), ("b", "2")]))
        );

        // Unchanged content (even if rewritten with a comment) is not reported again.
        fs::write(&path, "a:1\n# note\nb:2\n").unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
        settle().await;
        assert!(events.try_recv().is_err());

        fs::write(&path, "a:1\nb:2\nc:3\n").unwrap();
        assert_eq!(
            events.recv().await,
            Some(entries(&[("a", "1"), ("b", "2"), ("c", "3")]))
        );

        fs::write(&path, "c:3\n").unwrap();
        assert_eq!(events.recv().await, Some(entries(&[("c", "3")])));

        shutdown.cancel();
        assert_eq!(events.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_file_is_polled_every_heartbeat() {
        let WatchedFile {
            _dir,
            path,
            mut events,
            shutdown,
        } = watch_file(Some("a:1\n"), Duration::from_secs(60));
        assert_eq!(events.recv().await, Some(entries(&[("a", "1")])));
        let started = tokio::time::Instant::now();

        fs::write(&path, "b:2\n").unwrap();
        assert_eq!(events.recv().await, Some(entries(&[("b", "2")])));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
            "change seen after {waited:?}"
        );
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_file_is_reported_until_it_appears() {
        let WatchedFile {
            _dir,
            path,
            mut events,
            shutdown,
        } = watch_file(None, Duration::from_secs(5));

        let expected_error = format!(
            "failed to read '{0}': open {0}: no such file or directory",
            path.display()
        );
        assert_eq!(
            events.recv().await,
            Some(WatchEvent::Error(expected_error.clone()))
        );
        assert_eq!(events.recv().await, Some(WatchEvent::Error(expected_error)));

        fs::write(&path, "x:9\n").unwrap();
        let recovered = loop {
            match events.recv().await {
                Some(WatchEvent::Error(_)) => continue,
                other => break other,
            }
        };
        assert_eq!(recovered, Some(entries(&[("x", "9")])));

        // Losing the file again is reported, and the same list coming back is not re-sent.
        fs::remove_file(&path).unwrap();
        assert!(matches!(events.recv().await, Some(WatchEvent::Error(_))));
        fs::write(&path, "x:9\n").unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        settle().await;
        while let Ok(event) = events.try_recv() {
            assert!(
                matches!(event, WatchEvent::Error(_)),
                "unexpected {event:?}"
            );
        }
        shutdown.cancel();
        assert_eq!(events.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_file_reports_an_empty_list_first() {
        let mut watched = watch_file(Some("# nobody yet\n"), Duration::from_secs(5));
        assert_eq!(
            watched.events.recv().await,
            Some(WatchEvent::Entries(Vec::new()))
        );
        watched.shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_receiver_ends_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster");
        fs::write(&path, "a:1\n").unwrap();
        let backend = Arc::new(FileBackend::new(&path, Duration::from_secs(5)));
        let events = backend.clone().watch(CancellationToken::new());
        drop(events);
        settle().await;
        // Only the test's handle remains once the task has finished.
        assert_eq!(Arc::strong_count(&backend), 1);
    }
}

//! `nodes://a:1,b:2` (and the same list without a scheme): a fixed set of engine addresses given on
//! the command line. Parsed once; the list never changes, and there is nothing to register in.
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{push_expanded, Backend, DiscoveryError, Entry, RegisterFuture, Watch, WatchEvent};

/// Parses a comma-separated list of `host:port` items, each of which may hold one `[a:b]` range.
/// Every item must parse, empty ones included (as in the original, `a:1,` is an error).
pub fn parse_list(list: &str) -> Result<Vec<Entry>, DiscoveryError> {
    let mut entries = Vec::new();
    for item in list.split(',') {
        push_expanded(item, &mut entries).map_err(DiscoveryError::NodeAddress)?;
    }
    Ok(entries)
}

/// The backend for a fixed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodesBackend {
    /// The expanded list, in the order given.
    entries: Vec<Entry>,
}

impl NodesBackend {
    /// Parses the text after `nodes://` (or the whole bare list).
    pub fn new(list: &str) -> Result<Self, DiscoveryError> {
        Ok(NodesBackend {
            entries: parse_list(list)?,
        })
    }

    /// The addresses this backend reports.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Backend for NodesBackend {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch {
        Watch::spawn(1, |sender| {
            // The channel is empty and has room for one, so the list is waiting for the receiver
            // before this returns.
            let _ = sender.try_send(WatchEvent::Entries(self.entries.clone()));
            // Holding the sender until shutdown keeps the stream open: a closed stream would read
            // as "the discovery ended" to the consumer, and a fixed list never ends.
            async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = sender.closed() => {}
                }
            }
        })
    }

    fn register<'a>(&'a self, _addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async { Err(DiscoveryError::NotImplemented) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lists_keep_their_order_and_expand_ranges() {
        let backend = NodesBackend::new("b:2,a:1,10.0.0.[1:2]:2375,[::1]:4000").unwrap();
        assert_eq!(
            backend.entries(),
            [
                Entry::new("b", "2"),
                Entry::new("a", "1"),
                Entry::new("10.0.0.1", "2375"),
                Entry::new("10.0.0.2", "2375"),
                Entry::new("::1", "4000"),
            ]
        );
    }

    #[test]
    fn an_item_without_port_hints_at_token_discovery() {
        assert_eq!(
            NodesBackend::new("1.2.3.4").unwrap_err().to_string(),
            "address 1.2.3.4: missing port in address, please check you are using the correct \
             discovery (missing token:// ?)"
        );
        assert_eq!(
            NodesBackend::new("a:1,").unwrap_err().to_string(),
            "missing port in address, please check you are using the correct discovery \
             (missing token:// ?)"
        );
        assert!(matches!(
            NodesBackend::new("a:1,10.0.[1:2].[3:4]:1"),
            Err(DiscoveryError::NodeAddress(_))
        ));
        assert!(matches!(
            NodesBackend::new("::1:2375"),
            Err(DiscoveryError::NodeAddress(_))
        ));
    }

    #[test]
    fn an_empty_range_contributes_nothing() {
        let backend = NodesBackend::new("a:1,10.0.0.[5:1]:2375").unwrap();
        assert_eq!(backend.entries(), [Entry::new("a", "1")]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_list_is_sent_once_and_the_stream_stays_open_until_shutdown() {
        let backend = Arc::new(NodesBackend::new("a:1,b:2").unwrap());
        let shutdown = CancellationToken::new();
        let mut events = backend.watch(shutdown.clone());
        assert_eq!(
            events.recv().await,
            Some(WatchEvent::Entries(vec![
                Entry::new("a", "1"),
                Entry::new("b", "2")
            ]))
        );
        let quiet = tokio::time::timeout(Duration::from_secs(3600), events.recv()).await;
        assert!(quiet.is_err(), "nothing more arrives before shutdown");
        shutdown.cancel();
        assert_eq!(events.recv().await, None);
    }

    #[tokio::test]
    async fn registering_is_not_possible() {
        let backend = NodesBackend::new("a:1").unwrap();
        assert_eq!(
            backend.register("a:1").await.unwrap_err().to_string(),
            "not implemented in this discovery service"
        );
    }
}

//! Splicing an upgraded client connection to an upgraded upstream one (an engine for attach,
//! exec and BuildKit sessions; the primary manager for a replica's relay): bytes both ways, with
//! half-closes passed through. It knows nothing of requests, engines or the election.
/// The buffer of each direction of a spliced connection.
const SPLICE_BUFFER: usize = 64 << 10;

/// Once the client's connection and the one to `peer` (an engine, or the primary manager) have
/// both switched protocols, copies bytes both ways as they come until both directions end or
/// `stop`. When one side stops sending, the other side's write half is closed and the other
/// direction runs to its end, so half-closes pass through.
pub async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    peer: String,
    stop: tokio_util::sync::CancellationToken,
) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        (c, u) => {
            tracing::debug!(%peer, client_ok = c.is_ok(), peer_ok = u.is_ok(), "Upgrade failed");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    let copied = tokio::select! {
        () = stop.cancelled() => return,
        copied = tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut upstream,
            SPLICE_BUFFER,
            SPLICE_BUFFER,
        ) => copied,
    };
    match copied {
        Ok((up, down)) => tracing::debug!(%peer, up, down, "Upgraded stream ended"),
        Err(e) => tracing::debug!(%peer, error = %e, "Upgraded stream broke"),
    }
}

//! The cluster-wide event bus: every engine's events, with the node fields added, plus the
//! manager's own `engine_connect` / `engine_disconnect` / `engine_reconnect` events (SPEC §5.8).
//!
//! An engine's event is read once, into an [`EngineEvent`], as it arrives; the events monitor
//! goes by it to update the cache, and publishing turns it into a [`ClusterEvent`].
//!
//! Each event is serialised once when published and shared (never copied) by the history and
//! every listener's queue. Both are bounded by count and by bytes ([`EventLimits`]): the oldest
//! history is forgotten first, and a listener whose queue would exceed its budget is dropped (its
//! queue freed at once, one warning logged) rather than buffered without bound. The bus does no
//! I/O and never blocks a publisher.
//!
//! The event types and their reading live in `event`, the history and listener queues in `bus`;
//! both are re-exported here, so callers name them through `events`.
mod bus;
mod event;

pub use bus::{Ended, EventBus, EventLimits, ListenerGuard, Subscription};
pub use event::{ClusterEvent, EngineEvent, NodeRef};

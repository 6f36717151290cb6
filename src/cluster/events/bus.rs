//! The bus: the history replayed for `since` and one queue per listener, each bounded by count
//! and by bytes ([`EventLimits`]). It owns who receives what and when a listener is dropped; it
//! must not read or rewrite events (they arrive as finished [`ClusterEvent`]s), do I/O or make
//! a publisher wait.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use super::event::ClusterEvent;

/// How much the bus keeps: the history replayed for `since`, and what one listener may have
/// waiting before it is dropped. A listener's budget holds a burst of 20,000 events of a few
/// hundred bytes (20 from each of 1,000 engines, as the scale benchmark sends) with room left.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    /// Most events kept for `since` replay.
    pub history_events: usize,
    /// Most bytes of events kept for `since` replay.
    pub history_bytes: usize,
    /// Most events one listener may have waiting.
    pub listener_events: usize,
    /// Most bytes of events one listener may have waiting.
    pub listener_bytes: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            history_events: 1_024,
            history_bytes: 16 << 20,
            listener_events: 32_768,
            listener_bytes: 16 << 20,
        }
    }
}

/// The bus. Cheap to share behind an `Arc`.
pub struct EventBus {
    limits: EventLimits,
    /// The history and the listeners, under one lock: a new listener's replay and its live
    /// queue then neither overlap nor leave a gap.
    inner: Mutex<BusInner>,
    /// Names listeners in log lines.
    next_listener: AtomicU64,
    /// Open `/events` streams, for `NEventsListener`.
    listeners: AtomicUsize,
}

struct BusInner {
    /// Recent events, oldest first.
    history: VecDeque<Arc<ClusterEvent>>,
    /// [`ClusterEvent::retained_bytes`] of `history`.
    history_bytes: usize,
    /// Every subscription still open; a dropped [`Subscription`] leaves a dead entry, pruned at
    /// the next publish.
    listeners: Vec<Weak<ListenerShared>>,
}

/// One listener's queue, shared by the bus (which fills it) and its [`Subscription`].
struct ListenerShared {
    id: u64,
    /// Who listens (the client's address, or the manager's own task), for the log line.
    who: String,
    queue: Mutex<ListenerQueue>,
}

struct ListenerQueue {
    events: VecDeque<Arc<ClusterEvent>>,
    /// [`ClusterEvent::retained_bytes`] of `events`.
    bytes: usize,
    /// Set when the listener fell behind or the bus went away: no more events come.
    ended: Option<Ended>,
    /// The task waiting in [`Subscription::poll_recv`].
    waker: Option<Waker>,
}

/// Why a subscription receives no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its queue went over its budget: it was dropped, and its queued events with it.
    FellBehind,
    /// The bus was dropped.
    Closed,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus with the default [`EventLimits`].
    pub fn new() -> EventBus {
        Self::with_limits(EventLimits::default())
    }

    /// An empty bus with these limits.
    pub fn with_limits(limits: EventLimits) -> EventBus {
        EventBus {
            limits,
            inner: Mutex::new(BusInner {
                history: VecDeque::new(),
                history_bytes: 0,
                listeners: Vec::new(),
            }),
            next_listener: AtomicU64::new(1),
            listeners: AtomicUsize::new(0),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, BusInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes one event to the history and every listener. Never waits for a listener: one
    /// whose queue would go over its budget is dropped instead.
    pub fn publish(&self, event: ClusterEvent) {
        let event = Arc::new(event);
        let cost = event.retained_bytes();
        let limits = self.limits;
        let mut inner = self.inner();
        inner.history.push_back(event.clone());
        inner.history_bytes += cost;
        // The newest event stays even when it alone is over the budget.
        while inner.history.len() > 1
            && (inner.history.len() > limits.history_events
                || inner.history_bytes > limits.history_bytes)
        {
            if let Some(old) = inner.history.pop_front() {
                inner.history_bytes -= old.retained_bytes();
            }
        }
        inner.listeners.retain(|listener| {
            let Some(listener) = listener.upgrade() else {
                return false;
            };
            let mut queue = listener.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.ended.is_some() {
                return false;
            }
            let kept = if queue.events.len() < limits.listener_events
                && queue.bytes + cost <= limits.listener_bytes
            {
                queue.events.push_back(event.clone());
                queue.bytes += cost;
                crate::metrics::event_delivered();
                true
            } else {
                tracing::warn!(listener = listener.id, who = %listener.who,
                    queued_events = queue.events.len(), queued_bytes = queue.bytes,
                    "Events listener fell behind; dropping it");
                crate::metrics::listener_dropped(queue.events.len() + 1);
                queue.ended = Some(Ended::FellBehind);
                queue.events = VecDeque::new();
                queue.bytes = 0;
                false
            };
            if let Some(waker) = queue.waker.take() {
                waker.wake();
            }
            kept
        });
    }

    /// Subscribes `who` (named in the log line if it is dropped); returns the retained events
    /// with `time_nano >= since_nanos` (none when `since_nanos` is `None`) and the live
    /// subscription.
    pub fn subscribe(
        &self,
        since_nanos: Option<i64>,
        who: &str,
    ) -> (Vec<Arc<ClusterEvent>>, Subscription) {
        let shared = Arc::new(ListenerShared {
            id: self.next_listener.fetch_add(1, Ordering::Relaxed),
            who: who.to_string(),
            queue: Mutex::new(ListenerQueue {
                events: VecDeque::new(),
                bytes: 0,
                ended: None,
                waker: None,
            }),
        });
        let mut inner = self.inner();
        inner.listeners.push(Arc::downgrade(&shared));
        let replay = match since_nanos {
            Some(since) => inner
                .history
                .iter()
                .filter(|e| e.time_nano >= since)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (replay, Subscription { shared })
    }

    /// Counts an open `/events` stream; the guard uncounts it.
    pub fn listener_guard(self: &Arc<Self>) -> ListenerGuard {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        ListenerGuard { bus: self.clone() }
    }

    /// Number of open `/events` streams (`NEventsListener`).
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Relaxed)
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        for listener in inner.listeners.drain(..).filter_map(|l| l.upgrade()) {
            let mut queue = listener.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.ended.get_or_insert(Ended::Closed);
            if let Some(waker) = queue.waker.take() {
                waker.wake();
            }
        }
    }
}

/// A listener's live events, from [`EventBus::subscribe`]. Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<ListenerShared>,
}

impl Subscription {
    /// The next event, or why there are no more. Events queued before the end are still
    /// delivered, except when the listener fell behind: its queue is dropped with it.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<ClusterEvent>, Ended>> {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(event) = queue.events.pop_front() {
            queue.bytes -= event.retained_bytes();
            return Poll::Ready(Ok(event));
        }
        if let Some(ended) = queue.ended {
            return Poll::Ready(Err(ended));
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for the next event (see [`Subscription::poll_recv`]).
    pub async fn recv(&mut self) -> Result<Arc<ClusterEvent>, Ended> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<ClusterEvent>> {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let event = queue.events.pop_front()?;
        queue.bytes -= event.retained_bytes();
        Some(event)
    }
}

/// Keeps one `/events` stream counted while alive.
pub struct ListenerGuard {
    bus: Arc<EventBus>,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.bus.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::tests::node;
    use super::*;
    use serde_json::json;

    #[test]
    fn subscribers_replay_history_since_a_time_and_then_stream() {
        let bus = EventBus::new();
        bus.publish(ClusterEvent::swarm("engine_connect", &node(), 1_000));
        bus.publish(ClusterEvent::swarm("engine_disconnect", &node(), 2_000));
        let (replay, mut rx) = bus.subscribe(Some(1_500), "test");
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].action(), "engine_disconnect");
        bus.publish(ClusterEvent::swarm("engine_reconnect", &node(), 3_000));
        assert_eq!(rx.try_recv().unwrap().action(), "engine_reconnect");
        assert!(rx.try_recv().is_none());
        let (none, _) = bus.subscribe(None, "test");
        assert!(none.is_empty());
    }

    /// A container event whose labels make it about `size` bytes long.
    fn sized_event(size: usize, time: i64) -> ClusterEvent {
        let raw = json!({"Type": "container", "Action": "pause", "timeNano": time,
            "Actor": {"ID": "c1", "Attributes": {"big": "x".repeat(size)}}});
        ClusterEvent::from_engine(raw.as_object().unwrap().clone(), &node())
    }

    /// What three events of [`sized_event`]`(3_000, _)` cost, and half a fourth.
    fn three_and_a_half() -> usize {
        sized_event(3_000, 0).retained_bytes() * 7 / 2
    }

    fn limits(listener_events: usize, listener_bytes: usize) -> EventLimits {
        EventLimits {
            history_events: 8,
            history_bytes: three_and_a_half(),
            listener_events,
            listener_bytes,
        }
    }

    fn history_times(bus: &EventBus) -> Vec<i64> {
        let (replay, _) = bus.subscribe(Some(0), "test");
        replay.iter().map(|e| e.time_nano).collect()
    }

    #[test]
    fn history_keeps_the_newest_events_within_its_count_cap() {
        let bus = EventBus::with_limits(limits(100, 1 << 20));
        for t in 1..=20 {
            bus.publish(sized_event(10, t));
        }
        assert_eq!(history_times(&bus), (13..=20).collect::<Vec<_>>());
    }

    #[test]
    fn history_keeps_the_newest_events_within_its_byte_budget() {
        let bus = EventBus::with_limits(limits(100, 1 << 20));
        for t in 1..=6 {
            bus.publish(sized_event(3_000, t));
        }
        assert_eq!(history_times(&bus), vec![4, 5, 6]);
        assert!(bus.inner().history_bytes <= three_and_a_half());
        // One event over the whole budget is still kept, alone.
        bus.publish(sized_event(4 * three_and_a_half(), 7));
        assert_eq!(history_times(&bus), vec![7]);
        bus.publish(sized_event(10, 8));
        assert_eq!(history_times(&bus), vec![8]);
    }

    #[test]
    fn a_stalled_subscriber_is_dropped_once_over_its_byte_budget_while_a_fast_one_keeps_receiving()
    {
        let bus = EventBus::with_limits(limits(1_000, three_and_a_half()));
        let (_, mut stalled) = bus.subscribe(None, "stalled");
        let (_, mut fast) = bus.subscribe(None, "fast");
        for t in 1..=3 {
            bus.publish(sized_event(3_000, t));
            assert_eq!(fast.try_recv().map(|e| e.time_nano), Some(t));
        }
        assert_eq!(stalled.shared.queue.lock().unwrap().events.len(), 3);
        // The fourth would take the stalled queue over its budget: dropped, queue freed.
        bus.publish(sized_event(3_000, 4));
        {
            let queue = stalled.shared.queue.lock().unwrap();
            assert_eq!(queue.ended, Some(Ended::FellBehind));
            assert!(queue.events.is_empty());
            assert_eq!(queue.bytes, 0);
        }
        for t in 4..=10 {
            if t > 4 {
                bus.publish(sized_event(3_000, t));
            }
            assert_eq!(fast.try_recv().map(|e| e.time_nano), Some(t));
        }
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            stalled.poll_recv(&mut cx),
            Poll::Ready(Err(Ended::FellBehind))
        ));
        assert_eq!(bus.inner().listeners.len(), 1, "only the fast one is fed");

        // A subscriber after the drop gets the new events.
        let (_, mut fresh) = bus.subscribe(None, "fresh");
        bus.publish(sized_event(10, 11));
        assert_eq!(fresh.try_recv().map(|e| e.time_nano), Some(11));
        assert_eq!(fast.try_recv().map(|e| e.time_nano), Some(11));
    }

    #[test]
    fn a_subscriber_over_its_count_cap_is_dropped() {
        let bus = EventBus::with_limits(limits(2, 1 << 20));
        let (_, mut slow) = bus.subscribe(None, "slow");
        bus.publish(sized_event(10, 1));
        bus.publish(sized_event(10, 2));
        assert!(slow.try_recv().is_some());
        bus.publish(sized_event(10, 3));
        bus.publish(sized_event(10, 4));
        assert_eq!(
            slow.shared.queue.lock().unwrap().ended,
            Some(Ended::FellBehind)
        );
        assert!(slow.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_for_an_event_and_when_the_bus_goes() {
        let bus = Arc::new(EventBus::new());
        let (_, mut rx) = bus.subscribe(None, "test");
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await.map(|e| e.time_nano);
            (first, rx.recv().await.map(|e| e.time_nano))
        });
        tokio::task::yield_now().await;
        bus.publish(sized_event(10, 1));
        drop(Arc::try_unwrap(bus).ok().expect("sole owner"));
        assert_eq!(waiter.await.unwrap(), (Ok(1), Err(Ended::Closed)));
    }

    #[test]
    fn an_unsubscribed_listener_is_forgotten() {
        let bus = EventBus::new();
        let (_, rx) = bus.subscribe(None, "test");
        drop(rx);
        bus.publish(sized_event(10, 1));
        assert!(bus.inner().listeners.is_empty());
    }
}

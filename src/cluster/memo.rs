//! Values that other layers derive from one engine's state and keep between requests (the
//! scheduler's node snapshots, the `/info` rows), held beside the engines rather than inside
//! them. A memo finds each engine's slot; the caller decides whether what the slot holds is
//! still current. Slots are keyed by engine identity (not address or ID: an engine removed and
//! added again is another engine), and a pass over the engines drops the slots of engines it no
//! longer saw, so an engine that left keeps nothing alive here.
//!
//! It also owns how an engine tells a keeper of such values that it changed ([`ChangeFeed`],
//! [`ChangeQueue`]): the engine pushes its ID once, and the keeper drains the queue when it
//! next needs current values, so it visits the engines that changed rather than all of them.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwapOption;

use super::engine::Engine;

/// One `T` per engine, filled and checked by the caller.
pub struct PerEngine<T> {
    slots: Mutex<Slots<T>>,
}

struct Slots<T> {
    by_engine: HashMap<usize, Slot<T>>,
    /// Counts passes, so that a pass knows which slots it visited.
    pass: u64,
}

struct Slot<T> {
    /// Held so that the engine's address is not reused while its slot exists: the key then
    /// always means the same engine.
    _engine: Weak<Engine>,
    /// The last pass that visited this slot.
    pass: u64,
    value: T,
}

impl<T> Default for PerEngine<T> {
    fn default() -> Self {
        PerEngine {
            slots: Mutex::new(Slots {
                by_engine: HashMap::new(),
                pass: 0,
            }),
        }
    }
}

impl<T: Default> PerEngine<T> {
    /// Runs `f` on the slot of `engine` alone, outside a pass: the slot counts as visited by
    /// the current pass, so a later pass keeps it only if it visits the engine too.
    pub fn with_slot<R>(&self, engine: &Arc<Engine>, f: impl FnOnce(&mut T) -> R) -> R {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let current = slots.pass;
        let slot = slots
            .by_engine
            .entry(Arc::as_ptr(engine) as usize)
            .or_insert_with(|| Slot {
                _engine: Arc::downgrade(engine),
                pass: current,
                value: T::default(),
            });
        f(&mut slot.value)
    }

    /// Drops the slot of an engine that left, without waiting for a pass over every engine.
    pub fn forget(&self, engine: &Weak<Engine>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.by_engine.remove(&(engine.as_ptr() as usize));
    }

    /// Runs `f` over the slots, which stay locked meanwhile (`f` must not wait on anything).
    /// `f` is meant to visit every engine of a membership view: afterwards the slots of
    /// engines it did not visit are dropped.
    pub fn pass<R>(&self, f: impl FnOnce(&mut Pass<'_, T>) -> R) -> R {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.pass = slots.pass.wrapping_add(1);
        let mut pass = Pass {
            slots: &mut slots,
            visited: 0,
        };
        let result = f(&mut pass);
        let visited = pass.visited;
        if slots.by_engine.len() > visited {
            let current = slots.pass;
            slots.by_engine.retain(|_, slot| slot.pass == current);
        }
        result
    }
}

/// The slots during one [`PerEngine::pass`].
pub struct Pass<'a, T> {
    slots: &'a mut Slots<T>,
    visited: usize,
}

impl<T: Default> Pass<'_, T> {
    /// The slot of `engine`, empty (`T::default()`) the first time.
    pub fn slot(&mut self, engine: &Arc<Engine>) -> &mut T {
        let current = self.slots.pass;
        let slot = self
            .slots
            .by_engine
            .entry(Arc::as_ptr(engine) as usize)
            .or_insert_with(|| Slot {
                _engine: Arc::downgrade(engine),
                pass: current.wrapping_sub(1),
                value: T::default(),
            });
        if slot.pass != current {
            slot.pass = current;
            self.visited += 1;
        }
        &mut slot.value
    }
}

/// IDs of the engines that changed since the keeper last drained it, each at most once.
#[derive(Debug, Default)]
pub struct ChangeQueue {
    ids: Mutex<Vec<String>>,
}

impl ChangeQueue {
    /// Takes what was queued. The keeper must call [`ChangeFeed::seen`] on each engine before
    /// reading its state, so that a change made meanwhile queues it again.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether nothing was queued since the last [`ChangeQueue::take`].
    pub fn is_empty(&self) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn push(&self, id: String) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }
}

/// One engine's link to the [`ChangeQueue`] that wants its changes (none until a keeper
/// attaches one). While the engine is queued and not yet seen, further changes push nothing,
/// so the queue never holds more entries than there are engines.
#[derive(Debug, Default)]
pub struct ChangeFeed {
    queue: ArcSwapOption<ChangeQueue>,
    queued: AtomicBool,
}

impl ChangeFeed {
    /// Sends later changes to `queue` (`None`: to nobody).
    pub fn attach(&self, queue: Option<Arc<ChangeQueue>>) {
        self.queue.store(queue);
        self.queued.store(false, Ordering::SeqCst);
    }

    /// Reports a change already made to the state the keeper reads; `id` names the engine.
    pub fn report(&self, id: impl FnOnce() -> String) {
        if let Some(queue) = &*self.queue.load() {
            // Both sides swap the flag: whichever comes second sees the other's write, so the
            // keeper either reads this change or finds the engine queued again.
            if !self.queued.swap(true, Ordering::AcqRel) {
                queue.push(id());
            }
        }
    }

    /// The keeper took the engine off the queue and is about to read its state.
    pub fn seen(&self) {
        self.queued.swap(false, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::test_engine;
    use super::*;

    #[test]
    fn a_slot_is_kept_for_its_engine_until_a_pass_no_longer_visits_it() {
        let memo: PerEngine<u32> = PerEngine::default();
        let (a, b) = (test_engine(), test_engine());
        memo.pass(|p| {
            *p.slot(&a) = 1;
            *p.slot(&b) = 2;
        });
        assert_eq!(memo.pass(|p| (*p.slot(&a), *p.slot(&b))), (1, 2));
        // A pass without `b` forgets it; a later visit starts empty.
        memo.pass(|p| *p.slot(&a) += 10);
        assert_eq!(memo.pass(|p| (*p.slot(&a), *p.slot(&b))), (11, 0));
    }

    #[test]
    fn an_engine_is_queued_once_until_seen_and_again_after() {
        let queue = Arc::new(ChangeQueue::default());
        let feed = ChangeFeed::default();
        feed.report(|| "unattached".into());
        feed.attach(Some(queue.clone()));
        feed.report(|| "e".into());
        feed.report(|| "e".into());
        assert_eq!(queue.take(), ["e"]);
        feed.report(|| "e".into());
        assert!(queue.take().is_empty(), "not seen since it was taken");
        feed.seen();
        feed.report(|| "e".into());
        assert_eq!(queue.take(), ["e"]);
    }
}

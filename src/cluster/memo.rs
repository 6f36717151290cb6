//! Values that other layers derive from one engine's state and keep between requests (the
//! scheduler's node snapshots, the `/info` rows), held beside the engines rather than inside
//! them. A memo finds each engine's slot; the caller decides whether what the slot holds is
//! still current. Slots are keyed by engine identity (not address or ID: an engine removed and
//! added again is another engine), and a pass over the engines drops the slots of engines it no
//! longer saw, so an engine that left keeps nothing alive here.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

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
}

//! The order of an engine's container writes.
//!
//! Container records come from reads of the engine (a full list, or one container's list entry
//! and inspect), and reads overlap: a full refresh may list the containers, then spend seconds
//! inspecting, while a rename through the manager re-reads the renamed container and answers
//! the client. Written in the order they finish, the refresh would put the old name back after
//! the client was told the rename was done. So each read takes a ticket before it asks the
//! engine, and a write lands only on containers that no read with a newer ticket has written.
//! Pure bookkeeping: no I/O, no clocks; the engine holds it under its cache-writer lock.
use std::collections::{BTreeSet, HashMap};

/// Tickets of reads in flight and the containers written while older reads were in flight.
#[derive(Debug, Default)]
pub struct WriteOrder {
    /// The last ticket handed out; tickets start at 1.
    last: u64,
    /// Tickets of reads still in flight.
    reading: BTreeSet<u64>,
    /// Containers written (or removed) while a read with an older ticket was in flight, with
    /// the ticket of that write. Entries older than every read in flight can no longer decide
    /// anything and are dropped, so this stays as small as the overlap of reads.
    written: HashMap<Box<str>, u64>,
}

impl WriteOrder {
    /// A ticket for a read about to start.
    pub fn issue(&mut self) -> u64 {
        self.last += 1;
        self.reading.insert(self.last);
        self.last
    }

    /// The read with `ticket` has ended (written or not).
    pub fn done(&mut self, ticket: u64) {
        self.reading.remove(&ticket);
        match self.reading.first() {
            None => self.written.clear(),
            Some(&oldest) => self.written.retain(|_, t| *t > oldest),
        }
    }

    /// Whether the read with `ticket` may write container `id`: no newer read wrote it.
    pub fn may_write(&self, id: &str, ticket: u64) -> bool {
        self.written.get(id).is_none_or(|t| *t <= ticket)
    }

    /// The containers that reads newer than `ticket` wrote: a full list read with `ticket`
    /// keeps what the cache shows for them.
    pub fn newer_than(&self, ticket: u64) -> impl Iterator<Item = &str> {
        self.written
            .iter()
            .filter(move |(_, t)| **t > ticket)
            .map(|(id, _)| &**id)
    }

    /// Whether a read older than `ticket` is still in flight (only then do writes need
    /// remembering).
    pub fn older_in_flight(&self, ticket: u64) -> bool {
        self.reading.first().is_some_and(|oldest| *oldest < ticket)
    }

    /// Notes that the read with `ticket` wrote container `id`, where an older read in flight
    /// could still try to write it.
    pub fn wrote(&mut self, id: &str, ticket: u64) {
        if self.older_in_flight(ticket) {
            let at = self.written.entry(id.into()).or_insert(ticket);
            *at = (*at).max(ticket);
        }
    }

    /// How many containers are remembered (for tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.written.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_read_cannot_overwrite_a_newer_write() {
        let mut order = WriteOrder::default();
        let refresh = order.issue();
        let rename = order.issue();
        assert!(order.may_write("c1", rename));
        order.wrote("c1", rename);
        order.done(rename);
        assert!(
            !order.may_write("c1", refresh),
            "the refresh listed before the rename"
        );
        assert_eq!(order.newer_than(refresh).collect::<Vec<_>>(), ["c1"]);
        assert!(
            order.may_write("c2", refresh),
            "other containers are the refresh's"
        );
        order.done(refresh);
        assert_eq!(
            order.remembered(),
            0,
            "nothing in flight, nothing remembered"
        );
    }

    #[test]
    fn a_newer_read_may_overwrite_an_older_write() {
        let mut order = WriteOrder::default();
        let first = order.issue();
        let second = order.issue();
        order.wrote("c1", first);
        assert!(order.may_write("c1", second));
        order.done(first);
        order.done(second);
    }

    #[test]
    fn writes_with_no_older_read_in_flight_are_not_remembered() {
        let mut order = WriteOrder::default();
        let only = order.issue();
        order.wrote("c1", only);
        assert_eq!(order.remembered(), 0);
        order.done(only);
        let later = order.issue();
        assert!(order.may_write("c1", later));
    }

    #[test]
    fn memory_is_released_as_old_reads_end() {
        let mut order = WriteOrder::default();
        let old = order.issue();
        let mid = order.issue();
        let new = order.issue();
        order.wrote("a", mid);
        order.wrote("b", new);
        assert_eq!(order.remembered(), 2);
        order.done(old);
        // Only `mid` and `new` are in flight: `a`, written by `mid`, can stop neither.
        assert_eq!(order.remembered(), 1, "only `b` can still stop `mid`");
        assert!(!order.may_write("b", mid));
        order.done(mid);
        assert_eq!(order.remembered(), 0);
        order.done(new);
    }
}

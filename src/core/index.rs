//! Lazily cleaned indices: heaps of entries that may go stale.
//!
//! The state orders its timed jobs (delayed, out-of-order lease deadlines, times to live) through heaps of
//! small entries. Taking a job out of the middle of a heap would cost O(n), so instead the job's slot changes (its ticket, or its id) and
//! the entry goes stale: [`Lazy::head`] drops stale entries when they reach the front, and [`Lazy::remove`]
//! compacts the whole index once stale entries outnumber live ones. Every operation stays O(1) or
//! O(log n) amortised.

use std::collections::{BinaryHeap, VecDeque};

/// Below this many stale entries an index is never compacted.
const COMPACT_MIN: usize = 64;

/// A container an index can be built on: a min-heap (`BinaryHeap` of entries whose order is reversed).
pub(crate) trait Container<E>: Default + Buffer {
    fn first(&self) -> Option<&E>;
    fn pop_first(&mut self) -> Option<E>;
    fn insert(&mut self, entry: E);
    fn keep(&mut self, live: impl FnMut(&E) -> bool);
}

/// A growable buffer, for [`fit`].
pub(crate) trait Buffer {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn shrink_to(&mut self, capacity: usize);
}

/// After a burst, gives a buffer's memory back: one whose capacity is over four times its length shrinks to
/// twice its length, so that a buffer that stays at one size never reallocates.
pub(crate) fn fit(buffer: &mut impl Buffer) {
    let len = buffer.len();
    if buffer.capacity() > 4 * len + 64 {
        buffer.shrink_to(2 * len);
    }
}

macro_rules! buffer {
    ($($ty:ident $(: $bound:ident)?),*) => {$(
        impl<E $(: $bound)?> Buffer for $ty<E> {
            fn len(&self) -> usize {
                $ty::len(self)
            }
            fn capacity(&self) -> usize {
                $ty::capacity(self)
            }
            fn shrink_to(&mut self, capacity: usize) {
                $ty::shrink_to(self, capacity);
            }
        }
    )*};
}

buffer!(Vec, VecDeque, BinaryHeap: Ord);

impl<E: Ord> Container<E> for BinaryHeap<E> {
    fn first(&self) -> Option<&E> {
        self.peek()
    }
    fn pop_first(&mut self) -> Option<E> {
        self.pop()
    }
    fn insert(&mut self, entry: E) {
        self.push(entry);
    }
    fn keep(&mut self, live: impl FnMut(&E) -> bool) {
        self.retain(live);
    }
}

/// An index whose stale entries are dropped lazily. `live` tells a current entry from a stale one.
#[derive(Default)]
pub(crate) struct Lazy<C> {
    items: C,
    stale: usize,
}

impl<C> Lazy<C> {
    /// The first live entry, dropping the stale ones before it.
    pub fn head<E>(&mut self, live: impl Fn(&E) -> bool) -> Option<&E>
    where
        C: Container<E>,
    {
        while let Some(first) = self.items.first() {
            if live(first) {
                break;
            }
            self.items.pop_first();
            // The count is a hint for compaction: an entry may go stale without being counted.
            self.stale = self.stale.saturating_sub(1);
        }
        self.items.first()
    }

    /// Removes and returns the first live entry.
    pub fn pop<E>(&mut self, live: impl Fn(&E) -> bool) -> Option<E>
    where
        C: Container<E>,
    {
        self.head(&live)?;
        self.items.pop_first()
    }

    pub fn push<E>(&mut self, entry: E)
    where
        C: Container<E>,
    {
        self.items.insert(entry);
    }

    /// Entries, stale ones included.
    #[cfg(test)]
    pub fn capacity<E>(&self) -> usize
    where
        C: Container<E>,
    {
        self.items.capacity()
    }

    #[cfg(test)]
    pub fn len<E>(&self) -> usize
    where
        C: Container<E>,
    {
        self.items.len()
    }

    /// Accounts for `entry`, which was live until now and is stale from now on: popped at once when it is
    /// first, otherwise left for later and the index compacted when stale entries outnumber live ones.
    /// `live` must already call `entry` stale.
    pub fn remove<E: PartialEq>(&mut self, entry: &E, live: impl Fn(&E) -> bool)
    where
        C: Container<E>,
    {
        if self.items.first() == Some(entry) {
            self.items.pop_first();
            return;
        }
        self.stale += 1;
        if self.stale >= COMPACT_MIN && self.stale * 2 > self.items.len() {
            self.items.keep(|e| live(e));
            self.stale = 0;
        }
    }
}

impl<C> Lazy<C> {
    /// Gives memory back after a burst (see [`fit`]).
    pub fn fit<E>(&mut self)
    where
        C: Container<E>,
    {
        fit(&mut self.items);
    }

    /// Keeps only the entries `keep` says to, now (O(n)).
    pub fn sweep<E>(&mut self, keep: impl FnMut(&E) -> bool)
    where
        C: Container<E>,
    {
        self.items.keep(keep);
        self.stale = self.stale.min(self.items.len());
    }
}

impl<E> Lazy<BinaryHeap<E>> {
    /// Every entry, stale ones included, in no order.
    #[cfg(feature = "serde")]
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;

    #[test]
    fn stale_entries_are_dropped_at_the_head_and_compacted() {
        let mut index: Lazy<BinaryHeap<Reverse<u32>>> = Lazy::default();
        for i in 0..1000 {
            index.push(Reverse(i));
        }
        // Entries go stale from the back, so none can be popped at once: compaction keeps the size down.
        let removed = std::cell::Cell::new(1000);
        for i in (400..1000).rev() {
            removed.set(i);
            index.remove(&Reverse(i), |e| e.0 < removed.get());
        }
        assert!(index.len() <= 500, "not compacted: {}", index.len());
        assert_eq!(index.pop(|e| e.0 < 400), Some(Reverse(0)));
        // Stale entries at the head are skipped.
        assert_eq!(index.head(|e| e.0 >= 7 && e.0 < 400), Some(&Reverse(7)));
    }

    #[test]
    fn removing_the_head_pops_it() {
        let mut index: Lazy<BinaryHeap<std::cmp::Reverse<u32>>> = Lazy::default();
        for i in [3, 1, 2] {
            index.push(std::cmp::Reverse(i));
        }
        index.remove(&std::cmp::Reverse(1), |e| e.0 != 1);
        assert_eq!(index.len(), 2);
        assert_eq!(index.head(|_| true), Some(&std::cmp::Reverse(2)));
    }
}

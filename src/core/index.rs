//! Lazily cleaned indices: heaps of entries that may go stale.
//!
//! The state orders its timed jobs (delayed, out-of-order lease deadlines, times to live) through heaps
//! of small entries. Taking a job out of the middle of a heap would cost O(n), so instead the job's slot
//! changes (its ticket, or its id) and the entry goes stale: [`Lazy::head`] drops stale entries when they
//! reach the front, and [`Lazy::remove`] compacts the whole index once stale entries outnumber live ones.
//! Every operation stays O(1) or O(log n) amortised.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;

/// Below this many stale entries an index is never compacted.
const COMPACT_MIN: usize = 64;

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

impl<K: Eq + Hash, V> Buffer for HashMap<K, V> {
    fn len(&self) -> usize {
        HashMap::len(self)
    }
    fn capacity(&self) -> usize {
        HashMap::capacity(self)
    }
    fn shrink_to(&mut self, capacity: usize) {
        HashMap::shrink_to(self, capacity);
    }
}

/// A min-heap index (of entries whose order is reversed) whose stale entries are dropped lazily. `live`
/// tells a current entry from a stale one.
pub(crate) struct Lazy<E> {
    items: BinaryHeap<E>,
    stale: usize,
}

impl<E: Ord> Default for Lazy<E> {
    fn default() -> Self {
        Lazy { items: BinaryHeap::new(), stale: 0 }
    }
}

impl<E: Ord> Lazy<E> {
    /// The first live entry, dropping the stale ones before it.
    pub fn head(&mut self, live: impl Fn(&E) -> bool) -> Option<&E> {
        while let Some(first) = self.items.peek() {
            if live(first) {
                break;
            }
            self.items.pop();
            // The count is a hint for compaction: an entry may go stale without being counted.
            self.stale = self.stale.saturating_sub(1);
        }
        self.items.peek()
    }

    /// Removes and returns the first live entry.
    pub fn pop(&mut self, live: impl Fn(&E) -> bool) -> Option<E> {
        self.head(&live)?;
        self.items.pop()
    }

    pub fn push(&mut self, entry: E) {
        self.items.push(entry);
    }

    /// Entries, stale ones included.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Accounts for `entry`, which was live until now and is stale from now on: popped at once when it is
    /// first, otherwise left for later and the index compacted when stale entries outnumber live ones.
    /// `live` must already call `entry` stale.
    pub fn remove(&mut self, entry: &E, live: impl Fn(&E) -> bool) {
        if self.items.peek() == Some(entry) {
            self.items.pop();
            return;
        }
        self.stale += 1;
        if self.stale >= COMPACT_MIN && self.stale * 2 > self.items.len() {
            self.items.retain(|e| live(e));
            self.stale = 0;
        }
    }

    /// Gives memory back after a burst (see [`fit`]).
    pub fn fit(&mut self) {
        fit(&mut self.items);
    }

    /// Keeps only the entries `keep` says to, now (O(n)).
    pub fn sweep(&mut self, keep: impl FnMut(&E) -> bool) {
        self.items.retain(keep);
        self.stale = self.stale.min(self.items.len());
    }

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
        let mut index: Lazy<Reverse<u32>> = Lazy::default();
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
        let mut index: Lazy<Reverse<u32>> = Lazy::default();
        for i in [3, 1, 2] {
            index.push(Reverse(i));
        }
        index.remove(&Reverse(1), |e| e.0 != 1);
        assert_eq!(index.len(), 2);
        assert_eq!(index.head(|_| true), Some(&Reverse(2)));
    }
}

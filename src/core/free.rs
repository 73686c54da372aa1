//! The slab's free slots, handed out lowest first: new jobs fill the slab from the bottom, so that after a
//! burst the live jobs gather there and the free top can be given back (see `State::shrink`).
//!
//! A heap of free slots with the lowest of them held apart: a queue that frees a slot and takes one at its
//! next push, as a queue at a steady size does, touches no heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::index::fit;

/// Free slots, lowest first.
#[derive(Debug, Default)]
pub(crate) struct FreeSlots {
    /// The lowest free slot: lower than every slot in `rest`, and `None` only while `rest` is empty.
    lowest: Option<u32>,
    rest: BinaryHeap<Reverse<u32>>,
}

impl FreeSlots {
    /// Takes the lowest free slot. O(1) when at most one slot is free, O(log n) otherwise.
    #[inline]
    pub fn pop(&mut self) -> Option<u32> {
        let slot = self.lowest.take()?;
        if !self.rest.is_empty() {
            self.lowest = self.rest.pop().map(|Reverse(next)| next);
        }
        Some(slot)
    }

    /// Frees `slot`. O(1) when no slot is free, O(log n) otherwise.
    #[inline]
    pub fn push(&mut self, slot: u32) {
        match self.lowest {
            None => self.lowest = Some(slot),
            Some(lowest) if slot < lowest => {
                self.rest.push(Reverse(lowest));
                self.lowest = Some(slot);
            }
            Some(_) => self.rest.push(Reverse(slot)),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rest.len() + usize::from(self.lowest.is_some())
    }

    /// Keeps only the slots `keep` says to (O(n)).
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.rest.retain(|&Reverse(slot)| keep(slot));
        if self.lowest.is_some_and(|slot| !keep(slot)) {
            self.lowest = self.rest.pop().map(|Reverse(next)| next);
        }
    }

    /// Gives back memory after a burst (see [`fit`]).
    pub fn fit(&mut self) {
        fit(&mut self.rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_freed_and_taken_again_touches_no_heap() {
        let mut free = FreeSlots::default();
        free.push(7);
        assert_eq!(free.rest.len(), 0);
        assert_eq!((free.len(), free.pop(), free.pop()), (1, Some(7), None));
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push(u32),
            Pop,
            RetainBelow(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (0u32..64).prop_map(Op::Push),
                3 => Just(Op::Pop),
                1 => (0u32..64).prop_map(Op::RetainBelow),
            ]
        }

        proptest! {
            /// Free slots are a set handed out lowest first: a sorted `Vec` under the same operations.
            #[test]
            fn free_slots_come_out_lowest_first(ops in prop::collection::vec(op(), 0..200)) {
                let mut free = FreeSlots::default();
                let mut model: Vec<u32> = Vec::new();
                for op in ops {
                    match op {
                        Op::Push(slot) if !model.contains(&slot) => {
                            free.push(slot);
                            model.push(slot);
                            model.sort_unstable();
                        }
                        Op::Push(_) => {} // a slot is freed once
                        Op::Pop => {
                            let expected = (!model.is_empty()).then(|| model.remove(0));
                            prop_assert_eq!(free.pop(), expected);
                        }
                        Op::RetainBelow(cut) => {
                            free.retain(|slot| slot < cut);
                            model.retain(|&slot| slot < cut);
                        }
                    }
                    prop_assert_eq!(free.len(), model.len());
                    prop_assert_eq!(free.lowest, model.first().copied());
                }
            }
        }
    }
}

//! First-in first-out lists threaded through the slab: each slot carries its own two links, so a list
//! takes a job at the back, hands out the front and lets go of any job in O(1), with no buffer of its own
//! and no stale entries to skip.
//!
//! A slot is in at most one list at a time; which one follows from its phase (see `State::unlink`).

/// No slot: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// A slot's place in the list it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Links {
    prev: u32,
    next: u32,
}

impl Links {
    /// The links of a slot in no list.
    pub const NONE: Links = Links { prev: NIL, next: NIL };
}

/// Something that can be in a [`List`]: a slab's slot.
pub(crate) trait Node {
    fn links(&mut self) -> &mut Links;
}

/// A list of slots, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct List {
    head: u32,
    tail: u32,
}

impl Default for List {
    fn default() -> Self {
        List { head: NIL, tail: NIL }
    }
}

impl List {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }

    /// The oldest slot.
    #[inline]
    pub fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// The newest slot.
    #[inline]
    pub fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Adds `slot`, which is in no list, at the back.
    #[inline(always)]
    pub fn push_back<N: Node>(&mut self, nodes: &mut [N], slot: u32) {
        *nodes[slot as usize].links() = Links { prev: self.tail, next: NIL };
        match self.tail {
            NIL => self.head = slot,
            tail => nodes[tail as usize].links().next = slot,
        }
        self.tail = slot;
    }

    /// Takes the oldest slot out.
    #[inline(always)]
    pub fn pop_front<N: Node>(&mut self, nodes: &mut [N]) -> Option<u32> {
        let slot = self.front()?;
        self.unlink(nodes, slot);
        Some(slot)
    }

    /// Takes `slot`, which is in this list, out of it.
    #[inline(always)]
    pub fn unlink<N: Node>(&mut self, nodes: &mut [N], slot: u32) {
        let Links { prev, next } = std::mem::replace(nodes[slot as usize].links(), Links::NONE);
        match prev {
            NIL => self.head = next,
            prev => nodes[prev as usize].links().next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => nodes[next as usize].links().prev = prev,
        }
    }

    /// The slots from the oldest, for tests.
    #[cfg(test)]
    pub fn slots<N: Node>(&self, nodes: &mut [N]) -> Vec<u32> {
        let mut slots = Vec::new();
        let mut at = self.head;
        while at != NIL {
            slots.push(at);
            at = nodes[at as usize].links().next;
        }
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Node for Links {
        fn links(&mut self) -> &mut Links {
            self
        }
    }

    #[test]
    fn slots_leave_from_the_front_and_from_anywhere() {
        let mut nodes = vec![Links::NONE; 5];
        let mut list = List::default();
        assert!(list.is_empty());
        for slot in [3, 0, 4, 1] {
            list.push_back(&mut nodes, slot);
        }
        assert_eq!(list.slots(&mut nodes), [3, 0, 4, 1]);
        list.unlink(&mut nodes, 4); // the middle
        assert_eq!(nodes[4], Links::NONE);
        assert_eq!(list.slots(&mut nodes), [3, 0, 1]);
        list.unlink(&mut nodes, 1); // the back
        assert_eq!(list.back(), Some(0));
        assert_eq!(list.pop_front(&mut nodes), Some(3));
        assert_eq!(list.front(), Some(0));
        list.push_back(&mut nodes, 2);
        assert_eq!(list.slots(&mut nodes), [0, 2]);
        assert_eq!(list.pop_front(&mut nodes), Some(0));
        assert_eq!(list.pop_front(&mut nodes), Some(2));
        assert_eq!(list.pop_front(&mut nodes), None);
        assert!(list.is_empty() && list.back().is_none());
    }

    mod model {
        //! A list behaves as a `Vec` of its slots under any sequence of pushes, pops and unlinks, and a
        //! slot out of the list keeps no links.

        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Push(u8),
            Pop,
            Unlink(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => any::<u8>().prop_map(Op::Push),
                1 => Just(Op::Pop),
                2 => any::<u8>().prop_map(Op::Unlink),
            ]
        }

        proptest! {
            #[test]
            fn a_list_is_a_vec_of_its_slots(ops in prop::collection::vec(op(), 0..200)) {
                const SLOTS: u32 = 16;
                let mut nodes = vec![Links::NONE; SLOTS as usize];
                let mut list = List::default();
                let mut model: Vec<u32> = Vec::new();
                for op in ops {
                    match op {
                        Op::Push(slot) => {
                            let slot = u32::from(slot) % SLOTS;
                            if !model.contains(&slot) {
                                list.push_back(&mut nodes, slot);
                                model.push(slot);
                            }
                        }
                        Op::Pop => {
                            let expected = (!model.is_empty()).then(|| model.remove(0));
                            prop_assert_eq!(list.pop_front(&mut nodes), expected);
                        }
                        Op::Unlink(at) => {
                            if !model.is_empty() {
                                let slot = model.remove(usize::from(at) % model.len());
                                list.unlink(&mut nodes, slot);
                            }
                        }
                    }
                    prop_assert_eq!(list.slots(&mut nodes), model.clone());
                    prop_assert_eq!(list.front(), model.first().copied());
                    prop_assert_eq!(list.back(), model.last().copied());
                    prop_assert_eq!(list.is_empty(), model.is_empty());
                    for slot in (0..SLOTS).filter(|slot| !model.contains(slot)) {
                        prop_assert_eq!(nodes[slot as usize], Links::NONE);
                    }
                }
            }
        }
    }
}

//! The groups of jobs (SQS FIFO message groups): for each key, its jobs in the queue's indices and those
//! waiting behind them. A job finds its group by key once, when it joins; on its way out it finds it by
//! its slot, so that an ack or a dead letter hashes nothing (a job's group key is hashed once).
//!
//! The groups sit in a slab of their own, addressed by a `u32` index; a group with no job left is freed,
//! and its index reused.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::index::fit;

/// No group: a slot's entry while its job has none.
const NONE: u32 = u32::MAX;

/// One key's jobs.
pub(crate) struct Group {
    pub key: Arc<str>,
    /// The jobs of the group now in the queue's indices (ready, delayed or leased): at most
    /// `Config::group_concurrency`, the earliest pushed of the group's jobs still in the queue.
    pub heads: Vec<u32>,
    /// Later jobs, in push order, as `(slot, id)`; entries of jobs that left are skipped.
    pub waiting: VecDeque<(u32, u64)>,
}

/// Every group with a job in the queue.
#[derive(Default)]
pub(crate) struct Groups {
    by_key: HashMap<Arc<str>, u32>,
    /// The groups by index; `None` where one was freed.
    groups: Vec<Option<Group>>,
    /// Indices of freed groups, for the next new key.
    free: Vec<u32>,
    /// The group of each slot's job, by slot ([`NONE`] for a job without one); only as long as the
    /// highest slot that ever held a grouped job.
    of_slot: Vec<u32>,
}

impl Groups {
    /// Puts the job in `slot` in `key`'s group, made if it has none, and returns the group.
    pub fn join(&mut self, slot: u32, key: Arc<str>) -> &mut Group {
        let (groups, free) = (&mut self.groups, &mut self.free);
        let index = *self.by_key.entry(key).or_insert_with_key(|key| {
            let group = Group { key: Arc::clone(key), heads: Vec::new(), waiting: VecDeque::new() };
            match free.pop() {
                Some(index) => {
                    groups[index as usize] = Some(group);
                    index
                }
                None => {
                    groups.push(Some(group));
                    u32::try_from(groups.len() - 1).expect("fewer than u32::MAX groups")
                }
            }
        });
        let at = slot as usize;
        if at >= self.of_slot.len() {
            self.of_slot.resize(at + 1, NONE);
        }
        self.of_slot[at] = index;
        self.groups[index as usize].as_mut().expect("a key's group is live while the key is in `by_key`")
    }

    /// The group of the job in `slot`, if it has one.
    pub fn of(&self, slot: u32) -> Option<&Group> {
        let index = *self.of_slot.get(slot as usize)?;
        self.groups.get(index as usize)?.as_ref()
    }

    /// Takes the job in `slot` out of its group's record of slots, and returns the group's index, if it
    /// had one: the caller takes it out of the group's heads or leaves its entry among the waiting to be
    /// skipped.
    pub fn leave(&mut self, slot: u32) -> Option<u32> {
        let entry = self.of_slot.get_mut(slot as usize)?;
        let index = std::mem::replace(entry, NONE);
        (index != NONE).then_some(index)
    }

    /// The group at `index`, if it is live.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut Group> {
        self.groups.get_mut(index as usize)?.as_mut()
    }

    /// Frees the group at `index`, which has no job left.
    pub fn remove(&mut self, index: u32) {
        if let Some(group) = self.groups.get_mut(index as usize).and_then(Option::take) {
            self.by_key.remove(&group.key);
            self.free.push(index);
        }
    }

    /// The slab was cut to `slots` slots: keeps only the waiting entries below the cut (those above are
    /// all stale) and the slots' entries below it.
    pub fn cut(&mut self, slots: usize) {
        for group in self.groups.iter_mut().flatten() {
            group.waiting.retain(|&(slot, _)| (slot as usize) < slots);
        }
        self.of_slot.truncate(slots);
    }

    /// Gives back the memory of freed groups at the end of the slab, and buffers much larger than they
    /// need to be.
    pub fn fit(&mut self) {
        while self.groups.last().is_some_and(Option::is_none) {
            self.groups.pop();
        }
        let len = self.groups.len();
        self.free.retain(|&index| (index as usize) < len);
        fit(&mut self.groups);
        fit(&mut self.free);
        fit(&mut self.of_slot);
        fit(&mut self.by_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_finds_its_group_by_slot_and_a_freed_group_is_reused() {
        let mut groups = Groups::default();
        groups.join(3, "a".into()).heads.push(3);
        groups.join(5, "b".into()).heads.push(5);
        groups.join(7, "a".into()).waiting.push_back((7, 70));
        assert_eq!(groups.of(7).map(|g| &*g.key), Some("a"));
        assert!(groups.of(4).is_none() && groups.of(100).is_none());
        let a = groups.leave(3).unwrap();
        assert_eq!(groups.leave(3), None, "left once");
        groups.get_mut(a).unwrap().heads.clear();
        let b = groups.leave(5).unwrap();
        groups.remove(b);
        assert!(groups.get_mut(b).is_none());
        groups.join(9, "c".into());
        assert_eq!(groups.leave(9), Some(b), "the freed index is reused");
        assert_eq!(groups.of(7).map(|g| &*g.key), Some("a"));
    }

    #[test]
    fn freed_groups_and_cut_slots_give_their_memory_back() {
        let mut groups = Groups::default();
        for slot in 0..1_000 {
            groups.join(slot, format!("g{slot}").into());
        }
        for slot in 0..1_000 {
            let index = groups.leave(slot).unwrap();
            groups.remove(index);
        }
        groups.cut(0);
        groups.fit();
        assert!(groups.groups.capacity() < 1_000 && groups.of_slot.capacity() < 1_000);
        assert!(groups.by_key.is_empty() && groups.free.is_empty());
    }
}

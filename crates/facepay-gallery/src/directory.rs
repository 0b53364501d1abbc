//! Who is in which slot: each slot's user id and partition keys, and the
//! slot of each user id.
//!
//! At ten million rows this bookkeeping was a third of the gallery's
//! memory: every id was held twice (in the slot's list and as the map's
//! key) and every slot carried an empty list of partitions. Here an id is
//! held once, the map from id to slot holds only slot numbers (a
//! `hashbrown` table that hashes the id the slot points at), and only
//! slots that are in some partition have a list.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

#[derive(Default)]
pub(crate) struct Directory {
    /// The user of each slot; empty for a free slot.
    ids: Vec<Box<str>>,
    /// Slots of the live users, found by the hash of their id. Ids are
    /// hashed with foldhash (seeded per directory, so still hard to aim
    /// collisions at): at a million rows SipHash was a quarter of a
    /// restore.
    slots: HashTable<u32>,
    hasher: RandomState,
    /// The partition keys of each slot that has any.
    partitions_of: HashMap<u32, Vec<String>, RandomState>,
}

impl Directory {
    /// Live users.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots ever used, live or free.
    pub fn slots_used(&self) -> usize {
        self.ids.len()
    }

    pub fn slot(&self, user_id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(user_id);
        self.slots
            .find(hash, |slot| &*self.ids[*slot as usize] == user_id)
            .copied()
    }

    pub fn id(&self, slot: u32) -> &str {
        &self.ids[slot as usize]
    }

    /// The live slots, in no order.
    pub fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().copied()
    }

    /// A new slot number, past every one used so far.
    pub fn push_slot(&mut self) -> u32 {
        let slot = self.ids.len();
        self.grow(1);
        self.ids.push(Box::default());
        slot as u32
    }

    /// Room for `more` ids. The list grows by an eighth, not double: at
    /// ten million rows the slack of doubling was ten bytes a row.
    fn grow(&mut self, more: usize) {
        if self.ids.capacity() - self.ids.len() < more {
            self.ids.reserve_exact(more.max(self.ids.len() / 8));
        }
    }

    /// Puts `user_id` in the free slot `slot`.
    pub fn insert(&mut self, slot: u32, user_id: &str, partitions: &[String]) {
        assert!(self.ids[slot as usize].is_empty(), "a slot taken twice");
        debug_assert!(self.slot(user_id).is_none(), "a user in two slots");
        self.ids[slot as usize] = user_id.into();
        let (ids, hasher) = (&self.ids, &self.hasher);
        let hash = hasher.hash_one(user_id);
        self.slots
            .insert_unique(hash, slot, |s| hasher.hash_one(&*ids[*s as usize]));
        if !partitions.is_empty() {
            self.partitions_of.insert(slot, partitions.to_vec());
        }
    }

    /// Frees `slot`: its id and partition keys, which it returns.
    pub fn remove(&mut self, slot: u32) -> Vec<String> {
        let id = std::mem::take(&mut self.ids[slot as usize]);
        let hash = self.hasher.hash_one(&*id);
        let found = self.slots.find_entry(hash, |s| *s == slot);
        debug_assert!(found.is_ok(), "a live slot missing from the table");
        if let Ok(entry) = found {
            entry.remove();
        }
        self.partitions_of.remove(&slot).unwrap_or_default()
    }

    pub fn partitions_of(&self, slot: u32) -> &[String] {
        self.partitions_of.get(&slot).map_or(&[], Vec::as_slice)
    }

    pub fn add_partition(&mut self, slot: u32, key: &str) {
        self.partitions_of
            .entry(slot)
            .or_default()
            .push(key.to_owned());
    }

    pub fn reserve(&mut self, rows: usize) {
        self.grow(rows);
        let (ids, hasher) = (&self.ids, &self.hasher);
        self.slots
            .reserve(rows, |s| hasher.hash_one(&*ids[*s as usize]));
    }

    /// Bytes held: ids with their headers, the table's buckets and
    /// control bytes, and the partition lists.
    pub fn memory_bytes(&self) -> usize {
        let ids: usize = self.ids.iter().map(|id| id.len()).sum::<usize>()
            + self.ids.capacity() * std::mem::size_of::<Box<str>>();
        // A table of n buckets holds 7n/8 entries; each bucket is a slot
        // number and a control byte.
        let table = self.slots.capacity() * 8 / 7 * (std::mem::size_of::<u32>() + 1);
        let partitions: usize = self
            .partitions_of
            .values()
            .map(|keys| keys.iter().map(|k| k.capacity() + 24).sum::<usize>() + 4 + 24 + 8)
            .sum();
        ids + table + partitions
    }
}

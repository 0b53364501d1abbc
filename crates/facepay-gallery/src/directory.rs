//! Who is in which slot: each slot's user id and partitions, the slot of
//! each user id, and the slots of each partition.
//!
//! At ten million rows this bookkeeping was a third of the gallery's
//! memory: every id was held twice (in the slot's list and as the map's
//! key) and every slot carried an empty list of partitions. Here an id is
//! held once, the map from id to slot holds only slot numbers (a
//! `hashbrown` table that hashes the id the slot points at), and only
//! slots that are in some partition have a list.
//!
//! Partitions are numbered: a key is kept by its partition, not by each
//! of its rows. A server puts every payer
//! in the partition of their phone's last digits: as a list of keys per
//! slot that was four allocations and about 100 bytes a row, and most of
//! a restart's time at ten million. A slot's first partition is now a
//! number in a dense list (4 bytes); only its further ones (a merchant's
//! regulars) sit in a map.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// A slot in no partition.
const NONE: u32 = u32::MAX;

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
    /// The number of each slot's first partition, or [`NONE`].
    first_partition: Vec<u32>,
    /// The numbers of the partitions of a slot after its first.
    more_partitions: HashMap<u32, Vec<u32>, RandomState>,
    partitions: Partitions,
}

/// Partition keys by number, and the slots in each.
#[derive(Default)]
struct Partitions {
    numbers: HashMap<Box<str>, u32, RandomState>,
    /// The key of each number; empty for a free number.
    keys: Vec<Box<str>>,
    members: Vec<Vec<u32>>,
    /// Numbers of partitions that lost their last member, to reuse.
    free: Vec<u32>,
}

impl Partitions {
    /// The number of partition `key`, made (empty) if new.
    fn number_or_new(&mut self, key: &str) -> u32 {
        if let Some(&number) = self.numbers.get(key) {
            return number;
        }
        let number = match self.free.pop() {
            Some(number) => {
                self.keys[number as usize] = key.into();
                number
            }
            None => {
                self.keys.push(key.into());
                self.members.push(Vec::new());
                (self.keys.len() - 1) as u32
            }
        };
        assert!(number != NONE, "partition numbers exhausted");
        self.numbers.insert(key.into(), number);
        number
    }

    /// Takes `slot` out of partition `number`, freed when it empties.
    fn leave(&mut self, number: u32, slot: u32) {
        let members = &mut self.members[number as usize];
        let before = members.len();
        members.retain(|s| *s != slot);
        assert_eq!(
            members.len() + 1,
            before,
            "a slot not once in its partition"
        );
        if members.is_empty() {
            *members = Vec::new();
            let key = std::mem::take(&mut self.keys[number as usize]);
            self.numbers.remove(&key);
            self.free.push(number);
        }
    }

    fn memory_bytes(&self) -> usize {
        let keys: usize = self.keys.iter().map(|k| 2 * k.len()).sum();
        let members: usize = self.members.iter().map(|m| 4 * m.capacity()).sum();
        let headers = self.keys.capacity() * std::mem::size_of::<Box<str>>()
            + self.members.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.numbers.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1);
        keys + members + headers + 4 * self.free.capacity()
    }
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
        self.first_partition.push(NONE);
        slot as u32
    }

    /// Room for `more` ids. The lists grow by an eighth, not double: at
    /// ten million rows the slack of doubling was ten bytes a row.
    fn grow(&mut self, more: usize) {
        if self.ids.capacity() - self.ids.len() < more {
            let room = more.max(self.ids.len() / 8);
            self.ids.reserve_exact(room);
            self.first_partition.reserve_exact(room);
        }
    }

    /// Puts `user_id` in the free slot `slot`, in `partitions`.
    pub fn insert(&mut self, slot: u32, user_id: &str, partitions: &[String]) {
        assert!(self.ids[slot as usize].is_empty(), "a slot taken twice");
        debug_assert!(self.slot(user_id).is_none(), "a user in two slots");
        self.ids[slot as usize] = user_id.into();
        let (ids, hasher) = (&self.ids, &self.hasher);
        let hash = hasher.hash_one(user_id);
        self.slots
            .insert_unique(hash, slot, |s| hasher.hash_one(&*ids[*s as usize]));
        for key in partitions {
            self.add_partition(slot, key);
        }
    }

    /// Frees `slot`: its id, and its place in its partitions.
    pub fn remove(&mut self, slot: u32) {
        let id = std::mem::take(&mut self.ids[slot as usize]);
        let hash = self.hasher.hash_one(&*id);
        let found = self.slots.find_entry(hash, |s| *s == slot);
        debug_assert!(found.is_ok(), "a live slot missing from the table");
        if let Ok(entry) = found {
            entry.remove();
        }
        let first = std::mem::replace(&mut self.first_partition[slot as usize], NONE);
        let more = self.more_partitions.remove(&slot).unwrap_or_default();
        for number in std::iter::once(first).filter(|n| *n != NONE).chain(more) {
            self.partitions.leave(number, slot);
        }
    }

    fn numbers_of(&self, slot: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self.first_partition[slot as usize];
        let more = self
            .more_partitions
            .get(&slot)
            .map_or(&[][..], Vec::as_slice);
        std::iter::once(first)
            .filter(|n| *n != NONE)
            .chain(more.iter().copied())
    }

    /// The keys of the partitions `slot` is in.
    pub fn partitions_of(&self, slot: u32) -> impl Iterator<Item = &str> + '_ {
        self.numbers_of(slot)
            .map(|n| &*self.partitions.keys[n as usize])
    }

    pub fn partition_count(&self, slot: u32) -> usize {
        self.numbers_of(slot).count()
    }

    pub fn in_partition(&self, slot: u32, key: &str) -> bool {
        self.partitions
            .numbers
            .get(key)
            .is_some_and(|number| self.numbers_of(slot).any(|n| n == *number))
    }

    /// The slots in partition `key`.
    pub fn members(&self, key: &str) -> &[u32] {
        self.partitions
            .numbers
            .get(key)
            .map_or(&[], |n| &self.partitions.members[*n as usize])
    }

    /// Puts `slot` in partition `key`; false if it was in it already.
    pub fn add_partition(&mut self, slot: u32, key: &str) -> bool {
        let number = self.partitions.number_or_new(key);
        if self.numbers_of(slot).any(|n| n == number) {
            return false;
        }
        self.partitions.members[number as usize].push(slot);
        let first = &mut self.first_partition[slot as usize];
        if *first == NONE {
            *first = number;
        } else {
            self.more_partitions.entry(slot).or_default().push(number);
        }
        true
    }

    pub fn reserve(&mut self, rows: usize) {
        self.grow(rows);
        let (ids, hasher) = (&self.ids, &self.hasher);
        self.slots
            .reserve(rows, |s| hasher.hash_one(&*ids[*s as usize]));
    }

    /// Bytes held: ids with their headers, the table's buckets and
    /// control bytes, and the partitions.
    pub fn memory_bytes(&self) -> usize {
        let ids: usize = self.ids.iter().map(|id| id.len()).sum::<usize>()
            + self.ids.capacity() * std::mem::size_of::<Box<str>>();
        // A table of n buckets holds 7n/8 entries; each bucket is a slot
        // number and a control byte.
        let table = self.slots.capacity() * 8 / 7 * (std::mem::size_of::<u32>() + 1);
        let more: usize = self
            .more_partitions
            .values()
            .map(|numbers| 4 * numbers.capacity() + 4 + 24 + 8)
            .sum();
        ids + table + 4 * self.first_partition.capacity() + more + self.partitions.memory_bytes()
    }
}

//! Names are stored once and referred to by a small id. Lookups take the
//! name's hash precomputed by the parser workers ([`crate::table::name_hash`]),
//! so the aggregator never hashes a name twice.

use std::collections::HashMap;

use hashbrown::HashTable;

use crate::table::name_hash;

pub type Map<K, V> = HashMap<K, V, ahash::RandomState>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

#[derive(Default)]
pub struct Interner {
    table: HashTable<u32>,
    names: Vec<Box<[u8]>>,
    hashes: Vec<u64>,
}

impl Interner {
    pub fn intern(&mut self, name: &[u8]) -> NameId {
        self.intern_hashed(name, name_hash(name))
    }

    /// Interns `name`, whose [`name_hash`] is `hash`.
    pub fn intern_hashed(&mut self, name: &[u8], hash: u64) -> NameId {
        let names = &self.names;
        if let Some(&id) = self
            .table
            .find(hash, |&id| names.get(id as usize).is_some_and(|n| **n == *name))
        {
            return NameId(id);
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table
            .insert_unique(hash, id, |&i| hashes.get(i as usize).copied().unwrap_or(0));
        NameId(id)
    }

    /// The id of a name already seen (whose hash is `hash`), without
    /// storing a new one.
    pub fn get_hashed(&self, name: &[u8], hash: u64) -> Option<NameId> {
        let names = &self.names;
        self.table
            .find(hash, |&id| names.get(id as usize).is_some_and(|n| **n == *name))
            .map(|&id| NameId(id))
    }

    /// The id of a name already seen, without storing a new one.
    pub fn get(&self, name: &[u8]) -> Option<NameId> {
        let names = &self.names;
        self.table
            .find(name_hash(name), |&id| {
                names.get(id as usize).is_some_and(|n| **n == *name)
            })
            .map(|&id| NameId(id))
    }

    pub fn name(&self, id: NameId) -> &[u8] {
        self.names.get(id.0 as usize).map_or(&[], |n| n)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_id() {
        let mut i = Interner::default();
        let a = i.intern(b"a.example.");
        let b = i.intern_hashed(b"b.example.", name_hash(b"b.example."));
        assert_ne!(a, b);
        assert_eq!(i.intern(b"a.example."), a);
        assert_eq!(i.get(b"b.example."), Some(b));
        assert_eq!(i.get(b"c.example."), None);
        assert_eq!(i.name(b), b"b.example.");
        assert_eq!(i.len(), 2);
        for n in 0..1000u32 {
            let name = format!("n{n}.example.");
            let id = i.intern(name.as_bytes());
            assert_eq!(i.name(id), name.as_bytes());
        }
        assert_eq!(i.get(b"a.example."), Some(a));
    }
}

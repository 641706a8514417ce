//! Names are stored once, in one arena, and referred to by a small id.
//! Lookups take the name's hash precomputed by the parser workers
//! ([`crate::table::name_hash`]), so the aggregator never hashes a name.

use std::collections::HashMap;

use hashbrown::HashTable;

use crate::table::name_hash;

pub type Map<K, V> = HashMap<K, V, ahash::RandomState>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

#[derive(Default)]
pub struct Interner {
    table: HashTable<u32>,
    /// Every name's bytes, one after another.
    bytes: Vec<u8>,
    /// Per id: (start in `bytes`, length, hash).
    entries: Vec<(u32, u32, u64)>,
}

impl Interner {
    pub fn intern(&mut self, name: &[u8]) -> NameId {
        self.intern_hashed(name, name_hash(name))
    }

    /// Interns `name`, whose [`name_hash`] is `hash`.
    pub fn intern_hashed(&mut self, name: &[u8], hash: u64) -> NameId {
        if let Some(id) = self.get_hashed(name, hash) {
            return id;
        }
        let id = self.entries.len() as u32;
        self.entries
            .push((self.bytes.len() as u32, name.len() as u32, hash));
        self.bytes.extend_from_slice(name);
        let entries = &self.entries;
        self.table
            .insert_unique(hash, id, |&i| entries.get(i as usize).map_or(0, |&(_, _, h)| h));
        NameId(id)
    }

    /// The id of a name already seen (whose hash is `hash`), without
    /// storing a new one.
    pub fn get_hashed(&self, name: &[u8], hash: u64) -> Option<NameId> {
        self.table
            .find(hash, |&id| self.name(NameId(id)) == name)
            .map(|&id| NameId(id))
    }

    /// The id of a name already seen, without storing a new one.
    pub fn get(&self, name: &[u8]) -> Option<NameId> {
        self.get_hashed(name, name_hash(name))
    }

    pub fn name(&self, id: NameId) -> &[u8] {
        self.entries
            .get(id.0 as usize)
            .and_then(|&(start, len, _)| self.bytes.get(start as usize..(start + len) as usize))
            .unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        assert_eq!(i.name(NameId(99_999)), b"");
    }
}

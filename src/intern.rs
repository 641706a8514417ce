//! Names are stored once and referred to by a small id.

use std::collections::HashMap;

pub type Map<K, V> = HashMap<K, V, ahash::RandomState>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

#[derive(Default)]
pub struct Interner {
    ids: Map<Box<[u8]>, NameId>,
    names: Vec<Box<[u8]>>,
}

impl Interner {
    pub fn intern(&mut self, name: &[u8]) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = NameId(self.names.len() as u32);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The id of a name already seen, without storing a new one.
    pub fn get(&self, name: &[u8]) -> Option<NameId> {
        self.ids.get(name).copied()
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
        let b = i.intern(b"b.example.");
        assert_ne!(a, b);
        assert_eq!(i.intern(b"a.example."), a);
        assert_eq!(i.get(b"b.example."), Some(b));
        assert_eq!(i.get(b"c.example."), None);
        assert_eq!(i.name(b), b"b.example.");
        assert_eq!(i.len(), 2);
    }
}

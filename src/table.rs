//! Small building blocks for the aggregator's bounded tables.
//!
//! Keys of short-lived tables (pending queries, recent SYNs) are 64-bit
//! fingerprints made with a hasher keyed at random once per run, so an
//! attacker cannot aim collisions; two keys share a fingerprint with
//! probability 2^-64 per pair. Names in DNS events carry such a hash too,
//! computed by the parser workers, so the aggregator never rehashes them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;

/// The per-run keyed hasher shared by every thread.
pub fn keyed() -> &'static ahash::RandomState {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new)
}

/// A 64-bit fingerprint of any hashable value.
pub fn fingerprint<T: Hash>(value: &T) -> u64 {
    keyed().hash_one(value)
}

/// The fingerprint of a name in report form.
pub fn name_hash(name: &[u8]) -> u64 {
    keyed().hash_one(name)
}

/// Passes a fingerprint through unchanged: the key is already a hash.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub type FingerprintMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// A table whose entries live at least `window` and at most twice that
/// (capture time), with no per-entry bookkeeping: entries go into the
/// current generation; when the window has passed the previous generation
/// is dropped whole and the current one becomes the previous. When the two
/// hold more than `cap` entries, the previous generation (the oldest
/// entries) is dropped early.
pub struct Generations<V> {
    current: FingerprintMap<V>,
    previous: FingerprintMap<V>,
    started: u64,
    window: u64,
    cap: usize,
}

impl<V> Generations<V> {
    pub fn new(window: u64, cap: usize) -> Self {
        Generations {
            current: FingerprintMap::default(),
            previous: FingerprintMap::default(),
            started: 0,
            window,
            cap: cap.max(2),
        }
    }

    /// Moves to a new generation when the window has passed; returns how
    /// many entries were dropped for age.
    pub fn advance(&mut self, now: u64) -> u64 {
        if now < self.started.saturating_add(self.window) {
            return 0;
        }
        let mut dropped = self.previous.len() as u64;
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
        if now >= self.started.saturating_add(self.window.saturating_mul(2)) {
            // Nothing was added for a whole window: all of it is old.
            dropped += self.previous.len() as u64;
            self.previous.clear();
        }
        self.started = now;
        dropped
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.current.get(&key).or_else(|| self.previous.get(&key))
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        self.current.remove(&key).or_else(|| self.previous.remove(&key))
    }

    /// Inserts or replaces; returns how many entries were evicted to stay
    /// within the cap (each generation holds at most half of it).
    pub fn insert(&mut self, key: u64, value: V) -> u64 {
        if !self.previous.is_empty() {
            self.previous.remove(&key);
        }
        let mut evicted = 0;
        if self.current.len() >= self.cap / 2 && !self.current.contains_key(&key) {
            evicted = self.previous.len() as u64;
            self.previous.clear();
            std::mem::swap(&mut self.current, &mut self.previous);
        }
        self.current.insert(key, value);
        evicted
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_one_to_two_windows() {
        let mut g = Generations::new(10, 100);
        g.insert(1, "a");
        assert_eq!(g.advance(5), 0);
        assert_eq!(g.get(1), Some(&"a"));
        assert_eq!(g.advance(12), 0); // "a" is now in the previous generation
        assert_eq!(g.get(1), Some(&"a"));
        g.insert(2, "b");
        assert_eq!(g.advance(23), 1); // "a" dropped
        assert_eq!(g.get(1), None);
        assert_eq!(g.get(2), Some(&"b"));
        assert_eq!(g.advance(100), 1); // a long gap drops everything
        assert!(g.is_empty());
    }

    #[test]
    fn the_cap_drops_the_oldest_generation() {
        let mut g = Generations::new(1_000, 10);
        for k in 0..6 {
            g.insert(k, k);
        }
        g.advance(1_000);
        let mut evicted = 0;
        for k in 6..20 {
            evicted += g.insert(k, k);
            assert!(g.len() <= 10);
        }
        assert!(evicted >= 6);
        assert_eq!(g.get(19), Some(&19));
        assert_eq!(g.get(0), None);
    }

    #[test]
    fn replacing_a_key_leaves_no_stale_copy() {
        let mut g = Generations::new(10, 100);
        g.insert(7, 1);
        g.advance(10);
        g.insert(7, 2);
        assert_eq!(g.remove(7), Some(2));
        assert_eq!(g.get(7), None);
    }
}

//! Reads of the hot path (token → user, a user's active grants, an entitlement) kept in memory, so that the grant
//! check `cone` makes answers without a database round trip.
//!
//! Invalidation is by generation, not by time: every committed write of this process, and on PostgreSQL every
//! other replica's write to the tables behind these reads (a `cone_cache` notification), moves the generation on,
//! and an entry answers only in the generation it was read in. A read takes the generation *before* it goes to
//! the database, so one that raced a write is stored under the old generation and never served.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Enough for every signed-in user of a large organisation; past it a map starts again rather than grow.
const MAX_ENTRIES: usize = 65_536;

#[derive(Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The data behind the cached reads may have changed.
    pub fn advance(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

pub struct Cached<K, V> {
    entries: Mutex<HashMap<K, (u64, V)>>,
}

impl<K: Hash + Eq, V: Clone> Default for Cached<K, V> {
    fn default() -> Self {
        Cached { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V: Clone> Cached<K, V> {
    /// The value read in generation `generation`, if that is the current one.
    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(g, _)| *g == generation).map(|(_, v)| v.clone())
    }

    /// Keeps `value`, read in `generation` (taken before the read).
    pub fn put(&self, key: K, generation: u64, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (g, _)| *g == generation);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (generation, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_answers_only_in_its_generation() {
        let generation = Generation::default();
        let cache = Cached::<&str, i32>::default();
        let read_at = generation.current();
        cache.put("a", read_at, 1);
        assert_eq!(cache.get(&"a", generation.current()), Some(1));
        generation.advance();
        assert_eq!(cache.get(&"a", generation.current()), None);
    }

    #[test]
    fn a_read_that_raced_a_write_is_never_served() {
        let generation = Generation::default();
        let cache = Cached::<&str, i32>::default();
        let read_at = generation.current();
        // A write commits (and advances) while the read is at the database; the read then stores what it saw.
        generation.advance();
        cache.put("a", read_at, 1);
        assert_eq!(cache.get(&"a", generation.current()), None);
    }

    #[test]
    fn the_map_stays_bounded() {
        let cache = Cached::<usize, usize>::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(i, 0, i);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert_eq!(cache.get(&(MAX_ENTRIES + 9), 0), Some(MAX_ENTRIES + 9));
    }
}

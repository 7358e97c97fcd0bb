//! A service's destinations by key: a sorted vector, not a `BTreeMap`.
//!
//! Most services have one to four backends; a `BTreeMap`'s first leaf node has room for eleven entries (about 1 KB
//! for a `Destination`), which a table of 180,000 services pays for each of them. `DestMap` keeps the destinations
//! sorted by key in one vector, exactly as long as they are once built, and offers the map operations the rest of
//! the program uses (lookups by binary search, iteration in key order, insertion and removal), with the same order
//! and the same answers as the map it replaces.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Index;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::destination::{DestKey, Destination};

/// Destinations by key, in key order. Each destination is stored once, its key being its own `key`: an insertion
/// under another key is a caller's error (checked in debug builds), and so is changing `key` through `get_mut` or
/// `values_mut`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DestMap {
    entries: Vec<Destination>,
}

impl DestMap {
    /// No destination.
    pub const fn new() -> Self {
        DestMap { entries: Vec::new() }
    }

    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no destination.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `key` is (`Ok`) or would be inserted (`Err`). Appending in key order (the planner's and the readers'
    /// usual order) does not search.
    fn position(&self, key: &DestKey) -> Result<usize, usize> {
        match self.entries.last() {
            None => Err(0),
            Some(last) if last.key < *key => Err(self.entries.len()),
            Some(_) => self.entries.binary_search_by(|d| d.key.cmp(key)),
        }
    }

    /// The destination of `key`.
    pub fn get(&self, key: &DestKey) -> Option<&Destination> {
        self.position(key).ok().map(|i| &self.entries[i])
    }

    /// The destination of `key`, to change (not its key).
    pub fn get_mut(&mut self, key: &DestKey) -> Option<&mut Destination> {
        self.position(key).ok().map(|i| &mut self.entries[i])
    }

    /// Whether `key` has a destination.
    pub fn contains_key(&self, key: &DestKey) -> bool {
        self.position(key).is_ok()
    }

    /// Inserts `dest` (whose key must be `key`), returning the destination it replaces.
    pub fn insert(&mut self, key: DestKey, dest: Destination) -> Option<Destination> {
        debug_assert_eq!(key, dest.key, "a destination is kept under its own key");
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i], dest)),
            Err(i) => {
                self.entries.insert(i, dest);
                None
            }
        }
    }

    /// Removes the destination of `key`, returning it.
    pub fn remove(&mut self, key: &DestKey) -> Option<Destination> {
        self.position(key).ok().map(|i| self.entries.remove(i))
    }

    /// Keeps only the destinations for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&DestKey, &mut Destination) -> bool) {
        self.entries.retain_mut(|dest| {
            let key = dest.key;
            keep(&key, dest)
        });
    }

    /// Gives back the room a vector grown by insertions keeps beyond its length.
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &DestKey> + ExactSizeIterator + Clone {
        self.entries.iter().map(|d| &d.key)
    }

    /// The destinations, in key order.
    pub fn values(&self) -> std::slice::Iter<'_, Destination> {
        self.entries.iter()
    }

    /// The destinations, in key order, to change (not their keys).
    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, Destination> {
        self.entries.iter_mut()
    }

    /// `(key, destination)` pairs, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// From destinations in any order, each key at most once; `Err` with a key that appears twice.
    pub fn from_unique(mut dests: Vec<Destination>) -> Result<Self, DestKey> {
        dests.sort_by_key(|d| d.key);
        if let Some(pair) = dests.windows(2).find(|pair| pair[0].key == pair[1].key) {
            return Err(pair[0].key);
        }
        dests.shrink_to_fit();
        Ok(DestMap { entries: dests })
    }
}

/// `(key, destination)` pairs of a [`DestMap`], in key order.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, Destination>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a DestKey, &'a Destination);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|d| (&d.key, d))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|d| (&d.key, d))
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl FusedIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a DestMap {
    type Item = (&'a DestKey, &'a Destination);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for DestMap {
    type Item = (DestKey, Destination);
    type IntoIter = std::iter::Map<std::vec::IntoIter<Destination>, fn(Destination) -> (DestKey, Destination)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter().map(|d| (d.key, d))
    }
}

/// As a map's: a later destination of the same key replaces an earlier one. The result has no spare room.
impl FromIterator<(DestKey, Destination)> for DestMap {
    fn from_iter<I: IntoIterator<Item = (DestKey, Destination)>>(iter: I) -> Self {
        let mut entries: Vec<Destination> = iter
            .into_iter()
            .map(|(key, dest)| {
                debug_assert_eq!(key, dest.key, "a destination is kept under its own key");
                dest
            })
            .collect();
        // Stable: equal keys stay in the order given; the later one wins.
        entries.sort_by_key(|d| d.key);
        entries.dedup_by(|later, kept| {
            let same = later.key == kept.key;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        entries.shrink_to_fit();
        DestMap { entries }
    }
}

impl Extend<(DestKey, Destination)> for DestMap {
    fn extend<I: IntoIterator<Item = (DestKey, Destination)>>(&mut self, iter: I) {
        for (key, dest) in iter {
            self.insert(key, dest);
        }
    }
}

impl<const N: usize> From<[(DestKey, Destination); N]> for DestMap {
    fn from(pairs: [(DestKey, Destination); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<DestKey, Destination>> for DestMap {
    fn from(map: BTreeMap<DestKey, Destination>) -> Self {
        map.into_iter().collect()
    }
}

impl Index<&DestKey> for DestMap {
    type Output = Destination;

    fn index(&self, key: &DestKey) -> &Destination {
        self.get(key).expect("no entry found for key")
    }
}

/// As a map's.
impl fmt::Debug for DestMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As the map it replaces: a map from key to destination.
impl Serialize for DestMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for DestMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<DestKey, Destination>::deserialize(deserializer).map(DestMap::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DestConfig;

    fn dest(last: u8, weight: u32) -> Destination {
        Destination::new(DestKey::new([10, 0, 0, last].into(), 80), DestConfig::masquerade(weight))
    }

    /// Every operation answers as a `BTreeMap` does, in the same order.
    #[test]
    fn behaves_as_a_btreemap() {
        let mut map = DestMap::new();
        let mut model = BTreeMap::new();
        let steps: [(u8, u32, bool); 12] = [
            (5, 1, true),
            (2, 1, true),
            (9, 1, true),
            (2, 7, true),
            (7, 1, true),
            (5, 0, false),
            (1, 3, true),
            (4, 0, false),
            (9, 2, true),
            (9, 0, false),
            (3, 1, true),
            (12, 1, true),
        ];
        for (last, weight, add) in steps {
            let d = dest(last, weight);
            if add {
                assert_eq!(map.insert(d.key, d.clone()), model.insert(d.key, d.clone()));
            } else {
                assert_eq!(map.remove(&d.key), model.remove(&d.key));
            }
            assert_eq!(map.len(), model.len());
            assert!(map.iter().eq(model.iter()));
            assert_eq!(format!("{map:?}"), format!("{model:?}"));
            for probe in 0..14 {
                let key = dest(probe, 0).key;
                assert_eq!(map.get(&key), model.get(&key));
                assert_eq!(map.contains_key(&key), model.contains_key(&key));
            }
        }
        map.retain(|k, d| {
            d.config.weight += 1;
            k.addr != dest(3, 0).key.addr
        });
        model.retain(|k, d| {
            d.config.weight += 1;
            k.addr != dest(3, 0).key.addr
        });
        assert!(map.iter().eq(model.iter()));
        assert!(map.keys().rev().eq(model.keys().rev()));
        assert_eq!(map.clone().into_iter().collect::<Vec<_>>(), model.clone().into_iter().collect::<Vec<_>>());
        let yaml = serde_yaml::to_string(&map).unwrap();
        assert_eq!(yaml, serde_yaml::to_string(&model).unwrap());
        assert_eq!(serde_yaml::from_str::<DestMap>(&yaml).unwrap(), map);
    }

    #[test]
    fn collecting_keeps_the_later_of_equal_keys_and_no_spare_room() {
        let pairs = [dest(3, 1), dest(1, 1), dest(3, 2), dest(2, 1), dest(1, 5)].map(|d| (d.key, d));
        let map: DestMap = pairs.clone().into_iter().collect();
        let model: BTreeMap<_, _> = pairs.into_iter().collect();
        assert!(map.iter().eq(model.iter()));
        assert_eq!(map.entries.capacity(), map.len());
    }

    #[test]
    fn from_unique_finds_a_repeated_key() {
        assert_eq!(DestMap::from_unique(vec![dest(2, 1), dest(1, 1), dest(2, 3)]), Err(dest(2, 0).key));
        let map = DestMap::from_unique(vec![dest(2, 1), dest(1, 1)]).unwrap();
        assert!(map.keys().copied().eq([dest(1, 0).key, dest(2, 0).key]));
    }
}

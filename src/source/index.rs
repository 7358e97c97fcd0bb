//! The synchronous index every source feeds: objects by identity, and the problems of those that could not be read.

use std::collections::BTreeMap;

use crate::api::{DesiredOutcome, ObjectId, SourceObject, ValidationError, build_desired};

/// The objects of one source by identity, updated by `apply` / `delete` / `reset` (a watch's events, or a reload of
/// files), from which the desired table is computed.
#[derive(Debug, Clone, Default)]
pub struct ObjectIndex {
    objects: BTreeMap<ObjectId, SourceObject>,
    /// Objects the source saw but could not read (bad YAML, wrong kind, wrong field types), with why.
    unreadable: BTreeMap<ObjectId, Vec<ValidationError>>,
}

impl ObjectIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object.
    pub fn apply(&mut self, object: SourceObject) {
        self.unreadable.remove(&object.id);
        self.objects.insert(object.id.clone(), object);
    }

    /// Records that object `id` exists but could not be read; it replaces any earlier version of it.
    pub fn apply_unreadable(&mut self, id: ObjectId, errors: Vec<ValidationError>) {
        self.objects.remove(&id);
        self.unreadable.insert(id, errors);
    }

    /// Forgets an object.
    pub fn delete(&mut self, id: &ObjectId) {
        self.objects.remove(id);
        self.unreadable.remove(id);
    }

    /// Replaces everything at once (a complete re-list or reload): objects not given are gone.
    pub fn reset(&mut self, objects: Vec<SourceObject>, unreadable: Vec<ValidationError>) {
        self.objects = objects.into_iter().map(|o| (o.id.clone(), o)).collect();
        self.unreadable.clear();
        for error in unreadable {
            self.unreadable.entry(error.object.clone()).or_default().push(error);
        }
    }

    /// Number of readable objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the index holds no object, readable or not.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.unreadable.is_empty()
    }

    /// The desired table and every problem: unreadable objects first (by identity), then invalid ones.
    pub fn desired(&self) -> DesiredOutcome {
        let mut outcome = build_desired(self.objects.values().cloned().collect());
        let mut errors: Vec<_> = self.unreadable.values().flatten().cloned().collect();
        errors.append(&mut outcome.errors);
        outcome.errors = errors;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Age;

    fn object(name: &str, created: i64, yaml: &str) -> SourceObject {
        SourceObject {
            id: ObjectId::kubernetes("default", name),
            age: Age::Created { seconds: created, nanos: 0 },
            spec: serde_yaml::from_str(yaml).unwrap(),
        }
    }

    const WEB: &str = "address: 192.0.2.1\nport: 80\n";
    const DNS: &str = "address: 192.0.2.1\nport: 53\nprotocol: UDP\n";

    fn origins(index: &ObjectIndex) -> Vec<String> {
        index.desired().table.services.values().map(|s| s.origin.to_string()).collect()
    }

    #[test]
    fn apply_replace_and_delete() {
        let mut index = ObjectIndex::new();
        index.apply(object("web", 1, WEB));
        index.apply(object("dns", 2, DNS));
        assert_eq!(origins(&index), vec!["default/web", "default/dns"]);
        // Replacing an object changes what it asks for.
        index.apply(object("web", 1, "address: 192.0.2.9\nport: 80\n"));
        let keys: Vec<_> = index.desired().table.services.keys().map(ToString::to_string).collect();
        assert_eq!(keys, vec!["TCP 192.0.2.9:80", "UDP 192.0.2.1:53"]);
        index.delete(&ObjectId::kubernetes("default", "web"));
        assert_eq!(origins(&index), vec!["default/dns"]);
    }

    #[test]
    fn deleting_the_winner_hands_the_key_to_the_next_oldest() {
        let mut index = ObjectIndex::new();
        index.apply(object("old", 1, WEB));
        index.apply(object("new", 2, WEB));
        assert_eq!(index.desired().conflicts.len(), 1);
        index.delete(&ObjectId::kubernetes("default", "old"));
        let out = index.desired();
        assert!(out.conflicts.is_empty());
        assert_eq!(out.table.services.values().next().unwrap().origin.to_string(), "default/new");
    }

    #[test]
    fn unreadable_objects_are_reported_until_replaced() {
        let mut index = ObjectIndex::new();
        let id = ObjectId::kubernetes("default", "web");
        index.apply(object("web", 1, WEB));
        index.apply_unreadable(id.clone(), vec![ValidationError::new(id.clone(), "spec.port", "not a number")]);
        let out = index.desired();
        assert!(out.table.services.is_empty());
        assert_eq!(out.errors[0].to_string(), "default/web: spec.port: not a number");
        index.apply(object("web", 1, WEB));
        assert!(index.desired().is_clean());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn reset_replaces_everything() {
        let mut index = ObjectIndex::new();
        index.apply(object("web", 1, WEB));
        let broken = ObjectId::kubernetes("default", "broken");
        index.reset(vec![object("dns", 2, DNS)], vec![ValidationError::new(broken, "", "bad")]);
        assert_eq!(origins(&index), vec!["default/dns"]);
        assert_eq!(index.desired().errors.len(), 1);
        index.reset(Vec::new(), Vec::new());
        assert!(index.is_empty());
        assert!(index.desired().table.services.is_empty());
    }
}

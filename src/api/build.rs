//! The desired table from many objects: each validated on its own, conflicts settled by age.

use std::collections::BTreeMap;

use super::error::{Conflict, ValidationError};
use super::object::{ObjectId, SourceObject};
use super::validate::{Rejected, validate};
use crate::model::ServiceKey;
use crate::table::DesiredTable;

/// What a set of objects asks for, and what was wrong with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredOutcome {
    /// The services of every valid object that won its key.
    pub table: DesiredTable,
    /// Every problem of every invalid object, objects oldest first, fields in order.
    pub errors: Vec<ValidationError>,
    /// Objects ignored because an older object asks for the same service.
    pub conflicts: Vec<Conflict>,
    /// Services asked for by objects that are invalid, by the object that holds them. They are not in `table`;
    /// a caller should leave them as they are rather than delete them while the object is being fixed.
    pub held: BTreeMap<ServiceKey, ObjectId>,
}

impl DesiredOutcome {
    /// Whether every object was valid and none conflicted.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.conflicts.is_empty()
    }
}

/// Builds the desired table from `objects`.
///
/// One bad object never stops the others. Objects are taken oldest first ([`Age`](super::Age), then
/// [`ObjectId`]); the first to ask for a service key keeps it, later ones are reported as conflicting. An invalid
/// object whose key is readable still claims it (as `held`), so fixing a typo in the older object never hands its
/// service to a younger one for a while. The result depends only on the set of objects, not on their order.
pub fn build_desired(mut objects: Vec<SourceObject>) -> DesiredOutcome {
    objects.sort_by(|a, b| (a.age, &a.id).cmp(&(b.age, &b.id)));
    let mut outcome = DesiredOutcome::default();
    // Which object claimed each key first.
    let mut claims: BTreeMap<ServiceKey, ObjectId> = BTreeMap::new();
    for object in objects {
        match validate(&object.id, &object.spec) {
            Ok(desired) => {
                let key = desired.service.key;
                if let Some(owner) = claims.get(&key) {
                    outcome.conflicts.push(Conflict { key, object: object.id, claimed_by: owner.clone() });
                } else {
                    claims.insert(key, object.id);
                    outcome.table.services.insert(key, desired);
                }
            }
            Err(Rejected { errors, key }) => {
                outcome.errors.extend(errors);
                if let Some(key) = key {
                    if let Some(owner) = claims.get(&key) {
                        outcome.conflicts.push(Conflict { key, object: object.id, claimed_by: owner.clone() });
                    } else {
                        claims.insert(key, object.id.clone());
                        outcome.held.insert(key, object.id);
                    }
                }
            }
        }
    }
    outcome
}

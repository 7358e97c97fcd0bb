//! Problems found in objects: validation errors (one per field) and conflicts between objects.

use std::fmt;

use thiserror::Error;

use super::object::ObjectId;
use crate::model::ServiceKey;

/// One problem of one object, naming the field: `default/web: spec.backends[2].port: 70000 is out of range 0-65535`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ValidationError {
    /// The object.
    pub object: ObjectId,
    /// Path of the field, e.g. `spec.backends[2].port`; empty when the problem is the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// A problem of `field` of `object`.
    pub fn new(object: ObjectId, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { object, field: field.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// An object that asks for a service another, older object already claims; it is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{object}: service {key} is already claimed by {claimed_by}, which is older; this object is ignored")]
pub struct Conflict {
    /// The service both ask for.
    pub key: ServiceKey,
    /// The ignored (younger) object.
    pub object: ObjectId,
    /// The object that keeps the service.
    pub claimed_by: ObjectId,
}

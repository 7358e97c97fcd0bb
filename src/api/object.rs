//! Who asked for a service: object identities, their age (which decides conflicts) and the objects sources hand over.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::v1alpha1::{VirtualService, VirtualServiceSpec};
pub use crate::model::ObjectId;

/// How old an object is: when two objects claim the same service, the older one wins.
///
/// Ties (equal ages) are broken by [`ObjectId`], so the winner never depends on the order objects arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Age {
    /// A Kubernetes object's `creationTimestamp`; objects without one count as newest.
    Created {
        /// Seconds since the Unix epoch.
        seconds: i64,
        /// Nanoseconds within the second.
        nanos: i32,
    },
    /// Position in a file load: files in load order, then documents in file order.
    Loaded {
        /// Index of the file in the load.
        file: usize,
        /// Index of the document in its file.
        document: usize,
    },
}

impl Age {
    /// The age of an object created at `time` (`None`: unknown, sorts as newest).
    pub fn created(time: Option<&Time>) -> Self {
        match time {
            Some(t) => Age::Created { seconds: t.0.as_second(), nanos: t.0.subsec_nanosecond() },
            None => Age::Created { seconds: i64::MAX, nanos: 0 },
        }
    }

    /// The age of document `document` of the `file`-th file loaded.
    pub fn loaded(file: usize, document: usize) -> Self {
        Age::Loaded { file, document }
    }
}

/// One object as a source hands it to the index (`source::ObjectIndex`): identity, age and spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceObject {
    /// Identity, for messages and conflicts.
    pub id: ObjectId,
    /// Age, for conflicts.
    pub age: Age,
    /// What it asks for.
    pub spec: VirtualServiceSpec,
    /// `metadata.generation` of a Kubernetes object (status entries say which generation they speak of).
    pub generation: Option<i64>,
}

impl SourceObject {
    /// A Kubernetes object, identified by namespace and name and aged by its creation timestamp.
    pub fn from_resource(object: &VirtualService) -> Self {
        let meta = &object.metadata;
        SourceObject {
            id: ObjectId::kubernetes(meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default()),
            age: Age::created(meta.creation_timestamp.as_ref()),
            spec: object.spec.clone(),
            generation: meta.generation,
        }
    }
}

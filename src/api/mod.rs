//! The `VirtualService` API: types (they derive the CRD), validation into desired-table entries, the desired table
//! built from many objects, and the reverse mapping from a table back to manifests.

pub mod crd;
pub mod v1alpha1;

pub use crd::{crd, crd_yaml};
pub use v1alpha1::{VirtualService, VirtualServiceSpec};

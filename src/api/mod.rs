//! The `VirtualService` API: types (they derive the CRD), validation of one object into its desired-table entry, and
//! the reverse mapping from a table back to manifests. Merging many objects (conflicts, held keys) is the job of
//! `source::ObjectIndex`, the one merge point.
//!
//! ```text
//!   VirtualServiceSpec ──validate──► DesiredService          (one object: every error, each naming its field)
//!   Table ──from_table──► [VirtualService] + what cannot be expressed
//! ```

pub mod crd;
mod error;
pub mod export;
mod object;
pub mod pool;
pub mod v1alpha1;
pub mod validate;

pub use crd::{crd, crd_yaml, pool_crd};
pub use error::{Conflict, ValidationError};
pub use export::{TableExport, Unexpressible, from_table};
pub use object::{Age, ObjectId, SourceObject};
pub use v1alpha1::{VirtualService, VirtualServiceSpec};
pub use validate::{Declared, EndpointsRef, Rejected, validate, validate_read};

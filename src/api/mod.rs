//! The `VirtualService` API: types (they derive the CRD), validation into desired-table entries, the desired table
//! built from many objects, and the reverse mapping from a table back to manifests.
//!
//! ```text
//!   VirtualServiceSpec ──validate──► DesiredService          (one object: every error, each naming its field)
//!   [SourceObject]  ──build_desired──► DesiredOutcome        (many: oldest object wins a key; others conflict)
//!   Table ──from_table──► [VirtualService] + what cannot be expressed
//! ```

mod build;
pub mod crd;
mod error;
pub mod export;
mod object;
pub mod v1alpha1;
pub mod validate;

pub use build::{DesiredOutcome, Validated, build_desired, merge, validate_object};
pub use crd::{crd, crd_yaml};
pub use error::{Conflict, ValidationError};
pub use export::{TableExport, Unexpressible, from_table};
pub use object::{Age, ObjectId, SourceObject};
pub use v1alpha1::{VirtualService, VirtualServiceSpec};
pub use validate::{Rejected, validate};

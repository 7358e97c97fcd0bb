//! The real kernel behind the engine's `Kernel` trait.

use std::collections::BTreeSet;

use crate::ipvs::{Ipvs, IpvsError};
use crate::model::{Op, ServiceEntry, ServiceKey, Table};

use super::kernel::{Kernel, KernelFailure};

impl Kernel for Ipvs {
    type Error = IpvsError;

    async fn read_table(&self, expected: &BTreeSet<ServiceKey>) -> Result<Table, IpvsError> {
        Ipvs::read_table_confirming(self, expected).await
    }

    async fn read_service(&self, key: &ServiceKey) -> Result<Option<ServiceEntry>, IpvsError> {
        Ipvs::read_service_entry(self, key).await
    }

    async fn apply(&self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        Ipvs::apply(self, ops).await
    }

    fn is_connected(&self) -> bool {
        Ipvs::is_connected(self)
    }
}

impl KernelFailure for IpvsError {
    fn is_race(&self) -> bool {
        matches!(self, IpvsError::AlreadyExists(_) | IpvsError::NoSuchService(_) | IpvsError::NoSuchDestination(_))
    }

    fn is_gone(&self) -> bool {
        matches!(self, IpvsError::NoSuchService(_) | IpvsError::NoSuchDestination(_))
    }

    fn outcome_unknown(&self) -> bool {
        IpvsError::outcome_unknown(self)
    }

    fn connection_lost(&self) -> bool {
        matches!(self, IpvsError::ConnectionClosed { .. })
    }

    fn errno(&self) -> Option<i32> {
        IpvsError::errno(self)
    }

    fn metric_label(&self) -> &'static str {
        IpvsError::metric_label(self)
    }
}

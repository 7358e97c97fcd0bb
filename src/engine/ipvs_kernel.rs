//! The real kernel behind the engine's `Kernel` trait.

use crate::ipvs::{Ipvs, IpvsError};
use crate::model::{Op, ServiceEntry, ServiceKey, Table};

use super::kernel::{Kernel, KernelFailure};

impl Kernel for Ipvs {
    type Error = IpvsError;

    async fn read_table(&self) -> Result<Table, IpvsError> {
        Ipvs::read_table(self).await
    }

    async fn read_service(&self, key: &ServiceKey) -> Result<Option<ServiceEntry>, IpvsError> {
        let Some(service) = self.service(key).await? else { return Ok(None) };
        let dests = self.destinations(key).await?;
        // An empty destination dump is also what the kernel answers for a service deleted in between: look again.
        if dests.is_empty() && self.service(key).await?.is_none() {
            return Ok(None);
        }
        let mut entry = ServiceEntry::new(service);
        entry.dests = dests.into_iter().map(|d| (d.key, d)).collect();
        Ok(Some(entry))
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

//! The real kernel behind the engine's `Kernel` trait.

use crate::ipvs::{Ipvs, IpvsError};
use crate::model::{Op, ServiceEntry, ServiceKey, Table};

use super::kernel::Kernel;

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

    fn is_race(error: &IpvsError) -> bool {
        matches!(error, IpvsError::AlreadyExists(_) | IpvsError::NoSuchService(_) | IpvsError::NoSuchDestination(_))
    }

    fn is_gone(error: &IpvsError) -> bool {
        matches!(error, IpvsError::NoSuchService(_) | IpvsError::NoSuchDestination(_))
    }
}

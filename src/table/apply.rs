//! Applying operations to a `Table` in memory, as the kernel applies them to its own.
//!
//! Used in production to keep the engine's observed table up to date after operations were applied without reading
//! the kernel back (and by `plan` to show the addresses a pass would remove), by the in-memory test kernel, and by
//! the planner's tests to check that a plan is valid in sequence and reaches the desired table. Each refusal is the
//! one the kernel gives for the same request (EEXIST, ESRCH, ENOENT), so a plan that applies here is not refused by
//! the kernel for its order.

use thiserror::Error;

use crate::model::{DestKey, Op, ServiceEntry, ServiceKey, Table};

/// An operation the kernel would refuse given the current table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// `NEW_SERVICE` on a key that exists (the kernel's EEXIST).
    #[error("add-service {service}: the service already exists (EEXIST)")]
    ServiceExists {
        /// The service.
        service: ServiceKey,
    },
    /// A service operation or any destination operation on a missing service (the kernel's ESRCH).
    #[error("{verb} {service}: no such service (ESRCH)")]
    NoSuchService {
        /// The refused operation (`Op::verb`).
        verb: &'static str,
        /// The service.
        service: ServiceKey,
    },
    /// `NEW_DEST` on a destination that exists (the kernel's EEXIST).
    #[error("add-destination {service} -> {dest}: the destination already exists (EEXIST)")]
    DestExists {
        /// The service.
        service: ServiceKey,
        /// The destination.
        dest: DestKey,
    },
    /// `SET_DEST` or `DEL_DEST` on a missing destination (the kernel's ENOENT).
    #[error("{verb} {service} -> {dest}: no such destination (ENOENT)")]
    NoSuchDest {
        /// The refused operation (`Op::verb`).
        verb: &'static str,
        /// The service.
        service: ServiceKey,
        /// The destination.
        dest: DestKey,
    },
}

/// Applies one operation to `table` as the kernel would; on refusal the table is unchanged.
///
/// Edits replace the configuration and keep counters and connection counts; additions carry whatever counters the
/// operation holds (none, when it comes from the planner), as a new kernel object starts at zero.
pub fn apply_op(table: &mut Table, op: &Op) -> Result<(), ApplyError> {
    let verb = op.verb();
    match op {
        Op::AddService(service) => {
            if table.services.contains_key(&service.key) {
                return Err(ApplyError::ServiceExists { service: service.key });
            }
            table.services.insert(service.key, ServiceEntry::new(service.clone()));
        }
        Op::UpdateService(service) => {
            let entry = entry_mut(table, verb, &service.key)?;
            entry.service.config = service.config.clone();
        }
        Op::DeleteService(key) => {
            // The kernel drops the destinations with the service.
            table.services.remove(key).ok_or(ApplyError::NoSuchService { verb, service: *key })?;
        }
        Op::AddDest(key, dest) => {
            let entry = entry_mut(table, verb, key)?;
            if entry.dests.contains_key(&dest.key) {
                return Err(ApplyError::DestExists { service: *key, dest: dest.key });
            }
            entry.dests.insert(dest.key, dest.clone());
        }
        Op::UpdateDest(key, dest) => {
            let entry = entry_mut(table, verb, key)?;
            let live =
                entry.dests.get_mut(&dest.key).ok_or(ApplyError::NoSuchDest { verb, service: *key, dest: dest.key })?;
            live.config = dest.config;
        }
        Op::DeleteDest(key, dest) => {
            let entry = entry_mut(table, verb, key)?;
            entry.dests.remove(dest).ok_or(ApplyError::NoSuchDest { verb, service: *key, dest: *dest })?;
        }
    }
    Ok(())
}

/// Applies `ops` in order, stopping at the first the kernel would refuse (the ones before it stay applied).
pub fn apply_ops(table: &mut Table, ops: &[Op]) -> Result<(), ApplyError> {
    ops.iter().try_for_each(|op| apply_op(table, op))
}

fn entry_mut<'t>(
    table: &'t mut Table,
    verb: &'static str,
    key: &ServiceKey,
) -> Result<&'t mut ServiceEntry, ApplyError> {
    table.services.get_mut(key).ok_or(ApplyError::NoSuchService { verb, service: *key })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::model::{ConnCounts, DestConfig, Destination, Family, Service, ServiceConfig, Stats};

    fn key() -> ServiceKey {
        ServiceKey::tcp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80)
    }

    fn dest_key(last: u8) -> DestKey {
        DestKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 80)
    }

    fn table_with_one_dest() -> Table {
        let mut table = Table::default();
        let mut service = Service::new(key(), ServiceConfig::new(Family::V4, "rr"));
        service.stats = Some(Box::new(Stats { conns: 7, ..Stats::default() }));
        let entry = table.insert_service(service);
        let mut dest = Destination::new(dest_key(1), DestConfig::masquerade(1));
        dest.conns = ConnCounts { active: 3, inactive: 1, persistent: 0 };
        entry.dests.insert(dest.key, dest);
        table
    }

    #[test]
    fn delete_service_drops_its_destinations() {
        let mut table = table_with_one_dest();
        apply_op(&mut table, &Op::DeleteService(key())).unwrap();
        assert!(table.is_empty());
        assert_eq!(table.dest_count(), 0);
    }

    #[test]
    fn edits_keep_counters_and_connection_counts() {
        let mut table = table_with_one_dest();
        let ops = [
            Op::UpdateService(Service::new(key(), ServiceConfig::new(Family::V4, "wlc"))),
            Op::UpdateDest(key(), Destination::new(dest_key(1), DestConfig::masquerade(5))),
        ];
        apply_ops(&mut table, &ops).unwrap();
        let entry = &table.services[&key()];
        assert_eq!(entry.service.config.scheduler, "wlc");
        assert_eq!(entry.service.stats.as_ref().map(|s| s.conns), Some(7));
        let dest = &entry.dests[&dest_key(1)];
        assert_eq!(dest.config.weight, 5);
        assert_eq!(dest.conns.active, 3);
    }

    #[test]
    fn refusals_match_the_kernel_and_leave_the_table_unchanged() {
        let table = table_with_one_dest();
        let other = ServiceKey::udp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 53);
        let cases = [
            (
                Op::AddService(Service::new(key(), ServiceConfig::new(Family::V4, "rr"))),
                ApplyError::ServiceExists { service: key() },
            ),
            (Op::DeleteService(other), ApplyError::NoSuchService { verb: "delete-service", service: other }),
            (
                Op::AddDest(other, Destination::new(dest_key(1), DestConfig::masquerade(1))),
                ApplyError::NoSuchService { verb: "add-destination", service: other },
            ),
            (
                Op::AddDest(key(), Destination::new(dest_key(1), DestConfig::masquerade(1))),
                ApplyError::DestExists { service: key(), dest: dest_key(1) },
            ),
            (
                Op::UpdateDest(key(), Destination::new(dest_key(2), DestConfig::masquerade(1))),
                ApplyError::NoSuchDest { verb: "edit-destination", service: key(), dest: dest_key(2) },
            ),
            (
                Op::DeleteDest(key(), dest_key(2)),
                ApplyError::NoSuchDest { verb: "delete-destination", service: key(), dest: dest_key(2) },
            ),
        ];
        for (op, expected) in cases {
            let mut copy = table.clone();
            assert_eq!(apply_op(&mut copy, &op), Err(expected), "{op}");
            assert_eq!(copy, table, "{op} changed the table");
        }
    }

    #[test]
    fn apply_ops_stops_at_the_first_refusal() {
        let mut table = table_with_one_dest();
        let ops = [
            Op::DeleteDest(key(), dest_key(1)),
            Op::DeleteDest(key(), dest_key(1)),
            Op::AddDest(key(), Destination::new(dest_key(3), DestConfig::masquerade(1))),
        ];
        let err = apply_ops(&mut table, &ops).unwrap_err();
        assert_eq!(err.to_string(), "delete-destination TCP 192.0.2.1:80 -> 10.0.0.1:80: no such destination (ENOENT)");
        assert!(table.services[&key()].dests.is_empty(), "the op after the refusal was applied");
    }
}

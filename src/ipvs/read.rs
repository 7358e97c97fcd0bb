//! [`Ipvs::read_table`]: the whole table, consistent, quickly.
//!
//! One service dump, then one destination dump per service. Those run on every socket of the pool at once (the
//! kernel runs one dump at a time per socket), and each socket asks for many in one datagram: the kernel starts
//! them one after the other, and a service whose destinations fit one reply datagram is done before the next
//! starts; one that does not makes the next ones fail with `EBUSY`, and they are asked again (with smaller
//! batches, growing back while no refusal comes).
//!
//! The kernel never flags a dump that the table changed under (IPVS does not use `NLM_F_DUMP_INTR`), so
//! inconsistency is detected here: an entry twice in a dump, or a destination dump that came back empty because
//! its service went away meanwhile. Then the whole table is read again, a bounded number of times.

use std::collections::VecDeque;
use std::sync::Mutex;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use nix::errno::Errno;

use super::client::{Ipvs, answer_result, decode_all, ipvs_replies};
use super::connection::{Conn, Failure};
use super::packet::{IpvsCmd, IpvsMessage};
use super::{IpvsError, Request};
use crate::model::{Destination, Service, ServiceKey, Table};

/// One read of the table.
#[derive(Debug)]
enum Attempt {
    /// A consistent table.
    Done(Table),
    /// The table changed during the read, as this says.
    Changed(String),
}

/// Reads with `read_once` until one attempt sees a consistent table, at most `attempts` times (at least once).
async fn read_consistent<F, Fut>(attempts: u32, mut read_once: F) -> Result<Table, IpvsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt, IpvsError>>,
{
    let attempts = attempts.max(1);
    let mut detail = String::new();
    for attempt in 1..=attempts {
        match read_once().await {
            Ok(Attempt::Done(table)) => return Ok(table),
            Ok(Attempt::Changed(why)) => detail = why,
            Err(e) if worth_retrying(&e) => detail = e.to_string(),
            Err(e) => return Err(e),
        }
        tracing::debug!(attempt, %detail, "IPVS table changed during the read; reading it again");
    }
    Err(IpvsError::InconsistentRead { attempts, detail })
}

/// The table of one service dump. A service seen twice means the kernel's hash table changed during the dump
/// (entries moved under the cursor), so other entries may have been skipped: the dump cannot be trusted.
fn table_of_services(services: Vec<Service>) -> Result<Table, Attempt> {
    let mut table = Table::default();
    for service in services {
        if table.services.contains_key(&service.key) {
            return Err(Attempt::Changed(format!("service {} appeared twice in the service dump", service.key)));
        }
        table.insert_service(service);
    }
    Ok(table)
}

/// Adds the destinations of one service's dump; one seen twice means that dump met a changing table.
fn add_destinations(table: &mut Table, key: ServiceKey, dests: Vec<Destination>) -> Result<(), Attempt> {
    let Some(entry) = table.services.get_mut(&key) else { return Ok(()) };
    for dest in dests {
        let dest_key = dest.key;
        if entry.dests.insert(dest_key, dest).is_some() {
            return Err(Attempt::Changed(format!("destination {dest_key} of {key} appeared twice in its dump")));
        }
    }
    Ok(())
}

/// Errors that mean the read met a moving table or a transient condition, worth reading again.
fn worth_retrying(e: &IpvsError) -> bool {
    matches!(e, IpvsError::ReplyLost { .. } | IpvsError::Busy(_)) || e.errno() == Some(Errno::ENOBUFS as i32)
}

/// The result of one destination dump: the service, and its `NEW_DEST` replies.
type DestDump = (ServiceKey, Result<Vec<IpvsMessage>, IpvsError>);

impl Ipvs {
    /// Reads every service with its destinations and counters.
    ///
    /// Retries when the table changes during the read, up to
    /// [`ConnectOptions::read_attempts`](super::ConnectOptions) times, then fails with
    /// [`IpvsError::InconsistentRead`]. Never returns a partial table: any failed dump fails the read.
    pub async fn read_table(&self) -> Result<Table, IpvsError> {
        read_consistent(self.inner.options.read_attempts, || self.read_once()).await
    }

    async fn read_once(&self) -> Result<Attempt, IpvsError> {
        let conns = &self.inner.conns;
        let request = Request::global("read-services");
        let replies = self.dump_on(&conns[0], IpvsMessage::get_service(None), request.clone()).await?;
        let mut table = match table_of_services(decode_all(replies, &request, IpvsMessage::to_service)?) {
            Ok(table) => table,
            Err(changed) => return Ok(changed),
        };

        let queue = Mutex::new(table.services.keys().copied().collect::<VecDeque<_>>());
        let workers = conns.iter().map(|conn| self.dump_dests_from(conn, &queue));
        let dumps = futures::future::join_all(workers).await;

        let mut empty = Vec::new();
        for (key, result) in dumps.into_iter().flatten() {
            let request = Request::service("read-destinations", &key);
            let family = key.family();
            let dests = decode_all(result?, &request, |m| m.to_destination(family))?;
            if dests.is_empty() {
                empty.push(key);
                continue;
            }
            if let Err(changed) = add_destinations(&mut table, key, dests) {
                return Ok(changed);
            }
        }
        // The kernel answers a dump for a missing service with nothing at all: tell the two apart.
        for (key, exists) in empty.iter().zip(self.services_exist(&empty).await?) {
            if !exists {
                return Ok(Attempt::Changed(format!("service {key} went away during the read")));
            }
        }
        Ok(Attempt::Done(table))
    }

    /// Takes services from `queue` and dumps their destinations on `conn`, many per datagram, until the queue
    /// is empty or a dump fails.
    async fn dump_dests_from(&self, conn: &Conn, queue: &Mutex<VecDeque<ServiceKey>>) -> Vec<DestDump> {
        let most = self.inner.options.dumps_per_batch.clamp(1, conn.dump_capacity());
        let mut size = most;
        let mut done = Vec::new();
        let _guard = conn.dump_lock.lock().await;
        loop {
            let keys: Vec<ServiceKey> = {
                let mut q = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let n = size.min(q.len());
                q.drain(..n).collect()
            };
            if keys.is_empty() {
                return done;
            }
            let batch =
                keys.iter().map(|key| self.netlink(IpvsMessage::get_dest(key), NLM_F_REQUEST | NLM_F_DUMP)).collect();
            let Some(pending) = conn.send(batch) else {
                let request = Request::service("read-destinations", &keys[0]);
                done.push((keys[0], Err(IpvsError::ConnectionClosed { request })));
                return done;
            };
            let answers = pending.collect(self.inner.options.reply_timeout).await;
            let mut refused = Vec::new();
            let mut failed = false;
            for (key, answer) in keys.into_iter().zip(answers) {
                if let Some(Err(Failure::Kernel { errno, .. })) = &answer.result
                    && *errno == Errno::EBUSY as i32
                {
                    // An earlier dump of this datagram was still running: ask again.
                    refused.push(key);
                    continue;
                }
                let request = Request::service("read-destinations", &key);
                let result = answer_result(answer, IpvsCmd::GetDest, request.clone())
                    .and_then(|replies| ipvs_replies(replies, &request));
                failed |= result.is_err();
                done.push((key, result));
            }
            if failed {
                return done;
            }
            size = if refused.is_empty() { (size * 2).min(most) } else { (size / 2).max(1) };
            let mut q = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for key in refused.into_iter().rev() {
                q.push_front(key);
            }
        }
    }

    /// Whether each service exists: `GET_SERVICE` for each, in one datagram.
    async fn services_exist(&self, keys: &[ServiceKey]) -> Result<Vec<bool>, IpvsError> {
        let conn = &self.inner.conns[0];
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(conn.ack_capacity().clamp(1, 256)) {
            let batch = chunk
                .iter()
                .map(|key| self.netlink(IpvsMessage::get_service(Some(key)), NLM_F_REQUEST | NLM_F_ACK))
                .collect();
            let request = |key| Request::service("get-service", key);
            let pending =
                conn.send(batch).ok_or_else(|| IpvsError::ConnectionClosed { request: request(&chunk[0]) })?;
            for (key, answer) in chunk.iter().zip(pending.collect(self.inner.options.reply_timeout).await) {
                match answer_result(answer, IpvsCmd::GetService, request(key)) {
                    Ok(_) => out.push(true),
                    Err(IpvsError::NoSuchService(_)) => out.push(false),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::model::{DestConfig, DestKey, ServiceConfig};

    fn service(last: u8) -> Service {
        let key = ServiceKey::tcp([192, 0, 2, last].into(), 80);
        Service::new(key, ServiceConfig::new(key.family(), "rr"))
    }

    fn dest(last: u8) -> Destination {
        let key = DestKey::new([10, 0, 0, last].into(), 8080);
        Destination::new(key, DestConfig::masquerade(1))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn a_service_seen_twice_in_one_dump_spoils_the_read() {
        let table = table_of_services(vec![service(1), service(2)]).unwrap();
        assert_eq!(table.services.len(), 2);
        let Err(Attempt::Changed(why)) = table_of_services(vec![service(1), service(2), service(1)]) else {
            panic!("a duplicated service was accepted");
        };
        assert_eq!(why, "service TCP 192.0.2.1:80 appeared twice in the service dump");
    }

    #[test]
    fn a_destination_seen_twice_in_one_dump_spoils_the_read() {
        let mut table = table_of_services(vec![service(1)]).unwrap();
        let key = service(1).key;
        add_destinations(&mut table, key, vec![dest(1), dest(2)]).unwrap();
        assert_eq!(table.services[&key].dests.len(), 2);
        let mut table = table_of_services(vec![service(1)]).unwrap();
        let result = add_destinations(&mut table, key, vec![dest(1), dest(2), dest(1)]);
        assert!(matches!(result, Err(Attempt::Changed(_))), "{result:?}");
    }

    #[test]
    fn an_inconsistent_read_is_retried_then_refused() {
        let calls = Cell::new(0);
        let always_changed = || {
            calls.set(calls.get() + 1);
            async { Ok(Attempt::Changed("service TCP 192.0.2.1:80 appeared twice".to_owned())) }
        };
        let err = block_on(read_consistent(3, always_changed)).unwrap_err();
        assert_eq!(calls.get(), 3);
        assert!(
            matches!(&err, IpvsError::InconsistentRead { attempts: 3, detail } if detail.contains("twice")),
            "{err}"
        );
    }

    #[test]
    fn a_read_that_settles_is_returned() {
        let calls = Cell::new(0);
        let settles = || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 1 {
                    Ok(Attempt::Changed("moved".to_owned()))
                } else {
                    Ok(Attempt::Done(table_of_services(vec![service(1)]).unwrap()))
                }
            }
        };
        let table = block_on(read_consistent(3, settles)).unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(table.services.len(), 1);
        // Zero attempts configured still reads once.
        let once = block_on(read_consistent(0, || async { Ok(Attempt::Done(Table::default())) }));
        assert!(once.unwrap().is_empty());
    }

    #[test]
    fn errors_that_are_not_races_are_not_retried() {
        let calls = Cell::new(0);
        let fails = || {
            calls.set(calls.get() + 1);
            async { Err(IpvsError::Unavailable { detail: "no ip_vs".to_owned() }) }
        };
        assert!(block_on(read_consistent(3, fails)).is_err());
        assert_eq!(calls.get(), 1);
    }
}

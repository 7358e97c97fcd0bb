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
//!
//! What cannot be detected from the dump alone is a service it skipped. The kernel keeps the services of every
//! network namespace in one hash table and resumes a service dump, at each reply datagram, by its position among
//! all of them (`cb->args[0]` counts every namespace's entries, ours are filtered out as it goes): a service
//! deleted in any namespace before that position between two datagrams moves the next ones down, and the dump
//! steps over them. Another namespace deleting services (a pod's or a test's namespace going away) is enough.
//! [`Ipvs::read_table_confirming`] closes that gap for the services the caller cares about: those of them not in
//! the dump are asked for one by one (`GET_SERVICE`, atomic in the kernel), and any that exists is read alone.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use nix::errno::Errno;

use super::client::{Ipvs, answer_result, decode_all, ipvs_replies};
use super::connection::{Conn, Failure};
use super::packet::{IpvsCmd, IpvsMessage};
use super::{IpvsError, Request};
use crate::model::{DestMap, Destination, Service, ServiceEntry, ServiceKey, Table};

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

/// What a service seen twice in one dump does to the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeats {
    /// Spoils it: the kernel's hash table changed during the dump (entries moved under the cursor), so other
    /// entries may have been skipped, and the caller has nothing to check them against.
    Refuse,
    /// Keeps the later copy: the caller confirms every service it cares about that the dump lacks, so a repeat
    /// (services added in some namespace during the dump move ours up) tells nothing more. Refusing there would
    /// fail every read while another namespace keeps adding services.
    KeepLater,
}

/// The table of one service dump.
fn table_of_services(services: Vec<Service>, repeats: Repeats) -> Result<Table, Attempt> {
    let mut table = Table::default();
    for service in services {
        if repeats == Repeats::Refuse && table.services.contains_key(&service.key) {
            return Err(Attempt::Changed(format!("service {} appeared twice in the service dump", service.key)));
        }
        table.insert_service(service);
    }
    Ok(table)
}

/// Adds the destinations of one service's dump; one seen twice means that dump met a changing table.
fn add_destinations(table: &mut Table, key: ServiceKey, dests: Vec<Destination>) -> Result<(), Attempt> {
    let Some(entry) = table.services.get_mut(&key) else { return Ok(()) };
    if entry.dests.is_empty() {
        // Sorted once: the kernel lists destinations newest first, which insertion one by one would shift.
        entry.dests = DestMap::from_unique(dests).map_err(|dest_key| {
            Attempt::Changed(format!("destination {dest_key} of {key} appeared twice in its dump"))
        })?;
        return Ok(());
    }
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

/// Adds to `table` the services of `keys` that the dump skipped although they exist: `exist` tells, in one call
/// and in order, whether each service missing from the table exists; `read` reads one service alone (`None`:
/// it went away meanwhile). Returns the services added.
async fn add_skipped<E, EFut, R, RFut>(
    table: &mut Table,
    keys: &BTreeSet<ServiceKey>,
    exist: E,
    mut read: R,
) -> Result<Vec<ServiceKey>, IpvsError>
where
    E: FnOnce(Vec<ServiceKey>) -> EFut,
    EFut: std::future::Future<Output = Result<Vec<bool>, IpvsError>>,
    R: FnMut(ServiceKey) -> RFut,
    RFut: std::future::Future<Output = Result<Option<ServiceEntry>, IpvsError>>,
{
    let missing: Vec<ServiceKey> = keys.iter().filter(|key| !table.services.contains_key(key)).copied().collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let exists = exist(missing.clone()).await?;
    if exists.len() != missing.len() {
        // A missing answer would read as "absent", the very mistake this function is here to prevent.
        return Err(IpvsError::Protocol {
            request: Request::global("get-service"),
            detail: format!("{} answers to {} existence checks", exists.len(), missing.len()),
        });
    }
    let mut added = Vec::new();
    for key in missing.into_iter().zip(exists).filter_map(|(key, exists)| exists.then_some(key)) {
        if let Some(entry) = read(key).await? {
            table.services.insert(key, entry);
            added.push(key);
        }
    }
    Ok(added)
}

/// The result of one destination dump: the service, and its `NEW_DEST` replies.
type DestDump = (ServiceKey, Result<Vec<IpvsMessage>, IpvsError>);

impl Ipvs {
    /// Reads every service with its destinations and counters.
    ///
    /// Retries when the table changes during the read, up to
    /// [`ConnectOptions::read_attempts`](super::ConnectOptions) times, then fails with
    /// [`IpvsError::InconsistentRead`]. Never returns a partial table: any failed dump fails the read.
    ///
    /// The kernel's service dump can step over services while any namespace deletes services (see the module
    /// notes), and nothing in the dump shows it: a caller that decides from the absence of a service uses
    /// [`Ipvs::read_table_confirming`].
    pub async fn read_table(&self) -> Result<Table, IpvsError> {
        read_consistent(self.inner.options.read_attempts, || self.read_once(Repeats::Refuse)).await
    }

    /// [`Ipvs::read_table`], then every service of `keys` that the dump skipped although it exists is read alone
    /// and added: the table holds each of `keys` that exists. One `GET_SERVICE` per service of `keys` missing from
    /// the dump (many per datagram), so a table that already has them all costs nothing more.
    ///
    /// A service seen twice in the dump does not spoil this read (the later copy is kept): services added in any
    /// namespace during the dump cause that, and they make no service of `keys` go unseen.
    pub async fn read_table_confirming(&self, keys: &BTreeSet<ServiceKey>) -> Result<Table, IpvsError> {
        let attempts = self.inner.options.read_attempts;
        let mut table = read_consistent(attempts, || self.read_once(Repeats::KeepLater)).await?;
        let added = add_skipped(
            &mut table,
            keys,
            |missing| async move { self.services_exist(&missing).await },
            |key| async move { self.read_service_entry(&key).await },
        )
        .await?;
        if let Some(first) = added.first() {
            tracing::info!(
                count = added.len(),
                first = %first,
                "the kernel's service dump skipped services that exist (services were deleted in some network \
                 namespace during the dump); they were read one by one"
            );
        }
        Ok(table)
    }

    /// One service with its destinations and counters, or `None` if it does not exist. Not affected by changes
    /// in other namespaces: the service is looked up by its key, and its destination list is its own.
    pub async fn read_service_entry(&self, key: &ServiceKey) -> Result<Option<ServiceEntry>, IpvsError> {
        let Some(service) = self.service(key).await? else { return Ok(None) };
        let dests = match self.destinations(key).await {
            Ok(dests) => dests,
            // Deleted between the two requests.
            Err(IpvsError::NoSuchService(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut entry = ServiceEntry::new(service);
        entry.dests = dests.into_iter().map(|d| (d.key, d)).collect();
        Ok(Some(entry))
    }

    async fn read_once(&self, repeats: Repeats) -> Result<Attempt, IpvsError> {
        let conns = &self.inner.conns;
        let request = Request::global("read-services");
        let replies = self.dump_on(&conns[0], IpvsMessage::get_service(None), request.clone()).await?;
        let mut table = match table_of_services(decode_all(replies, &request, IpvsMessage::to_service)?, repeats) {
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

/// What [`replay_read`] saw: every IPVS message that decoded, and the read's outcome.
#[cfg(feature = "testing")]
#[doc(hidden)]
#[derive(Debug)]
pub struct Replayed {
    /// The IPVS messages of every dump, in order, as the codec decoded them.
    pub messages: Vec<IpvsMessage>,
    /// The table, or why the read failed (a decode or protocol error, or a table that changed under the read).
    pub outcome: Result<Table, String>,
}

/// One table read as [`Ipvs::read_table`] makes it, with raw kernel replies instead of sockets: `service_dump`
/// holds the datagrams answering the service dump, `dest_dump(i)` those answering the destination dump of the
/// `i`-th service read (each a request of sequence number 1). The framing (`CaptureCodec`, `Wire`), the answer
/// collection, the decoding and the consistency checks are the read's own; only the existence check of services
/// whose destination dump was empty is left out (it asks the kernel). For the fuzz target `netlink_decoder`.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub async fn replay_read(service_dump: &[u8], mut dest_dump: impl FnMut(usize) -> Vec<u8>) -> Replayed {
    let mut messages = Vec::new();
    let outcome = replay_attempt(service_dump, &mut dest_dump, &mut messages).await.and_then(|attempt| match attempt {
        Attempt::Done(table) => Ok(table),
        Attempt::Changed(why) => Err(why),
    });
    Replayed { messages, outcome }
}

#[cfg(feature = "testing")]
async fn replay_attempt(
    service_dump: &[u8],
    dest_dump: &mut impl FnMut(usize) -> Vec<u8>,
    seen: &mut Vec<IpvsMessage>,
) -> Result<Attempt, String> {
    let request = Request::global("read-services");
    let replies = replay_dump(service_dump, IpvsCmd::GetService, &request).await.map_err(|e| e.to_string())?;
    seen.extend(replies.iter().cloned());
    let services = decode_all(replies, &request, IpvsMessage::to_service).map_err(|e| e.to_string())?;
    let mut table = match table_of_services(services, Repeats::Refuse) {
        Ok(table) => table,
        Err(changed) => return Ok(changed),
    };
    let keys: Vec<ServiceKey> = table.services.keys().copied().collect();
    for (index, key) in keys.into_iter().enumerate() {
        let request = Request::service("read-destinations", &key);
        let replies = replay_dump(&dest_dump(index), IpvsCmd::GetDest, &request).await.map_err(|e| e.to_string())?;
        seen.extend(replies.iter().cloned());
        let family = key.family();
        let dests = decode_all(replies, &request, |m| m.to_destination(family)).map_err(|e| e.to_string())?;
        if let Err(changed) = add_destinations(&mut table, key, dests) {
            return Ok(changed);
        }
    }
    Ok(Attempt::Done(table))
}

/// The IPVS replies of one dump answered by `datagrams`.
#[cfg(feature = "testing")]
async fn replay_dump(datagrams: &[u8], cmd: IpvsCmd, request: &Request) -> Result<Vec<IpvsMessage>, IpvsError> {
    use netlink_proto::NetlinkMessageCodec;

    let mut src = bytes::BytesMut::from(datagrams);
    let mut received = Vec::new();
    while let Ok(Some(message)) = super::wire::CaptureCodec::decode::<super::wire::Wire>(&mut src) {
        received.push(message);
    }
    let answer = super::connection::Pending::replayed(1, 1, received)
        .collect(std::time::Duration::from_secs(1))
        .await
        .into_iter()
        .next()
        .unwrap_or_default();
    answer_result(answer, cmd, request.clone()).and_then(|replies| ipvs_replies(replies, request))
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
        let table = table_of_services(vec![service(1), service(2)], Repeats::Refuse).unwrap();
        assert_eq!(table.services.len(), 2);
        let Err(Attempt::Changed(why)) = table_of_services(vec![service(1), service(2), service(1)], Repeats::Refuse)
        else {
            panic!("a duplicated service was accepted");
        };
        assert_eq!(why, "service TCP 192.0.2.1:80 appeared twice in the service dump");
    }

    #[test]
    fn a_confirming_read_keeps_the_later_copy_of_a_repeated_service() {
        let mut later = service(1);
        later.config.scheduler = "wlc".to_owned();
        let table = table_of_services(vec![service(1), service(2), later.clone()], Repeats::KeepLater).unwrap();
        assert_eq!(table.services.len(), 2);
        assert_eq!(table.services[&later.key].service, later);
    }

    #[test]
    fn a_destination_seen_twice_in_one_dump_spoils_the_read() {
        let mut table = table_of_services(vec![service(1)], Repeats::Refuse).unwrap();
        let key = service(1).key;
        add_destinations(&mut table, key, vec![dest(1), dest(2)]).unwrap();
        assert_eq!(table.services[&key].dests.len(), 2);
        let mut table = table_of_services(vec![service(1)], Repeats::Refuse).unwrap();
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
                    Ok(Attempt::Done(table_of_services(vec![service(1)], Repeats::Refuse).unwrap()))
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
    fn services_the_dump_skipped_are_confirmed_and_read_alone() {
        let mut table = table_of_services(vec![service(1), service(2)], Repeats::Refuse).unwrap();
        let keys: BTreeSet<ServiceKey> = [1, 2, 3, 4, 5].map(|n| service(n).key).into();
        let asked = Cell::new(0);
        let read_alone = std::cell::RefCell::new(Vec::new());
        let added = block_on(add_skipped(
            &mut table,
            &keys,
            |missing| {
                asked.set(missing.len());
                // 3 exists and 4 too, but 4 goes away before it is read; 5 does not exist.
                async { Ok(vec![true, true, false]) }
            },
            |key| {
                read_alone.borrow_mut().push(key);
                let found = (key == service(3).key).then(|| ServiceEntry::new(service(3)));
                async move { Ok(found) }
            },
        ))
        .unwrap();
        assert_eq!(asked.get(), 3, "only the services missing from the dump are asked for");
        assert_eq!(*read_alone.borrow(), [service(3).key, service(4).key]);
        assert_eq!(added, [service(3).key]);
        assert_eq!(table.services.keys().copied().collect::<Vec<_>>(), [1, 2, 3].map(|n| service(n).key));
    }

    #[test]
    fn a_dump_that_has_every_expected_service_costs_no_request() {
        let mut table = table_of_services(vec![service(1), service(2)], Repeats::Refuse).unwrap();
        let keys: BTreeSet<ServiceKey> = [service(1).key].into();
        let added = block_on(add_skipped(
            &mut table,
            &keys,
            |_| async { panic!("asked the kernel although nothing was missing") },
            |_| async { panic!("read a service although nothing was missing") },
        ))
        .unwrap();
        assert!(added.is_empty());
        assert_eq!(table.services.len(), 2);
    }

    #[test]
    fn existence_answers_that_do_not_match_the_questions_fail_the_read() {
        let mut table = Table::default();
        let keys: BTreeSet<ServiceKey> = [service(1).key, service(2).key].into();
        let result = block_on(add_skipped(
            &mut table,
            &keys,
            |_| async { Ok(vec![true]) },
            |_| async { Ok(Some(ServiceEntry::new(service(1)))) },
        ));
        assert!(matches!(result, Err(IpvsError::Protocol { .. })), "{result:?}");
        assert!(table.is_empty());
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

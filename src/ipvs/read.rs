//! [`Ipvs::read_table`]: the whole table, consistent, quickly.
//!
//! One service dump, then one destination dump per service, several at a time on the pool of sockets (the
//! kernel runs one dump at a time per socket). The kernel never flags a dump that the table changed under
//! (`NLM_F_DUMP_INTR` is not used by IPVS), so inconsistency is detected here: an entry twice in a dump, or a
//! destination dump that came back empty because its service went away meanwhile. Then the whole table is read
//! again, a bounded number of times.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::client::{Ipvs, decode_all};
use super::packet::IpvsMessage;
use super::{IpvsError, Request};
use crate::model::{ServiceKey, Table};

/// One read of the table.
enum Attempt {
    /// A consistent table.
    Done(Table),
    /// The table changed during the read, as this says.
    Changed(String),
}

/// Errors that mean the read met a moving table or a transient condition, worth reading again.
fn worth_retrying(e: &IpvsError) -> bool {
    matches!(e, IpvsError::ReplyLost { .. } | IpvsError::Busy(_))
}

impl Ipvs {
    /// Reads every service with its destinations and counters.
    ///
    /// Retries when the table changes during the read, up to
    /// [`ConnectOptions::read_attempts`](super::ConnectOptions) times, then fails with
    /// [`IpvsError::InconsistentRead`]. Never returns a partial table: any failed dump fails the read.
    pub async fn read_table(&self) -> Result<Table, IpvsError> {
        let attempts = self.inner.options.read_attempts.max(1);
        let mut detail = String::new();
        for attempt in 1..=attempts {
            match self.read_once().await {
                Ok(Attempt::Done(table)) => return Ok(table),
                Ok(Attempt::Changed(why)) => detail = why,
                Err(e) if worth_retrying(&e) => detail = e.to_string(),
                Err(e) => return Err(e),
            }
            tracing::debug!(attempt, %detail, "IPVS table changed during the read; reading it again");
        }
        Err(IpvsError::InconsistentRead { attempts, detail })
    }

    async fn read_once(&self) -> Result<Attempt, IpvsError> {
        let conns = &self.inner.conns;
        let request = Request::global("read-services");
        let replies = self.dump_on(&conns[0], IpvsMessage::get_service(None), request.clone()).await?;
        let mut table = Table::default();
        for service in decode_all(replies, &request, IpvsMessage::to_service)? {
            if table.services.contains_key(&service.key) {
                return Ok(Attempt::Changed(format!("service {} appeared twice in the service dump", service.key)));
            }
            table.insert_service(service);
        }

        // Each socket works through the services still to read, one dump at a time.
        let keys: Vec<ServiceKey> = table.services.keys().copied().collect();
        let next = AtomicUsize::new(0);
        let workers = conns.iter().map(|conn| {
            let (keys, next) = (&keys, &next);
            async move {
                let mut done = Vec::new();
                while let Some(key) = keys.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let request = Request::service("read-destinations", key);
                    let result = self.dump_on(conn, IpvsMessage::get_dest(key), request.clone()).await;
                    let failed = result.is_err();
                    done.push((*key, request, result));
                    if failed {
                        break;
                    }
                }
                done
            }
        });
        let dumps = futures::future::join_all(workers).await;

        for (key, request, result) in dumps.into_iter().flatten() {
            let family = key.family();
            let dests = decode_all(result?, &request, |m| m.to_destination(family))?;
            if dests.is_empty() {
                // The kernel answers a dump for a missing service with nothing at all: tell the two apart.
                if self.service(&key).await?.is_none() {
                    return Ok(Attempt::Changed(format!("service {key} went away during the read")));
                }
                continue;
            }
            let Some(entry) = table.services.get_mut(&key) else { continue };
            for dest in dests {
                let dest_key = dest.key;
                if entry.dests.insert(dest_key, dest).is_some() {
                    return Ok(Attempt::Changed(format!("destination {dest_key} of {key} appeared twice in its dump")));
                }
            }
        }
        Ok(Attempt::Done(table))
    }
}

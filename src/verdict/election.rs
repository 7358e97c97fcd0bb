//! Leader election over a `coordination.k8s.io/v1` Lease, by client-go's rules (k8s.io/client-go/tools/leaderelection):
//!
//! - A candidate reads the Lease. It may take it when it is absent, has no holder, or has not changed (as this
//!   candidate observed it, on its own monotonic clock: never by comparing another node's wall-clock `renewTime`)
//!   for the Lease's `leaseDurationSeconds`.
//! - Every write is a replace carrying the `resourceVersion` read, so two candidates cannot both win: the second
//!   gets 409 Conflict.
//! - The holder renews every retry period. It counts itself leader only until `renewDeadline` after the start of
//!   its last successful renewal; that is shorter than the lease, so a holder cut off from the API stops acting
//!   before any other candidate can have taken over (a stale holder never writes).
//! - On shutdown the holder releases the Lease (no holder, a 1-second duration) so another takes over at once.
//!
//! `kube-lease-manager` (the crate that works with kube 5) was not used: it locks by server-side-apply field
//! ownership and expires a lease by comparing wall-clock `renewTime`, and has no renew deadline; these rules are
//! the ones every other component of a cluster follows, with their timings as flags.
//!
//! [`Candidate`] is the pure decision (tested without an API); [`run`] drives it against an `Api<Lease>`.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Error as KubeError};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// client-go's jitter on the retry period while acquiring, so that candidates started together spread out.
pub const JITTER: f64 = 1.2;

/// The Lease's name, namespace, this candidate's identity and the timings.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The Lease (`ipvs-reconciler-status`).
    pub lease_name: String,
    /// Its namespace (the agent's own, `POD_NAMESPACE`).
    pub namespace: String,
    /// This candidate (`POD_NAME`).
    pub identity: String,
    /// How long a holder's lease lasts without renewal (client-go: 15 s).
    pub lease_duration: Duration,
    /// How long the holder keeps acting without a successful renewal (client-go: 10 s).
    pub renew_deadline: Duration,
    /// How often it tries (client-go: 2 s).
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// client-go's checks of the timings: a holder must give up before others may take over, and must get more
    /// than one try within its deadline.
    pub fn check(&self) -> Result<(), String> {
        if self.identity.is_empty() {
            return Err("the identity (POD_NAME) is empty".to_owned());
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "--lease-duration ({:?}) must be longer than --renew-deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.renew_deadline.as_secs_f64() <= JITTER * self.retry_period.as_secs_f64() {
            return Err(format!(
                "--renew-deadline ({:?}) must be longer than {JITTER} x --retry-period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration.as_secs() < 1 || i32::try_from(self.lease_duration.as_secs()).is_err() {
            return Err(format!("--lease-duration ({:?}) must be a whole number of seconds", self.lease_duration));
        }
        Ok(())
    }
}

/// What a candidate does after reading the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The Lease does not exist: create it, held by this candidate.
    Create(Lease),
    /// Take it or renew it: replace it (with the resourceVersion read) by this.
    Replace(Lease),
    /// Another candidate holds a lease that has not expired (as observed here).
    Held {
        /// Its holder.
        by: String,
    },
}

/// The pure side of a candidate: what it last observed of the Lease and when, and from that what to do.
#[derive(Debug, Clone)]
pub struct Candidate {
    config: ElectionConfig,
    /// The Lease's spec as last read or written, and when (this candidate's clock) it was seen to change.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Candidate {
    /// A candidate that has observed nothing yet.
    pub fn new(config: ElectionConfig) -> Self {
        Candidate { config, observed: None }
    }

    /// The configuration.
    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// What to do given the Lease as read now (`None`: it does not exist); `wall` stamps `acquireTime` and
    /// `renewTime` (for people and other tools: expiry is judged on the monotonic clock).
    pub fn step(&mut self, lease: Option<&Lease>, now: Instant, wall: MicroTime) -> Step {
        let me = self.config.identity.clone();
        let duration = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = lease else {
            let spec = LeaseSpec {
                holder_identity: Some(me),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(wall.clone()),
                renew_time: Some(wall),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            };
            let meta = ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            };
            return Step::Create(Lease { metadata: meta, spec: Some(spec) });
        };
        let spec = lease.spec.clone().unwrap_or_default();
        // Expiry counts from when this candidate saw the record change, not from the holder's clock.
        match &self.observed {
            Some((seen, _)) if *seen == spec => {}
            _ => self.observed = Some((spec.clone(), now)),
        }
        let seen_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let lasts = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
        if !holder.is_empty() && holder != me && now < seen_at + lasts {
            return Step::Held { by: holder };
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquire_time, lease_transitions) = if holder == me {
            (spec.acquire_time.clone().or_else(|| Some(wall.clone())), transitions)
        } else {
            (Some(wall.clone()), transitions.saturating_add(1))
        };
        let next = LeaseSpec {
            holder_identity: Some(me),
            lease_duration_seconds: Some(duration),
            acquire_time,
            renew_time: Some(wall),
            lease_transitions: Some(lease_transitions),
            ..spec
        };
        let mut replaced = lease.clone();
        replaced.metadata.managed_fields = None;
        replaced.spec = Some(next);
        Step::Replace(replaced)
    }

    /// Records a successful write of `lease` at `now`: this candidate's own record is the one observed.
    pub fn written(&mut self, lease: &Lease, now: Instant) {
        self.observed = Some((lease.spec.clone().unwrap_or_default(), now));
    }

    /// The release of `lease` held by this candidate: no holder and a 1-second lease (client-go's
    /// ReleaseOnCancel), so that the next candidate takes it at its next try. `None` when it is not ours.
    pub fn release(&self, lease: &Lease, wall: MicroTime) -> Option<Lease> {
        let spec = lease.spec.as_ref()?;
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return None;
        }
        let mut released = lease.clone();
        released.metadata.managed_fields = None;
        released.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(wall.clone()),
            renew_time: Some(wall),
            ..spec.clone()
        });
        Some(released)
    }
}

/// While this candidate leads: the instant until which it may act (the start of its last successful renewal
/// plus the renew deadline). `None` while it does not lead.
pub type Leadership = watch::Receiver<Option<Instant>>;

/// Whether `leadership` says this candidate may act now.
pub fn leads(leadership: &Leadership) -> bool {
    leadership.borrow().is_some_and(|until| Instant::now() < until)
}

/// Why one try failed.
#[derive(Debug, thiserror::Error)]
enum TryError {
    #[error("{0}")]
    Api(#[from] KubeError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One try: read, decide, write. `Ok(true)`: this candidate holds the Lease now.
async fn try_acquire_or_renew(api: &Api<Lease>, candidate: &mut Candidate) -> Result<bool, TryError> {
    let name = candidate.config.lease_name.clone();
    let current = api.get_opt(&name).await?;
    let now = Instant::now();
    let wall = MicroTime(k8s_openapi::jiff::Timestamp::now());
    match candidate.step(current.as_ref(), now, wall) {
        Step::Held { by } => {
            debug!(holder = %by, "the status lease is held");
            Ok(false)
        }
        Step::Create(lease) => match api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                candidate.written(&created, now);
                Ok(true)
            }
            // Another candidate created it first: it holds it.
            Err(KubeError::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        },
        Step::Replace(lease) => match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(replaced) => {
                candidate.written(&replaced, now);
                Ok(true)
            }
            // Someone wrote it since it was read: they won this round.
            Err(KubeError::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        },
    }
}

/// Runs `candidate` against `api` until `shutdown`: sends on `leading` the instant until which it may act while
/// it leads (`None` when it does not), and releases the Lease on shutdown if it holds it.
pub async fn run(
    api: Api<Lease>,
    mut candidate: Candidate,
    leading: watch::Sender<Option<Instant>>,
    shutdown: impl Future<Output = ()>,
) {
    let config = candidate.config.clone();
    tokio::pin!(shutdown);
    let mut until: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let outcome = tokio::time::timeout(config.renew_deadline, try_acquire_or_renew(&api, &mut candidate)).await;
        let outcome = outcome.unwrap_or(Err(TryError::Timeout(config.renew_deadline)));
        match outcome {
            Ok(true) => {
                if until.is_none() {
                    info!(lease = %config.lease_name, identity = %config.identity, "leading: this agent writes the conditions");
                }
                until = Some(started + config.renew_deadline);
            }
            Ok(false) => {
                if until.take().is_some() {
                    warn!(lease = %config.lease_name, "lost the status lease to another agent");
                }
            }
            Err(e) => {
                warn!(lease = %config.lease_name, "status lease: {e}");
                if until.is_some_and(|u| Instant::now() >= u) {
                    warn!(lease = %config.lease_name, "could not renew the status lease within the renew deadline: no longer leading");
                    until = None;
                }
            }
        }
        leading.send_if_modified(|sent| {
            let changed = *sent != until;
            *sent = until;
            changed
        });
        // The holder renews every retry period; candidates try with client-go's jitter.
        let wait = match until {
            Some(_) => config.retry_period,
            None => config.retry_period.mul_f64(1.0 + unit_random() * (JITTER - 1.0)),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => break,
        }
    }
    leading.send_replace(None);
    if until.is_some() {
        release(&api, &candidate).await;
    }
}

/// A number in [0, 1) that differs between processes and calls (the standard library's random hash keys): enough
/// to spread candidates' tries apart.
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Gives the Lease up (best effort: it expires anyway).
async fn release(api: &Api<Lease>, candidate: &Candidate) {
    let name = &candidate.config.lease_name;
    let Ok(Some(lease)) = api.get_opt(name).await else { return };
    let wall = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let Some(released) = candidate.release(&lease, wall) else { return };
    match api.replace(name, &PostParams::default(), &released).await {
        Ok(_) => info!(lease = %name, "released the status lease"),
        Err(e) => warn!(lease = %name, "could not release the status lease (it expires by itself): {e}"),
    }
}

#[cfg(test)]
#[path = "election/tests.rs"]
mod tests;

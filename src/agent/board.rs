//! What `/status` shows: every service the sources ask for, every backend with its declared and effective weight
//! and its health (state, consecutive results, last error, last transition). The agent patches the board after
//! each pass for the services the pass looked at, so keeping it costs what changed; a request joins it with the
//! health checks' view as it is at that moment (counters move with every probe).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::health::HealthView;
use crate::model::ServiceKey;
use crate::table::DesiredTable;

/// The services as declared and as programmed (health applied).
#[derive(Debug, Default)]
pub struct Board {
    declared: DesiredTable,
    effective: DesiredTable,
}

/// The board shared by the agent (writer) and the HTTP server (readers).
pub type SharedBoard = Arc<RwLock<Board>>;

impl Board {
    /// Brings `keys` (`None`: every key) up to date from the declared and effective tables.
    pub fn update(&mut self, declared: &DesiredTable, effective: &DesiredTable, keys: Option<&BTreeSet<ServiceKey>>) {
        let Some(keys) = keys else {
            self.declared = declared.clone();
            self.effective = effective.clone();
            return;
        };
        for key in keys {
            for (mine, theirs) in [(&mut self.declared, declared), (&mut self.effective, effective)] {
                match theirs.services.get(key) {
                    Some(service) => mine.services.insert(*key, Arc::clone(service)),
                    None => mine.services.remove(key),
                };
            }
        }
    }

    /// The status document, with the health `view` has now.
    pub fn report(&self, view: &HealthView) -> StatusReport {
        let services = self
            .declared
            .services
            .iter()
            .map(|(key, declared)| {
                let effective = self.effective.services.get(key);
                let policy = declared.health.as_deref();
                let mut backends: Vec<BackendStatus> = declared
                    .dests
                    .iter()
                    .map(|(dest_key, dest)| {
                        let target = policy.and_then(|p| p.target(dest_key));
                        let state = target.as_ref().and_then(|t| view.states.get(t));
                        BackendStatus {
                            address: dest_key.to_string(),
                            weight: dest.config.weight,
                            effective_weight: effective.and_then(|e| e.dests.get(dest_key)).map(|d| d.config.weight),
                            check: target.map(|t| format!("{} {}", t.check.probe.kind_label(), t.target)),
                            healthy: state.map(|s| s.healthy),
                            consecutive_ok: state.map(|s| s.consecutive_ok),
                            consecutive_fail: state.map(|s| s.consecutive_fail),
                            last_error: state.and_then(|s| s.last_error.clone()),
                            last_transition: state.and_then(|s| s.last_transition),
                            sorry_server: false,
                        }
                    })
                    .collect();
                if let (Some(sorry), Some(effective)) = (policy.and_then(|p| p.sorry_server.as_ref()), effective)
                    && let Some(dest) = effective.dests.get(&sorry.key)
                {
                    backends.push(BackendStatus {
                        address: sorry.key.to_string(),
                        weight: sorry.config.weight,
                        effective_weight: Some(dest.config.weight),
                        sorry_server: true,
                        ..BackendStatus::default()
                    });
                }
                ServiceStatus { service: key.to_string(), object: declared.origin.to_string(), backends }
            })
            .collect();
        StatusReport { services }
    }
}

/// `/status`: every service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The services, by key.
    pub services: Vec<ServiceStatus>,
}

/// One service on `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Its key, as ipvsadm would name it (`TCP 192.0.2.1:80`).
    pub service: String,
    /// The object that declares it.
    pub object: String,
    /// Its backends, then the sorry server while it is in.
    pub backends: Vec<BackendStatus>,
}

/// One backend on `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    /// Address and port.
    pub address: String,
    /// The declared weight.
    pub weight: u32,
    /// The weight programmed with health applied; `None`: left out (unhealthy with `onFailure: Remove`).
    pub effective_weight: Option<u32>,
    /// The check and where it connects (`http 10.0.0.1:8080`); `None`: not checked.
    pub check: Option<String>,
    /// Whether its check passes; `None`: not checked.
    pub healthy: Option<bool>,
    /// Successful checks in a row.
    pub consecutive_ok: Option<u32>,
    /// Failed checks in a row.
    pub consecutive_fail: Option<u32>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When its health last changed (seconds since the epoch).
    pub last_transition: Option<u64>,
    /// This is the service's sorry server (in while the backends' healthy weight is below the quorum).
    pub sorry_server: bool,
}

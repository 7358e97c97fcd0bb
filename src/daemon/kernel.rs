//! The process's ties to the node: the IPVS client, the engine with its ownership memory, the VIP interface and the
//! director, new connections after a lost one, and the signals that end a long-running mode.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::agent::{ConnectError, Connector};
use crate::director::DirectorConfig;
use crate::engine::{Engine, IpvsDirector, NodeVips};
use crate::ipvs::{Ipvs, NetnsSpec};
use crate::netif::VipInterface;

/// Opens the IPVS client in the chosen namespace.
pub async fn connect(netns: &NetnsSpec) -> Result<Ipvs> {
    let ipvs = match netns.path() {
        Some(path) => Ipvs::connect_in_netns(path).await,
        None => Ipvs::connect().await,
    };
    Ok(ipvs?)
}

/// The engine of `plan`, `apply`, `run` and `agent`: the IPVS client and the ownership memory in `state`, the
/// director's settings, and the VIP interface named `vip_interface` (`None`: addresses are not bound).
pub async fn open_engine(
    netns: &NetnsSpec,
    state: PathBuf,
    vip_interface: Option<&str>,
    director: DirectorConfig,
) -> Result<Engine<Ipvs>> {
    let engine =
        Engine::new(connect(netns).await?, state)?.with_director(Box::new(IpvsDirector::new(netns.clone())), director);
    let Some(name) = vip_interface else { return Ok(engine) };
    let interface = VipInterface::open(netns, name).await?;
    Ok(engine.with_addresses(Box::new(NodeVips::new(interface))))
}

/// A connector for the agent loop: a new client in the same namespace.
pub fn connector(netns: &NetnsSpec) -> impl Connector<Ipvs> + use<> {
    let netns = netns.clone();
    move || {
        let netns = netns.clone();
        async move { connect(&netns).await.map_err(ConnectError::from) }
    }
}

/// Completes on SIGTERM or SIGINT (installed now, so that a signal during start-up is not lost).
pub fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
    })
}

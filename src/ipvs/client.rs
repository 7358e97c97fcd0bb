//! The IPVS client: a cheap-to-clone handle over a few netlink sockets in one network namespace.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use nix::errno::Errno;

use super::connection::{Answer, Conn, Failure, new_socket};
use super::netns::{NetnsSpec, run_in_netns};
use super::packet::{FAMILY_NAME, IpvsCmd, IpvsMessage};
use super::wire::Wire;
use super::{IpvsError, Request};
use crate::model::{DaemonState, DestKey, Destination, Info, Service, ServiceKey, SyncDaemon, Timeouts};

/// How to connect, and how hard to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The network namespace whose IPVS to manage.
    pub netns: NetnsSpec,
    /// Sockets to open (at least 1). Dumps run one at a time per socket, so this many destination dumps run in
    /// parallel in [`Ipvs::read_table`]. Writes all go through the first socket, which keeps them in order.
    pub sockets: usize,
    /// Receive buffer to ask for, per socket, in bytes (the kernel doubles it for its bookkeeping). It bounds
    /// how many acknowledgements can wait to be read, hence the batch sizes.
    pub receive_buffer: usize,
    /// How long to wait for the kernel's next answer before giving up on a request.
    pub reply_timeout: Duration,
    /// Most operations sent in one datagram by [`Ipvs::apply`].
    pub batch_max_ops: usize,
    /// Most bytes sent in one datagram; also capped by the socket's send buffer, since the kernel refuses larger
    /// datagrams.
    pub batch_max_bytes: usize,
    /// Most batches [`Ipvs::apply`] keeps sent and unanswered.
    pub batches_in_flight: usize,
    /// Most destination dumps [`Ipvs::read_table`] asks for in one datagram on one socket. The kernel runs them
    /// one after the other and refuses (`EBUSY`) those that come while an earlier one is still running (a
    /// service with more destinations than fit one reply datagram); those are asked again. Also bounded by the
    /// receive buffer, since each dump's first reply datagram queues up before any is read.
    pub dumps_per_batch: usize,
    /// How many times [`Ipvs::read_table`] reads the table before giving up on getting a consistent one.
    pub read_attempts: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            netns: NetnsSpec::Current,
            sockets: 4,
            receive_buffer: 4 << 20,
            reply_timeout: Duration::from_secs(30),
            batch_max_ops: 256,
            batch_max_bytes: 64 << 10,
            batches_in_flight: 4,
            dumps_per_batch: 32,
            read_attempts: 3,
        }
    }
}

/// A handle on the kernel's IPVS in one network namespace. Clones share the sockets; they close when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Ipvs {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) family_id: u16,
    /// `conns[0]` carries every write, so that writes reach the kernel in the order they were asked for.
    pub(super) conns: Vec<Conn>,
    pub(super) options: ConnectOptions,
}

impl std::fmt::Debug for Ipvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipvs")
            .field("family_id", &self.inner.family_id)
            .field("netns", &self.inner.options.netns)
            .field("sockets", &self.inner.conns.len())
            .finish()
    }
}

/// Maps how a message ended to the error for `request`.
pub(super) fn failure_error(failure: Failure, cmd: IpvsCmd, request: Request) -> IpvsError {
    match failure {
        Failure::Kernel { errno, message } => IpvsError::from_errno(cmd, request, errno, message),
        Failure::Decode(source) => IpvsError::Decode { request, source },
        Failure::Closed => IpvsError::ConnectionClosed { request },
        Failure::Lost => IpvsError::ReplyLost { request },
        Failure::Timeout(after) => IpvsError::Timeout { request, after },
        Failure::Stray(seq) => IpvsError::Protocol {
            request,
            detail: format!("an answer carried sequence number {seq}, which no message of its batch had"),
        },
    }
}

/// The replies of an answer, or its error.
pub(super) fn answer_result(answer: Answer, cmd: IpvsCmd, request: Request) -> Result<Vec<Wire>, IpvsError> {
    match answer.result {
        Some(Ok(())) => Ok(answer.replies),
        Some(Err(failure)) => Err(failure_error(failure, cmd, request)),
        None => Err(IpvsError::Protocol { request, detail: "the request never ended".into() }),
    }
}

/// The IPVS messages among replies; anything else is a protocol error.
pub(super) fn ipvs_replies(replies: Vec<Wire>, request: &Request) -> Result<Vec<IpvsMessage>, IpvsError> {
    replies
        .into_iter()
        .map(|wire| match wire {
            Wire::Ipvs(genl) => Ok(genl.payload),
            other => Err(IpvsError::Protocol {
                request: request.clone(),
                detail: format!("expected an IPVS reply, got {other:?}"),
            }),
        })
        .collect()
}

impl Ipvs {
    /// Connects to IPVS in the current network namespace.
    ///
    /// Fails with [`IpvsError::Unavailable`] when the kernel has no IPVS (module not loaded or not built).
    pub async fn connect() -> Result<Ipvs, IpvsError> {
        Self::connect_with(ConnectOptions::default()).await
    }

    /// Connects to IPVS in the network namespace of the file `path` (`/run/netns/NAME`, `/proc/PID/ns/net`).
    /// Joining a namespace needs `CAP_SYS_ADMIN`.
    pub async fn connect_in_netns(path: &Path) -> Result<Ipvs, IpvsError> {
        Self::connect_with(ConnectOptions { netns: NetnsSpec::Path(path.to_owned()), ..ConnectOptions::default() })
            .await
    }

    /// Connects with explicit options.
    pub async fn connect_with(options: ConnectOptions) -> Result<Ipvs, IpvsError> {
        let count = options.sockets.max(1);
        let rcvbuf = options.receive_buffer;
        let make = move || (0..count).map(|_| new_socket(rcvbuf)).collect::<Result<Vec<_>, _>>();
        let sockets = match options.netns.path() {
            None => make()?,
            Some(path) => run_in_netns(path, make).await?,
        };
        let conns: Vec<Conn> = sockets.into_iter().map(Conn::start).collect();
        let family_id = resolve_family(&conns[0], options.reply_timeout).await?;
        tracing::debug!(family_id, netns = %options.netns, sockets = conns.len(), "connected to IPVS");
        Ok(Ipvs { inner: Arc::new(Inner { family_id, conns, options }) })
    }

    /// Connects with explicit options, then injects the faults of `faults` into every later message (tests only;
    /// see `ipvs::faults`). The faults' message count starts after the family lookup.
    #[cfg(any(test, feature = "testing"))]
    pub async fn connect_with_faults(
        options: ConnectOptions,
        faults: Arc<super::faults::Faults>,
    ) -> Result<Ipvs, IpvsError> {
        let mut ipvs = Self::connect_with(options).await?;
        let inner = Arc::get_mut(&mut ipvs.inner).ok_or_else(|| IpvsError::Protocol {
            request: Request::global("connect"),
            detail: "a new connection is already shared".into(),
        })?;
        for conn in &mut inner.conns {
            conn.faults = Some(Arc::clone(&faults));
        }
        Ok(ipvs)
    }

    /// The generic-netlink family id the kernel gave IPVS (resolved once, at connect).
    pub fn family_id(&self) -> u16 {
        self.inner.family_id
    }

    /// Whether every socket still works. A socket whose send or receive failed is closed for good (its requests
    /// fail with [`IpvsError::ConnectionClosed`]): connect again then.
    pub fn is_connected(&self) -> bool {
        !self.inner.conns.iter().any(Conn::is_closed)
    }

    /// The options this handle was connected with.
    pub fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    /// Wraps an IPVS message for the wire.
    pub(super) fn netlink(&self, msg: IpvsMessage, flags: u16) -> NetlinkMessage<Wire> {
        let mut genl = GenlMessage::from_payload(msg);
        genl.set_resolved_family_id(self.inner.family_id);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        NetlinkMessage::new(header, NetlinkPayload::InnerMessage(Wire::Ipvs(genl)))
    }

    /// Sends one message on `conn` and waits for its answer.
    async fn exchange(
        &self,
        conn: &Conn,
        msg: IpvsMessage,
        flags: u16,
        request: Request,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let cmd = msg.cmd;
        let pending = conn
            .send(vec![self.netlink(msg, flags)])
            .ok_or_else(|| IpvsError::ConnectionClosed { request: request.clone() })?;
        let answer = pending.collect(self.inner.options.reply_timeout).await.into_iter().next().unwrap_or_default();
        ipvs_replies(answer_result(answer, cmd, request.clone())?, &request)
    }

    /// A write: one acknowledged request on the write socket.
    async fn write(&self, msg: IpvsMessage, request: Request) -> Result<(), IpvsError> {
        self.exchange(&self.inner.conns[0], msg, NLM_F_REQUEST | NLM_F_ACK, request).await.map(drop)
    }

    /// A `doit` read: exactly one reply.
    async fn get(&self, msg: IpvsMessage, request: Request) -> Result<IpvsMessage, IpvsError> {
        let mut replies = self.exchange(&self.inner.conns[0], msg, NLM_F_REQUEST | NLM_F_ACK, request.clone()).await?;
        match (replies.pop(), replies.is_empty()) {
            (Some(reply), true) => Ok(reply),
            (None, _) => Err(IpvsError::Protocol { request, detail: "acknowledged without a reply".into() }),
            (Some(_), false) => Err(IpvsError::Protocol { request, detail: "more than one reply".into() }),
        }
    }

    /// A dump on `conn`, holding its dump lock (the kernel refuses a second dump on a socket).
    pub(super) async fn dump_on(
        &self,
        conn: &Conn,
        msg: IpvsMessage,
        request: Request,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let _guard = conn.dump_lock.lock().await;
        self.exchange(conn, msg, NLM_F_REQUEST | NLM_F_DUMP, request).await
    }

    /// A dump on whichever socket is free (the first one if none is).
    async fn dump(&self, msg: IpvsMessage, request: Request) -> Result<Vec<IpvsMessage>, IpvsError> {
        let conns = &self.inner.conns;
        let conn = conns.iter().find(|c| c.dump_lock.try_lock().is_ok()).unwrap_or(&conns[0]);
        self.dump_on(conn, msg, request).await
    }

    /// Every service of the namespace (one dump), with counters.
    pub async fn services(&self) -> Result<Vec<Service>, IpvsError> {
        let request = Request::global("read-services");
        let replies = self.dump(IpvsMessage::get_service(None), request.clone()).await?;
        decode_all(replies, &request, IpvsMessage::to_service)
    }

    /// One service, or `None` if it does not exist.
    pub async fn service(&self, key: &ServiceKey) -> Result<Option<Service>, IpvsError> {
        let request = Request::service("get-service", key);
        match self.get(IpvsMessage::get_service(Some(key)), request.clone()).await {
            Ok(reply) => reply.to_service().map(Some).map_err(|source| IpvsError::Decode { request, source }),
            Err(IpvsError::NoSuchService(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The destinations of a service (one dump), with counters; [`IpvsError::NoSuchService`] if the service
    /// does not exist (the kernel answers that with an empty dump, so an empty dump is checked).
    pub async fn destinations(&self, key: &ServiceKey) -> Result<Vec<Destination>, IpvsError> {
        let request = Request::service("read-destinations", key);
        let replies = self.dump(IpvsMessage::get_dest(key), request.clone()).await?;
        if replies.is_empty() && self.service(key).await?.is_none() {
            return Err(IpvsError::from_errno(IpvsCmd::GetDest, request, Errno::ESRCH as i32, None));
        }
        let family = key.family();
        decode_all(replies, &request, |m| m.to_destination(family))
    }

    /// Adds a service (`NEW_SERVICE`).
    pub async fn add_service(&self, service: &Service) -> Result<(), IpvsError> {
        self.write(IpvsMessage::new_service(service), Request::service("add-service", &service.key)).await
    }

    /// Replaces a service's scheduler, flags, timeout, netmask and persistence engine (`SET_SERVICE`).
    pub async fn update_service(&self, service: &Service) -> Result<(), IpvsError> {
        self.write(IpvsMessage::set_service(service), Request::service("edit-service", &service.key)).await
    }

    /// Deletes a service and its destinations (`DEL_SERVICE`).
    pub async fn delete_service(&self, key: &ServiceKey) -> Result<(), IpvsError> {
        self.write(IpvsMessage::del_service(key), Request::service("delete-service", key)).await
    }

    /// Adds a destination to a service (`NEW_DEST`).
    pub async fn add_destination(&self, service: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        let request = Request { operation: "add-destination", service: Some(*service), dest: Some(dest.key) };
        self.write(IpvsMessage::new_dest(service, dest), request).await
    }

    /// Replaces a destination's forwarding, weight, thresholds and tunnel options (`SET_DEST`).
    pub async fn update_destination(&self, service: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        let request = Request { operation: "edit-destination", service: Some(*service), dest: Some(dest.key) };
        self.write(IpvsMessage::set_dest(service, dest), request).await
    }

    /// Deletes a destination (`DEL_DEST`).
    pub async fn delete_destination(&self, service: &ServiceKey, dest: &DestKey) -> Result<(), IpvsError> {
        let request = Request { operation: "delete-destination", service: Some(*service), dest: Some(*dest) };
        self.write(IpvsMessage::del_dest(service, dest), request).await
    }

    /// The kernel's IPVS version and connection table size (`GET_INFO`).
    pub async fn info(&self) -> Result<Info, IpvsError> {
        let request = Request::global("get-info");
        let reply = self.get(IpvsMessage::get_info(), request.clone()).await?;
        reply.to_info().map_err(|source| IpvsError::Decode { request, source })
    }

    /// The namespace's TCP, TCP-FIN and UDP timeouts (`GET_CONFIG`).
    pub async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        let request = Request::global("get-timeouts");
        let reply = self.get(IpvsMessage::get_config(), request.clone()).await?;
        reply.to_timeouts().map_err(|source| IpvsError::Decode { request, source })
    }

    /// Sets the timeouts; a 0 leaves that one unchanged (`SET_CONFIG`).
    pub async fn set_timeouts(&self, timeouts: &Timeouts) -> Result<(), IpvsError> {
        self.write(IpvsMessage::set_config(timeouts), Request::global("set-timeouts")).await
    }

    /// The running connection-sync daemons (`GET_DAEMON` dump; 0 to 2 of them).
    pub async fn daemons(&self) -> Result<Vec<SyncDaemon>, IpvsError> {
        let request = Request::global("read-daemons");
        let replies = self.dump(IpvsMessage::get_daemon(), request.clone()).await?;
        decode_all(replies, &request, IpvsMessage::to_daemon)
    }

    /// Starts a connection-sync daemon (`NEW_DAEMON`).
    pub async fn start_daemon(&self, daemon: &SyncDaemon) -> Result<(), IpvsError> {
        self.write(IpvsMessage::new_daemon(daemon), Request::global("start-daemon")).await
    }

    /// Stops the daemon running in `state` (`DEL_DAEMON`).
    pub async fn stop_daemon(&self, state: DaemonState) -> Result<(), IpvsError> {
        self.write(IpvsMessage::del_daemon(state), Request::global("stop-daemon")).await
    }

    /// Resets the counters of one service and its destinations, or of the whole namespace (`ZERO`).
    pub async fn zero(&self, service: Option<&ServiceKey>) -> Result<(), IpvsError> {
        let request = match service {
            Some(key) => Request::service("zero", key),
            None => Request::global("zero"),
        };
        self.write(IpvsMessage::zero(service), request).await
    }

    /// Deletes every service of the namespace (`FLUSH`).
    pub async fn flush(&self) -> Result<(), IpvsError> {
        self.write(IpvsMessage::flush(), Request::global("flush")).await
    }
}

/// Decodes every reply with `decode`, failing on the first that does not.
pub(super) fn decode_all<T>(
    replies: Vec<IpvsMessage>,
    request: &Request,
    decode: impl Fn(&IpvsMessage) -> Result<T, netlink_packet_core::DecodeError>,
) -> Result<Vec<T>, IpvsError> {
    replies.iter().map(|m| decode(m).map_err(|source| IpvsError::Decode { request: request.clone(), source })).collect()
}

/// Looks up the IPVS family id through the generic-netlink controller.
async fn resolve_family(conn: &Conn, timeout: Duration) -> Result<u16, IpvsError> {
    let request = Request::global("resolve-family");
    let ctrl = GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.into())] };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let msg =
        NetlinkMessage::new(header, NetlinkPayload::InnerMessage(Wire::CtrlRequest(GenlMessage::from_payload(ctrl))));
    let pending = conn.send(vec![msg]).ok_or_else(|| IpvsError::ConnectionClosed { request: request.clone() })?;
    let answer = pending.collect(timeout).await.into_iter().next().unwrap_or_default();
    match answer.result {
        Some(Err(Failure::Kernel { errno, .. })) if errno == Errno::ENOENT as i32 => Err(IpvsError::Unavailable {
            detail: "the generic netlink family \"IPVS\" is not registered: the ip_vs kernel module is not \
                     loaded (modprobe ip_vs) or the kernel is built without IPVS"
                .into(),
        }),
        _ => {
            let replies = answer_result(answer, IpvsCmd::Other(0), request.clone())?;
            replies
                .iter()
                .find_map(|w| match w {
                    Wire::CtrlReply { family_id } => *family_id,
                    _ => None,
                })
                .ok_or_else(|| IpvsError::Protocol {
                    request,
                    detail: "the controller's answer has no CTRL_ATTR_FAMILY_ID".into(),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Op;

    fn assert_send<T: Send>(_: &T) {}

    /// The engine spawns work on a multi-threaded runtime: the handle must be shareable and its futures
    /// movable between threads. (A compile-time check; the function is never run.)
    #[allow(dead_code, clippy::diverging_sub_expression)]
    async fn handle_and_futures_are_send(ipvs: Ipvs, ops: Vec<Op>) {
        fn sync<T: Send + Sync + Clone + 'static>() {}
        sync::<Ipvs>();
        assert_send(&ipvs.apply(&ops));
        assert_send(&ipvs.read_table());
        assert_send(&ipvs.services());
        assert_send(&Ipvs::connect());
    }
}

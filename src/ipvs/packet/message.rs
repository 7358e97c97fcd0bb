//! The IPVS generic-netlink message: a command and its attributes, request builders and reply readers.

use std::fmt;

use netlink_packet_core::{DecodeError, Emitable, NlasIterator, Parseable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::attr::{CmdAttr, InfoAttr};
use super::{daemon, dest, service};
use crate::model::{DaemonState, DestKey, Destination, Family, Info, Op, Service, ServiceKey, SyncDaemon, Timeouts};

/// The family name IPVS registers with the generic-netlink controller.
pub const FAMILY_NAME: &str = "IPVS";
/// The family's protocol version.
pub const FAMILY_VERSION: u8 = 1;

/// An IPVS command (`IPVS_CMD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpvsCmd {
    /// `IPVS_CMD_NEW_SERVICE` (1): add a service; also the reply to `GET_SERVICE`.
    NewService,
    /// `IPVS_CMD_SET_SERVICE` (2): edit a service.
    SetService,
    /// `IPVS_CMD_DEL_SERVICE` (3)
    DelService,
    /// `IPVS_CMD_GET_SERVICE` (4): one service, or all as a dump.
    GetService,
    /// `IPVS_CMD_NEW_DEST` (5): add a destination; also the reply to `GET_DEST`.
    NewDest,
    /// `IPVS_CMD_SET_DEST` (6)
    SetDest,
    /// `IPVS_CMD_DEL_DEST` (7)
    DelDest,
    /// `IPVS_CMD_GET_DEST` (8): dump only.
    GetDest,
    /// `IPVS_CMD_NEW_DAEMON` (9): start a sync daemon; also the reply to `GET_DAEMON`.
    NewDaemon,
    /// `IPVS_CMD_DEL_DAEMON` (10)
    DelDaemon,
    /// `IPVS_CMD_GET_DAEMON` (11): dump only.
    GetDaemon,
    /// `IPVS_CMD_SET_CONFIG` (12): set timeouts; also the reply to `GET_CONFIG`.
    SetConfig,
    /// `IPVS_CMD_GET_CONFIG` (13)
    GetConfig,
    /// `IPVS_CMD_SET_INFO` (14): the reply to `GET_INFO`.
    SetInfo,
    /// `IPVS_CMD_GET_INFO` (15)
    GetInfo,
    /// `IPVS_CMD_ZERO` (16): reset counters.
    Zero,
    /// `IPVS_CMD_FLUSH` (17): delete every service.
    Flush,
    /// A command this code does not know.
    Other(u8),
}

impl From<IpvsCmd> for u8 {
    fn from(cmd: IpvsCmd) -> u8 {
        match cmd {
            IpvsCmd::NewService => 1,
            IpvsCmd::SetService => 2,
            IpvsCmd::DelService => 3,
            IpvsCmd::GetService => 4,
            IpvsCmd::NewDest => 5,
            IpvsCmd::SetDest => 6,
            IpvsCmd::DelDest => 7,
            IpvsCmd::GetDest => 8,
            IpvsCmd::NewDaemon => 9,
            IpvsCmd::DelDaemon => 10,
            IpvsCmd::GetDaemon => 11,
            IpvsCmd::SetConfig => 12,
            IpvsCmd::GetConfig => 13,
            IpvsCmd::SetInfo => 14,
            IpvsCmd::GetInfo => 15,
            IpvsCmd::Zero => 16,
            IpvsCmd::Flush => 17,
            IpvsCmd::Other(n) => n,
        }
    }
}

impl From<u8> for IpvsCmd {
    fn from(n: u8) -> IpvsCmd {
        match n {
            1 => IpvsCmd::NewService,
            2 => IpvsCmd::SetService,
            3 => IpvsCmd::DelService,
            4 => IpvsCmd::GetService,
            5 => IpvsCmd::NewDest,
            6 => IpvsCmd::SetDest,
            7 => IpvsCmd::DelDest,
            8 => IpvsCmd::GetDest,
            9 => IpvsCmd::NewDaemon,
            10 => IpvsCmd::DelDaemon,
            11 => IpvsCmd::GetDaemon,
            12 => IpvsCmd::SetConfig,
            13 => IpvsCmd::GetConfig,
            14 => IpvsCmd::SetInfo,
            15 => IpvsCmd::GetInfo,
            16 => IpvsCmd::Zero,
            17 => IpvsCmd::Flush,
            n => IpvsCmd::Other(n),
        }
    }
}

/// The kernel's name, e.g. `IPVS_CMD_NEW_DEST`.
impl fmt::Display for IpvsCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            IpvsCmd::NewService => "NEW_SERVICE",
            IpvsCmd::SetService => "SET_SERVICE",
            IpvsCmd::DelService => "DEL_SERVICE",
            IpvsCmd::GetService => "GET_SERVICE",
            IpvsCmd::NewDest => "NEW_DEST",
            IpvsCmd::SetDest => "SET_DEST",
            IpvsCmd::DelDest => "DEL_DEST",
            IpvsCmd::GetDest => "GET_DEST",
            IpvsCmd::NewDaemon => "NEW_DAEMON",
            IpvsCmd::DelDaemon => "DEL_DAEMON",
            IpvsCmd::GetDaemon => "GET_DAEMON",
            IpvsCmd::SetConfig => "SET_CONFIG",
            IpvsCmd::GetConfig => "GET_CONFIG",
            IpvsCmd::SetInfo => "SET_INFO",
            IpvsCmd::GetInfo => "GET_INFO",
            IpvsCmd::Zero => "ZERO",
            IpvsCmd::Flush => "FLUSH",
            IpvsCmd::Other(n) => return write!(f, "IPVS_CMD_{n}"),
        };
        write!(f, "IPVS_CMD_{name}")
    }
}

/// The attributes of a message. Which set applies depends on the command: only `SET_INFO` (the `GET_INFO`
/// reply) carries info attributes, whose numbers clash with the command attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsAttrs {
    /// `IPVS_CMD_ATTR_*`
    Cmd(Vec<CmdAttr>),
    /// `IPVS_INFO_ATTR_*`
    Info(Vec<InfoAttr>),
}

/// An IPVS generic-netlink payload (after the `genlmsghdr`; IPVS has no family header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The command.
    pub cmd: IpvsCmd,
    /// Its attributes.
    pub attrs: IpvsAttrs,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        match &self.attrs {
            IpvsAttrs::Cmd(attrs) => attrs.as_slice().buffer_len(),
            IpvsAttrs::Info(attrs) => attrs.as_slice().buffer_len(),
        }
    }

    fn emit(&self, buffer: &mut [u8]) {
        match &self.attrs {
            IpvsAttrs::Cmd(attrs) => attrs.as_slice().emit(buffer),
            IpvsAttrs::Info(attrs) => attrs.as_slice().emit(buffer),
        }
    }
}

/// Parses every top-level attribute, failing on the first malformed one.
fn parse_all<T>(buf: &[u8], cmd: IpvsCmd) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<netlink_packet_core::NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(buf)
        .map(|nla| nla.and_then(|nla| T::parse(&nla)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DecodeError::from(format!("{cmd} message: {e}")))
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from(header.cmd);
        let attrs = match cmd {
            IpvsCmd::SetInfo => IpvsAttrs::Info(parse_all(buf, cmd)?),
            _ => IpvsAttrs::Cmd(parse_all(buf, cmd)?),
        };
        Ok(IpvsMessage { cmd, attrs })
    }
}

impl IpvsMessage {
    /// A message with command attributes.
    pub fn new(cmd: IpvsCmd, attrs: Vec<CmdAttr>) -> Self {
        IpvsMessage { cmd, attrs: IpvsAttrs::Cmd(attrs) }
    }

    /// The command attributes (empty for a `SET_INFO` message).
    pub fn cmd_attrs(&self) -> &[CmdAttr] {
        match &self.attrs {
            IpvsAttrs::Cmd(attrs) => attrs,
            IpvsAttrs::Info(_) => &[],
        }
    }

    /// `NEW_SERVICE` for `service`.
    pub fn new_service(service: &Service) -> Self {
        Self::new(IpvsCmd::NewService, vec![CmdAttr::Service(service::request_attrs(service))])
    }

    /// `SET_SERVICE` for `service`: replaces scheduler, flags, timeout, netmask and persistence engine.
    pub fn set_service(service: &Service) -> Self {
        Self::new(IpvsCmd::SetService, vec![CmdAttr::Service(service::request_attrs(service))])
    }

    /// `DEL_SERVICE`
    pub fn del_service(key: &ServiceKey) -> Self {
        Self::new(IpvsCmd::DelService, vec![CmdAttr::Service(service::key_attrs(key))])
    }

    /// `GET_SERVICE` for one service (send as a plain request), or with no key for the dump of all.
    pub fn get_service(key: Option<&ServiceKey>) -> Self {
        Self::new(IpvsCmd::GetService, key.map(|k| CmdAttr::Service(service::key_attrs(k))).into_iter().collect())
    }

    /// `NEW_DEST` adding `dest` to the service `key`.
    pub fn new_dest(key: &ServiceKey, dest: &Destination) -> Self {
        Self::dest_cmd(IpvsCmd::NewDest, key, dest::request_attrs(&dest.key, &dest.config))
    }

    /// `SET_DEST`: replaces forwarding, weight, thresholds and tunnel options of `dest`.
    pub fn set_dest(key: &ServiceKey, dest: &Destination) -> Self {
        Self::dest_cmd(IpvsCmd::SetDest, key, dest::request_attrs(&dest.key, &dest.config))
    }

    /// `DEL_DEST`
    pub fn del_dest(key: &ServiceKey, dest: &DestKey) -> Self {
        Self::dest_cmd(IpvsCmd::DelDest, key, dest::key_attrs(dest))
    }

    fn dest_cmd(cmd: IpvsCmd, key: &ServiceKey, dest: Vec<dest::DestAttr>) -> Self {
        Self::new(cmd, vec![CmdAttr::Service(service::key_attrs(key)), CmdAttr::Dest(dest)])
    }

    /// `GET_DEST` (send as a dump): the destinations of the service `key`.
    pub fn get_dest(key: &ServiceKey) -> Self {
        Self::new(IpvsCmd::GetDest, vec![CmdAttr::Service(service::key_attrs(key))])
    }

    /// `NEW_DAEMON`: start a sync daemon.
    pub fn new_daemon(daemon: &SyncDaemon) -> Self {
        Self::new(IpvsCmd::NewDaemon, vec![CmdAttr::Daemon(daemon::request_attrs(daemon))])
    }

    /// `DEL_DAEMON`: stop the daemon in `state`.
    pub fn del_daemon(state: DaemonState) -> Self {
        Self::new(IpvsCmd::DelDaemon, vec![CmdAttr::Daemon(daemon::state_attrs(state))])
    }

    /// `GET_DAEMON` (send as a dump).
    pub fn get_daemon() -> Self {
        Self::new(IpvsCmd::GetDaemon, Vec::new())
    }

    /// `SET_CONFIG`: the three timeouts (0 leaves one unchanged).
    pub fn set_config(timeouts: &Timeouts) -> Self {
        Self::new(
            IpvsCmd::SetConfig,
            vec![
                CmdAttr::TimeoutTcp(timeouts.tcp),
                CmdAttr::TimeoutTcpFin(timeouts.tcp_fin),
                CmdAttr::TimeoutUdp(timeouts.udp),
            ],
        )
    }

    /// `GET_CONFIG`
    pub fn get_config() -> Self {
        Self::new(IpvsCmd::GetConfig, Vec::new())
    }

    /// `GET_INFO`
    pub fn get_info() -> Self {
        Self::new(IpvsCmd::GetInfo, Vec::new())
    }

    /// `SET_INFO`, the `GET_INFO` reply (for tests and fakes).
    pub fn info_reply(info: &Info) -> Self {
        IpvsMessage {
            cmd: IpvsCmd::SetInfo,
            attrs: IpvsAttrs::Info(vec![
                InfoAttr::Version(info.version),
                InfoAttr::ConnTableSize(info.conn_table_size),
            ]),
        }
    }

    /// `ZERO`: the counters of one service and its destinations, or of the whole namespace.
    pub fn zero(key: Option<&ServiceKey>) -> Self {
        Self::new(IpvsCmd::Zero, key.map(|k| CmdAttr::Service(service::key_attrs(k))).into_iter().collect())
    }

    /// `FLUSH`: delete every service of the namespace.
    pub fn flush() -> Self {
        Self::new(IpvsCmd::Flush, Vec::new())
    }

    /// The request that carries out `op`.
    pub fn from_op(op: &Op) -> Self {
        match op {
            Op::AddService(s) => Self::new_service(s),
            Op::UpdateService(s) => Self::set_service(s),
            Op::DeleteService(k) => Self::del_service(k),
            Op::AddDest(k, d) => Self::new_dest(k, d),
            Op::UpdateDest(k, d) => Self::set_dest(k, d),
            Op::DeleteDest(k, d) => Self::del_dest(k, d),
        }
    }

    /// Fails unless this message is a `cmd` message.
    fn expect(&self, cmd: IpvsCmd) -> Result<(), DecodeError> {
        if self.cmd == cmd {
            Ok(())
        } else {
            Err(DecodeError::from(format!("expected an {cmd} reply, got {}", self.cmd)))
        }
    }

    /// The service of a `NEW_SERVICE` message (a `GET_SERVICE` reply).
    pub fn to_service(&self) -> Result<Service, DecodeError> {
        self.expect(IpvsCmd::NewService)?;
        let nest = self.cmd_attrs().iter().find_map(|a| match a {
            CmdAttr::Service(attrs) => Some(attrs),
            _ => None,
        });
        let nest = nest.ok_or_else(|| DecodeError::from("IPVS_CMD_NEW_SERVICE: missing IPVS_CMD_ATTR_SERVICE"))?;
        service::decode_service(nest)
    }

    /// The destination of a `NEW_DEST` message (a `GET_DEST` reply); `service_family` serves kernels that do not
    /// report the destination's own family.
    pub fn to_destination(&self, service_family: Family) -> Result<Destination, DecodeError> {
        self.expect(IpvsCmd::NewDest)?;
        let nest = self.cmd_attrs().iter().find_map(|a| match a {
            CmdAttr::Dest(attrs) => Some(attrs),
            _ => None,
        });
        let nest = nest.ok_or_else(|| DecodeError::from("IPVS_CMD_NEW_DEST: missing IPVS_CMD_ATTR_DEST"))?;
        dest::decode_destination(nest, service_family)
    }

    /// The daemon of a `NEW_DAEMON` message (a `GET_DAEMON` reply).
    pub fn to_daemon(&self) -> Result<SyncDaemon, DecodeError> {
        self.expect(IpvsCmd::NewDaemon)?;
        let nest = self.cmd_attrs().iter().find_map(|a| match a {
            CmdAttr::Daemon(attrs) => Some(attrs),
            _ => None,
        });
        let nest = nest.ok_or_else(|| DecodeError::from("IPVS_CMD_NEW_DAEMON: missing IPVS_CMD_ATTR_DAEMON"))?;
        daemon::decode_daemon(nest)
    }

    /// The timeouts of a `SET_CONFIG` message (the `GET_CONFIG` reply).
    pub fn to_timeouts(&self) -> Result<Timeouts, DecodeError> {
        self.expect(IpvsCmd::SetConfig)?;
        let (mut tcp, mut tcp_fin, mut udp) = (None, None, None);
        for attr in self.cmd_attrs() {
            match attr {
                CmdAttr::TimeoutTcp(v) => tcp = Some(*v),
                CmdAttr::TimeoutTcpFin(v) => tcp_fin = Some(*v),
                CmdAttr::TimeoutUdp(v) => udp = Some(*v),
                _ => {}
            }
        }
        const WHAT: &str = "IPVS_CMD_SET_CONFIG";
        Ok(Timeouts {
            tcp: super::value::required(tcp, WHAT, "IPVS_CMD_ATTR_TIMEOUT_TCP")?,
            tcp_fin: super::value::required(tcp_fin, WHAT, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?,
            udp: super::value::required(udp, WHAT, "IPVS_CMD_ATTR_TIMEOUT_UDP")?,
        })
    }

    /// The version information of a `SET_INFO` message (the `GET_INFO` reply).
    pub fn to_info(&self) -> Result<Info, DecodeError> {
        self.expect(IpvsCmd::SetInfo)?;
        let (mut version, mut size) = (None, None);
        if let IpvsAttrs::Info(attrs) = &self.attrs {
            for attr in attrs {
                match attr {
                    InfoAttr::Version(v) => version = Some(*v),
                    InfoAttr::ConnTableSize(v) => size = Some(*v),
                    InfoAttr::Other(_) => {}
                }
            }
        }
        const WHAT: &str = "IPVS_CMD_SET_INFO";
        Ok(Info {
            version: super::value::required(version, WHAT, "IPVS_INFO_ATTR_VERSION")?,
            conn_table_size: super::value::required(size, WHAT, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?,
        })
    }
}

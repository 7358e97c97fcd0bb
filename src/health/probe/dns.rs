//! DNS: one query over UDP (the message built and parsed by hickory-proto); healthy on NOERROR with at least
//! one answer record.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::connect_udp;
use crate::health::check::DnsQueryType;
use crate::health::error::ProbeError;

/// The receive buffer: the largest reply a server sends over UDP to a query without EDNS is 512 bytes; the
/// margin takes servers that send more anyway (the reply is decoded, not just its header).
const MAX_REPLY_BYTES: usize = 4096;

/// Asks `target` for `query`/`query_type` with recursion desired (a recursive resolver then resolves; an
/// authoritative server ignores the flag), from a fresh socket (a fresh source port, a random message id).
pub(super) async fn probe(
    query: &str,
    query_type: DnsQueryType,
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<(), ProbeError> {
    let mut name =
        Name::from_ascii(query).map_err(|err| ProbeError::InvalidCheck(format!("DNS name {query:?}: {err}")))?;
    name.set_fqdn(true);
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, record_type(query_type)));
    let id = message.metadata.id;
    let bytes = message.to_vec().map_err(|err| ProbeError::InvalidCheck(format!("DNS query for {query:?}: {err}")))?;

    let socket = connect_udp(target, source).await?;
    socket.send(&bytes).await.map_err(|err| ProbeError::socket("send", err))?;
    let mut reply = vec![0u8; MAX_REPLY_BYTES];
    let received = socket.recv(&mut reply).await.map_err(|err| ProbeError::socket("recv", err))?;
    verdict(&reply[..received], id)
}

/// The verdict on the bytes of a reply to the query with message id `id`.
pub(super) fn verdict(reply: &[u8], id: u16) -> Result<(), ProbeError> {
    let reply =
        Message::from_vec(reply).map_err(|err| ProbeError::UnexpectedReply(format!("undecodable DNS reply: {err}")))?;
    check_reply(&reply, id)
}

/// The verdict on a decoded reply to the query with message id `id`.
fn check_reply(reply: &Message, id: u16) -> Result<(), ProbeError> {
    if reply.metadata.message_type != MessageType::Response || reply.metadata.id != id {
        return Err(ProbeError::UnexpectedReply(format!(
            "not a reply to the query (id {} {:?}, expected id {id} Response)",
            reply.metadata.id, reply.metadata.message_type
        )));
    }
    let rcode = reply.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(ProbeError::DnsRcode(rcode_name(rcode)));
    }
    if reply.answers.is_empty() {
        return Err(ProbeError::DnsNoAnswer);
    }
    Ok(())
}

/// The response code as operators write it (`NXDOMAIN`, `SERVFAIL`, `REFUSED`).
fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::Refused => "REFUSED".to_owned(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn record_type(query_type: DnsQueryType) -> RecordType {
    match query_type {
        DnsQueryType::A => RecordType::A,
        DnsQueryType::Aaaa => RecordType::AAAA,
        DnsQueryType::Cname => RecordType::CNAME,
        DnsQueryType::Mx => RecordType::MX,
        DnsQueryType::Ns => RecordType::NS,
        DnsQueryType::Ptr => RecordType::PTR,
        DnsQueryType::Soa => RecordType::SOA,
        DnsQueryType::Srv => RecordType::SRV,
        DnsQueryType::Txt => RecordType::TXT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::OpCode;

    #[test]
    fn rcode_names_are_the_usual_mnemonics() {
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
    }

    #[test]
    fn a_query_echoed_back_is_not_a_reply() {
        let query = Message::new(7, MessageType::Query, OpCode::Query);
        assert!(matches!(check_reply(&query, 7), Err(ProbeError::UnexpectedReply(_))));
        let other_id = Message::response(8, OpCode::Query);
        assert!(matches!(check_reply(&other_id, 7), Err(ProbeError::UnexpectedReply(_))));
    }
}

//! DNS probes against a small server on loopback whose replies are built with hickory-proto.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

use super::*;
use crate::health::DnsQueryType;

/// How the test server answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// NOERROR with one A record.
    Record,
    /// NXDOMAIN.
    NxDomain,
    /// NOERROR, no answer record.
    Empty,
    /// A correct answer under another message id.
    WrongId,
    /// Bytes that are not a DNS message.
    Garbage,
}

/// What a query asked: name, type, recursion desired.
type Asked = Arc<Mutex<Vec<(String, RecordType, bool)>>>;

async fn dns_server(answer: Answer) -> (SocketAddr, Asked) {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let asked: Asked = Arc::default();
    let log = asked.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
            let query = Message::from_vec(&buf[..len]).unwrap();
            let question = query.queries[0].clone();
            log.lock().unwrap().push((
                question.name().to_string(),
                question.query_type(),
                query.metadata.recursion_desired,
            ));
            let id = match answer {
                Answer::WrongId => query.metadata.id.wrapping_add(1),
                _ => query.metadata.id,
            };
            let mut reply = Message::response(id, OpCode::Query);
            reply.add_query(question.clone());
            match answer {
                Answer::Record | Answer::WrongId => {
                    reply.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A(Ipv4Addr::LOCALHOST))));
                }
                Answer::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
                Answer::Empty | Answer::Garbage => {}
            }
            let bytes = match answer {
                Answer::Garbage => b"\x00\x01not dns".to_vec(),
                _ => reply.to_vec().unwrap(),
            };
            let _ = socket.send_to(&bytes, peer).await;
        }
    });
    (addr, asked)
}

fn dns(query: &str, query_type: DnsQueryType) -> Probe {
    Probe::Dns { query: query.to_owned(), query_type }
}

#[tokio::test]
async fn dns_answer_is_ok_and_the_query_is_as_configured() {
    let (addr, asked) = dns_server(Answer::Record).await;
    assert_ok(&dns("health.test", DnsQueryType::A), addr).await;
    assert_ok(&dns("health.test.", DnsQueryType::Aaaa), addr).await;
    assert_eq!(
        *asked.lock().unwrap(),
        vec![("health.test.".to_owned(), RecordType::A, true), ("health.test.".to_owned(), RecordType::AAAA, true)]
    );
}

#[tokio::test]
async fn dns_nxdomain_is_an_rcode_failure() {
    let (addr, _asked) = dns_server(Answer::NxDomain).await;
    match run(&dns("missing.test", DnsQueryType::A), addr, None, GENEROUS).await {
        Err(err @ ProbeError::DnsRcode(_)) => {
            assert_eq!(err.outcome_label(), "dns_rcode");
            assert_eq!(err.to_string(), "DNS answered NXDOMAIN");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dns_noerror_without_answer_fails() {
    let (addr, _asked) = dns_server(Answer::Empty).await;
    let result = run(&dns("health.test", DnsQueryType::A), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::DnsNoAnswer)), "{result:?}");
}

#[tokio::test]
async fn dns_reply_to_another_query_or_not_dns_is_unexpected() {
    for answer in [Answer::WrongId, Answer::Garbage] {
        let (addr, _asked) = dns_server(answer).await;
        let result = run(&dns("health.test", DnsQueryType::A), addr, None, GENEROUS).await;
        assert!(matches!(result, Err(ProbeError::UnexpectedReply(_))), "{answer:?}: {result:?}");
    }
}

#[tokio::test]
async fn dns_silent_server_times_out() {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    assert_times_out(&dns("health.test", DnsQueryType::A), socket.local_addr().unwrap()).await;
}

#[tokio::test]
async fn dns_closed_port_is_refused() {
    assert_refused(&dns("health.test", DnsQueryType::A), closed_udp_port().await).await;
}

#[tokio::test]
async fn dns_name_that_is_not_a_dns_name_is_an_invalid_check() {
    let (addr, asked) = dns_server(Answer::Record).await;
    let too_long = format!("{}.test", "a".repeat(64));
    let result = run(&dns(&too_long, DnsQueryType::A), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::InvalidCheck(_))), "{result:?}");
    assert!(asked.lock().unwrap().is_empty(), "nothing is sent for an invalid name");
}

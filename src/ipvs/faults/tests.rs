//! The fault layer's effect on a datagram, fed by hand as if from the kernel: what gets through, what replaces it.

use std::num::NonZeroI32;

use futures::StreamExt;
use futures::channel::mpsc;
use netlink_packet_core::{NLM_F_MULTIPART, NetlinkHeader};

use super::*;
use crate::ipvs::packet::IpvsCmd;
use crate::model::ServiceKey;

fn request(msg: IpvsMessage, flags: u16) -> NetlinkMessage<Wire> {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(0x23);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    NetlinkMessage::new(header, NetlinkPayload::InnerMessage(Wire::Ipvs(genl)))
}

fn key() -> ServiceKey {
    ServiceKey::tcp([192, 0, 2, 1].into(), 80)
}

/// A datagram of a destination dump (0), a write (1) and another dump (2), numbered from `first` by the plan.
fn datagram(faults: &Faults) -> Option<(Vec<NetlinkMessage<Wire>>, Batch)> {
    faults.before_send(vec![
        request(IpvsMessage::get_dest(&key()), NLM_F_REQUEST | NLM_F_DUMP),
        request(IpvsMessage::flush(), NLM_F_REQUEST | NLM_F_ACK),
        request(IpvsMessage::get_dest(&key()), NLM_F_REQUEST | NLM_F_DUMP),
    ])
}

fn reply(seq: u32) -> NetlinkMessage<Wire> {
    answer(
        seq,
        NLM_F_MULTIPART,
        NetlinkPayload::InnerMessage(Wire::Ipvs(GenlMessage::from_payload(IpvsMessage::flush()))),
    )
}

fn done(seq: u32) -> NetlinkMessage<Wire> {
    answer(seq, NLM_F_MULTIPART, NetlinkPayload::Done(DoneMessage::default()))
}

fn ack(seq: u32) -> NetlinkMessage<Wire> {
    answer(seq, 0, NetlinkPayload::Error(ErrorMessage::default()))
}

/// What the kernel answers the datagram numbered from 10: two replies and DONE, an ack, one reply and DONE.
fn kernel_answers() -> Vec<NetlinkMessage<Wire>> {
    vec![reply(10), reply(10), done(10), ack(11), reply(12), done(12)]
}

/// `(seq, kind)` of what gets through, the stream ending or not once the kernel's answers are all in.
async fn through(batch: Batch) -> (Vec<(u32, &'static str)>, bool) {
    let (tx, rx) = mpsc::unbounded();
    for m in kernel_answers() {
        tx.unbounded_send(m).unwrap();
    }
    let mut stream = batch.wrap(10, Box::pin(rx));
    let mut seen = Vec::new();
    loop {
        // The sender is kept: an end of the stream is the fault layer's, not the channel's.
        let next = futures::future::select(stream.next(), futures::future::ready(())).await;
        match next {
            futures::future::Either::Left((Some(m), _)) => {
                let kind = match &m.payload {
                    NetlinkPayload::InnerMessage(_) => "reply",
                    NetlinkPayload::Done(_) => "done",
                    NetlinkPayload::Error(e) if e.code.is_none() => "ack",
                    NetlinkPayload::Error(_) => "error",
                    NetlinkPayload::Overrun(_) => "overrun",
                    _ => "other",
                };
                seen.push((m.header.sequence_number, kind));
            }
            futures::future::Either::Left((None, _)) => return (seen, true),
            futures::future::Either::Right(_) => return (seen, false),
        }
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn without_a_fault_every_answer_gets_through() {
    let faults = Faults::none();
    let (_, batch) = datagram(&faults).unwrap();
    let (seen, ended) = run(through(batch));
    assert_eq!(seen, [(10, "reply"), (10, "reply"), (10, "done"), (11, "ack"), (12, "reply"), (12, "done")]);
    assert!(!ended);
    assert_eq!(faults.sent(), 3);
    assert!(faults.fired().is_empty());
}

#[test]
fn a_refused_message_is_not_sent_and_is_answered_with_its_errno_alone() {
    let faults = Faults::at(1, NetlinkFault::Refuse { errno: libc::EINVAL });
    let (sent, batch) = datagram(&faults).unwrap();
    let NetlinkPayload::InnerMessage(Wire::Ipvs(genl)) = &sent[1].payload else { panic!("{:?}", sent[1]) };
    assert_eq!(genl.payload.cmd, IpvsCmd::GetInfo, "the write is replaced by a read");
    assert_eq!(genl.resolved_family_id(), 0x23);
    let (seen, _) = run(through(batch));
    assert_eq!(seen, [(10, "reply"), (10, "reply"), (10, "done"), (11, "error"), (12, "reply"), (12, "done")]);
    let fired = faults.fired();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].index, fired[0].request.as_str()), (1, "Flush"));
}

#[test]
fn the_refusal_carries_the_errno() {
    let faults = Faults::at(0, NetlinkFault::Refuse { errno: libc::ENOBUFS });
    let (_, batch) = datagram(&faults).unwrap();
    let (tx, rx) = mpsc::unbounded();
    tx.unbounded_send(reply(10)).unwrap();
    let mut stream = batch.wrap(10, Box::pin(rx));
    let first = run(stream.next()).unwrap();
    let NetlinkPayload::Error(e) = first.payload else { panic!("{first:?}") };
    assert_eq!(e.code, NonZeroI32::new(-libc::ENOBUFS));
}

#[test]
fn a_close_lets_the_earlier_answers_through_then_ends_and_refuses_later_sends() {
    let faults = Faults::at(1, NetlinkFault::Close);
    let (sent, batch) = datagram(&faults).unwrap();
    assert_eq!(sent.len(), 3, "the whole datagram is sent: the kernel carries it out");
    assert!(faults.is_closed());
    let (seen, ended) = run(through(batch));
    assert_eq!(seen, [(10, "reply"), (10, "reply"), (10, "done")]);
    assert!(ended, "the connection ends once the answers before the close are in");
    assert!(datagram(&faults).is_none(), "nothing is sent on a closed connection");
}

#[test]
fn a_close_at_the_first_message_ends_at_once() {
    let faults = Faults::at(0, NetlinkFault::Close);
    let (_, batch) = datagram(&faults).unwrap();
    assert_eq!(run(through(batch)), (vec![], true));
}

#[test]
fn an_overrun_delivers_the_kept_replies_then_reports_the_loss() {
    let faults = Faults::at(0, NetlinkFault::Overrun { keep: 1 });
    let (_, batch) = datagram(&faults).unwrap();
    let (seen, _) = run(through(batch));
    assert_eq!(&seen[..2], [(10, "reply"), (10, "overrun")]);
    assert!(!seen.contains(&(10, "done")), "{seen:?}");
}

#[test]
fn a_dump_cut_short_ends_early_with_done_or_never() {
    let faults = Faults::at(2, NetlinkFault::CutDump { keep: 0, done: true });
    let (_, batch) = datagram(&faults).unwrap();
    let (seen, _) = run(through(batch));
    assert_eq!(seen, [(10, "reply"), (10, "reply"), (10, "done"), (11, "ack"), (12, "done")]);

    let faults = Faults::at(0, NetlinkFault::CutDump { keep: 1, done: false });
    let (_, batch) = datagram(&faults).unwrap();
    let (seen, ended) = run(through(batch));
    assert_eq!(seen, [(10, "reply"), (11, "ack"), (12, "reply"), (12, "done")]);
    assert!(!ended);
}

#[test]
fn only_dumps_are_cut() {
    let faults = Faults::at(1, NetlinkFault::CutDump { keep: 0, done: true });
    let (_, batch) = datagram(&faults).unwrap();
    let (seen, _) = run(through(batch));
    assert!(seen.contains(&(11, "ack")), "a write's answer is not turned into a DONE: {seen:?}");
}

#[test]
fn messages_are_numbered_across_datagrams() {
    let faults = Faults::at(4, NetlinkFault::Refuse { errno: libc::EEXIST });
    datagram(&faults).unwrap();
    let (sent, _) = datagram(&faults).unwrap();
    let NetlinkPayload::InnerMessage(Wire::Ipvs(genl)) = &sent[1].payload else { panic!() };
    assert_eq!(genl.payload.cmd, IpvsCmd::GetInfo);
    assert_eq!(faults.sent(), 6);
    assert_eq!(faults.fired()[0].index, 4);
}

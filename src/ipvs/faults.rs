//! Netlink faults injected between the IPVS client and its sockets, for tests only (compiled under `cfg(test)` or
//! the `testing` feature, never in the shipped binary).
//!
//! Every message a client sends is numbered, across all its sockets, from 0 (the family lookup at connect is not
//! counted: faults are armed once connected). A [`Faults`] plan names messages by that number and what happens to
//! them, as the kernel or the socket could make it happen:
//!
//! - [`NetlinkFault::Refuse`]: the kernel answers the message with an error (`EINVAL`, `EEXIST`, `ENOENT`,
//!   `ENOBUFS`...). The message itself is replaced by a harmless `GET_INFO` before it is sent, so the kernel really
//!   does nothing for it, as it would for a refused request; the sequence numbers stay as they were.
//! - [`NetlinkFault::Close`]: the socket closes with this message in flight: it and every later message of its
//!   datagram are sent (the kernel carries them out) but their answers never come; the answers of the earlier
//!   messages of the datagram do. Every later request of the client fails as on a closed connection.
//! - [`NetlinkFault::Overrun`]: the receive buffer overflows (`recvmsg` fails with `ENOBUFS`) after `keep` replies
//!   to this message: its remaining answers are lost, and the client learns it as netlink-proto tells it (an
//!   overrun), which fails every answer of the datagram still open.
//! - [`NetlinkFault::CutDump`]: a dump ends short after `keep` replies: with an early `NLMSG_DONE` (`done`: the
//!   client cannot tell it from a complete dump), or with silence (no `DONE` ever comes). Only dumps are cut.
//!
//! The plan records which faults fired, on which request, for the tests' messages.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use netlink_packet_core::{
    DoneMessage, ErrorMessage, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::GenlMessage;

use super::packet::IpvsMessage;
use super::wire::Wire;

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetlinkFault {
    /// The kernel refuses it with this errno (positive), and does nothing.
    Refuse {
        /// The errno.
        errno: i32,
    },
    /// The socket closes with this message in flight: it and the rest of its datagram are carried out, unanswered.
    Close,
    /// A receive-buffer overrun after `keep` replies to this message: its other answers are lost.
    Overrun {
        /// Replies delivered first.
        keep: usize,
    },
    /// A dump ends after `keep` replies: with an early `DONE` when `done`, else with nothing more.
    CutDump {
        /// Replies delivered first.
        keep: usize,
        /// Whether an early `DONE` ends it (else it never ends).
        done: bool,
    },
}

/// A fault that fired: on which message, and what that message asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The message's number.
    pub index: usize,
    /// The fault.
    pub fault: NetlinkFault,
    /// The request: the IPVS command, `dump` when it was one (`GetDest dump`, `NewService`).
    pub request: String,
}

/// A fault plan shared by the sockets of one client. See the module documentation.
#[derive(Debug, Default)]
pub struct Faults {
    planned: Mutex<BTreeMap<usize, NetlinkFault>>,
    sent: AtomicUsize,
    closed: AtomicBool,
    fired: Mutex<Vec<Fired>>,
}

impl Faults {
    /// A plan that injects nothing: it counts the messages (to size a sweep).
    pub fn none() -> Faults {
        Faults::default()
    }

    /// A plan with one fault, at message `index`.
    pub fn at(index: usize, fault: NetlinkFault) -> Faults {
        let faults = Faults::default();
        faults.add(index, fault);
        faults
    }

    /// Adds a fault at message `index` (replacing one planned there).
    pub fn add(&self, index: usize, fault: NetlinkFault) {
        self.planned.lock().unwrap_or_else(|p| p.into_inner()).insert(index, fault);
    }

    /// Messages sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// The faults that fired, in order.
    pub fn fired(&self) -> Vec<Fired> {
        self.fired.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a [`NetlinkFault::Close`] closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Numbers the datagram's messages and applies the plan to them: the messages to send instead, and what to do
    /// with their answers. `None`: the connection is closed, nothing is sent.
    pub(crate) fn before_send(
        &self,
        mut messages: Vec<NetlinkMessage<Wire>>,
    ) -> Option<(Vec<NetlinkMessage<Wire>>, Batch)> {
        if self.is_closed() {
            return None;
        }
        let base = self.sent.fetch_add(messages.len(), Ordering::SeqCst);
        let planned = self.planned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut batch = Batch { faults: vec![None; messages.len()], dump: vec![false; messages.len()], cut: None };
        for (i, message) in messages.iter_mut().enumerate() {
            let is_dump = message.header.flags & NLM_F_DUMP == NLM_F_DUMP;
            batch.dump[i] = is_dump;
            let Some(fault) = planned.get(&(base + i)).copied() else { continue };
            let request = match &message.payload {
                NetlinkPayload::InnerMessage(Wire::Ipvs(genl)) => {
                    format!("{:?}{}", genl.payload.cmd, if is_dump { " dump" } else { "" })
                }
                other => format!("{other:?}"),
            };
            self.fired.lock().unwrap_or_else(|p| p.into_inner()).push(Fired { index: base + i, fault, request });
            match fault {
                NetlinkFault::Refuse { .. } => {
                    if let NetlinkPayload::InnerMessage(Wire::Ipvs(genl)) = &message.payload {
                        *message = harmless(genl.resolved_family_id());
                    }
                }
                NetlinkFault::Close => {
                    batch.cut = Some(batch.cut.map_or(i, |c| c.min(i)));
                    self.closed.store(true, Ordering::SeqCst);
                }
                NetlinkFault::Overrun { .. } | NetlinkFault::CutDump { .. } => {}
            }
            batch.faults[i] = Some(fault);
        }
        Some((messages, batch))
    }
}

/// `GET_INFO`, acknowledged: what a refused message is replaced with (the kernel only reads for it).
fn harmless(family_id: u16) -> NetlinkMessage<Wire> {
    let mut genl = GenlMessage::from_payload(IpvsMessage::get_info());
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    NetlinkMessage::new(header, NetlinkPayload::InnerMessage(Wire::Ipvs(genl)))
}

/// What to do with the answers of one datagram's messages.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    faults: Vec<Option<NetlinkFault>>,
    /// Whether each message is a dump.
    dump: Vec<bool>,
    /// The first message whose answers never come (the socket closed).
    cut: Option<usize>,
}

impl Batch {
    /// The answers as the faults let them through, for a datagram whose first message got sequence number
    /// `first`.
    pub(crate) fn wrap(self, first: u32, inner: AnswerStream) -> AnswerStream {
        let len = self.faults.len();
        Box::pin(Faulted { inner, first, batch: self, state: vec![MessageState::default(); len], out: VecDeque::new() })
    }
}

/// The answers of a datagram, as `Pending` reads them.
pub(crate) type AnswerStream = Pin<Box<dyn Stream<Item = NetlinkMessage<Wire>> + Send>>;

#[derive(Debug, Clone, Copy, Default)]
struct MessageState {
    replies: usize,
    ended: bool,
    /// Nothing more of this message's answers gets through.
    silenced: bool,
}

struct Faulted {
    inner: AnswerStream,
    first: u32,
    batch: Batch,
    state: Vec<MessageState>,
    out: VecDeque<NetlinkMessage<Wire>>,
}

fn answer(seq: u32, flags: u16, payload: NetlinkPayload<Wire>) -> NetlinkMessage<Wire> {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = flags;
    NetlinkMessage::new(header, payload)
}

impl Faulted {
    /// Whether the socket closed and every answer that came before has been let through.
    fn closed_and_drained(&self) -> bool {
        self.batch.cut.is_some_and(|cut| self.state[..cut].iter().all(|s| s.ended))
    }

    fn take(&mut self, msg: NetlinkMessage<Wire>) {
        let seq = msg.header.sequence_number;
        let index = seq.wrapping_sub(self.first) as usize;
        if index >= self.state.len() {
            // Not of this datagram: the reader reports it.
            self.out.push_back(msg);
            return;
        }
        if self.batch.cut.is_some_and(|cut| index >= cut) {
            return;
        }
        let is_reply = matches!(msg.payload, NetlinkPayload::InnerMessage(_));
        let is_end = matches!(msg.payload, NetlinkPayload::Error(_) | NetlinkPayload::Done(_));
        let state = &mut self.state[index];
        if state.silenced {
            return;
        }
        match self.batch.faults[index] {
            Some(NetlinkFault::Refuse { errno }) => {
                state.silenced = true;
                state.ended = true;
                let mut error = ErrorMessage::default();
                error.code = std::num::NonZeroI32::new(-errno.abs());
                self.out.push_back(answer(seq, 0, NetlinkPayload::Error(error)));
                return;
            }
            Some(NetlinkFault::Overrun { keep }) if !(is_reply && state.replies < keep) => {
                state.silenced = true;
                self.out.push_back(answer(seq, 0, NetlinkPayload::Overrun(Vec::new())));
                return;
            }
            Some(NetlinkFault::CutDump { keep, done })
                if self.batch.dump[index] && !(is_reply && state.replies < keep) =>
            {
                state.silenced = true;
                if done {
                    state.ended = true;
                    self.out.push_back(answer(
                        seq,
                        netlink_packet_core::NLM_F_MULTIPART,
                        NetlinkPayload::Done(DoneMessage::default()),
                    ));
                }
                return;
            }
            _ => {}
        }
        state.replies += usize::from(is_reply);
        state.ended |= is_end;
        self.out.push_back(msg);
    }
}

impl Stream for Faulted {
    type Item = NetlinkMessage<Wire>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(msg) = self.out.pop_front() {
                return Poll::Ready(Some(msg));
            }
            if self.closed_and_drained() {
                return Poll::Ready(None);
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(msg)) => self.take(msg),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;

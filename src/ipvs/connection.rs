//! One netlink socket to the kernel: its options, its netlink-proto connection task, and the matching of
//! answers to the messages of a batch by sequence number.

use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use netlink_packet_core::{DecodeError, NLM_F_ACK_TLVS, NLM_F_CAPPED, NetlinkMessage, NetlinkPayload, NlasIterator};
use netlink_proto::ConnectionHandle;
use netlink_proto::sys::{AsyncSocket, SocketAddr, TokioSocket, protocols::NETLINK_GENERIC};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::IpvsError;
use super::wire::{CaptureCodec, Wire};

/// Receive-buffer space one queued acknowledgement takes, kernel bookkeeping included (an ack is ~36 bytes of
/// data in an skb whose true size is ~700 bytes); rounded up so the estimate errs on the safe side.
const ACK_TRUESIZE: usize = 1024;

/// Receive-buffer space one dump reply datagram may take: the kernel allocates up to 32 KiB for it whatever
/// it holds.
const DUMP_TRUESIZE: usize = 40 << 10;

/// What `netlink_sendmsg` keeps of the send buffer: larger datagrams are refused with `EMSGSIZE`, and
/// netlink-proto closes the connection on a failed send.
const SNDBUF_OVERHEAD: usize = 32;

/// `NLMSGERR_ATTR_MSG`: the kernel's extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Length of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// A configured socket and its buffer sizes.
pub(crate) struct NewSocket {
    pub(crate) socket: TokioSocket,
    /// Receive buffer, bytes.
    pub(crate) rcvbuf: usize,
    /// Send buffer, bytes: the kernel refuses datagrams larger than this less 32 bytes (`EMSGSIZE`).
    pub(crate) sndbuf: usize,
}

/// Creates a socket for IPVS in the calling thread's network namespace and configures it. Must run inside the
/// tokio runtime (the socket registers with its reactor).
pub(crate) fn new_socket(receive_buffer: usize) -> Result<NewSocket, IpvsError> {
    let transport = |context: &str| {
        let context = context.to_owned();
        move |source| IpvsError::Transport { context, source }
    };
    let mut socket = TokioSocket::new(NETLINK_GENERIC).map_err(transport("create a generic netlink socket"))?;
    let s = socket.socket_mut();
    s.bind_auto().map_err(transport("bind"))?;
    // Errors then echo only the request's header, not the whole request: smaller, so more fit the buffer.
    if let Err(e) = s.set_cap_ack(true) {
        tracing::debug!(error = %e, "NETLINK_CAP_ACK unavailable");
    }
    // Lets the kernel explain an error in words (kept in the error's message).
    if let Err(e) = s.set_ext_ack(true) {
        tracing::debug!(error = %e, "NETLINK_EXT_ACK unavailable");
    }
    // A batch is processed whole inside one sendmsg, so all its acks are queued before any is read: the buffer
    // must hold them, or the kernel drops them (ENOBUFS). FORCE passes rmem_max and needs CAP_NET_ADMIN, which
    // IPVS needs anyway; without it the plain option is capped by rmem_max.
    if setsockopt(&*s, sockopt::RcvBufForce, &receive_buffer).is_err()
        && let Err(e) = setsockopt(&*s, sockopt::RcvBuf, &receive_buffer)
    {
        tracing::debug!(error = %e, "cannot enlarge the netlink receive buffer");
    }
    let read_size = |what: &str, size: nix::Result<usize>| {
        size.map_err(|e| IpvsError::Transport { context: format!("read the {what} size"), source: e.into() })
    };
    let rcvbuf = read_size("receive buffer", getsockopt(&*s, sockopt::RcvBuf))?;
    let sndbuf = read_size("send buffer", getsockopt(&*s, sockopt::SndBuf))?;
    Ok(NewSocket { socket, rcvbuf, sndbuf })
}

/// A running connection: the netlink-proto task for one socket.
pub(crate) struct Conn {
    handle: ConnectionHandle<Wire>,
    /// The sequence number netlink-proto gave the last message sent. netlink-proto numbers the messages of this
    /// connection 1, 2, 3... in the order requests reach it; every request goes through [`Conn::send`], which
    /// keeps this copy in step under a lock, so the number of each message is known when it is sent.
    last_seq: Mutex<u32>,
    overruns: watch::Receiver<u64>,
    task: JoinHandle<()>,
    ack_capacity: usize,
    dump_capacity: usize,
    max_datagram: usize,
    /// The kernel runs one dump at a time per socket: holders of this lock may start one.
    pub(crate) dump_lock: tokio::sync::Mutex<()>,
    /// Injected faults (tests only, `ipvs::faults`).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) faults: Option<std::sync::Arc<super::faults::Faults>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The task would otherwise live on: it waits on its unsolicited-message channel, which it owns.
        self.task.abort();
    }
}

impl Conn {
    /// Starts the connection task for a socket (inside the runtime).
    pub(crate) fn start(NewSocket { socket, rcvbuf, sndbuf }: NewSocket) -> Conn {
        let (mut connection, handle, mut unsolicited) =
            netlink_proto::from_socket_with_codec::<Wire, TokioSocket, CaptureCodec>(socket);
        // Acks and DONE are how a request ends: without them a connection that closes mid-dump would look
        // like a complete dump.
        connection.set_forward_ack(true);
        connection.set_forward_done(true);
        let (overrun_tx, overruns) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let watch_overruns = async move {
                while let Some((msg, _)) = unsolicited.next().await {
                    if let NetlinkPayload::Overrun(_) = msg.payload {
                        tracing::warn!("netlink receive buffer overrun: kernel answers were lost");
                        overrun_tx.send_modify(|n| *n += 1);
                    } else {
                        tracing::debug!(?msg, "unsolicited netlink message ignored");
                    }
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                () = connection => tracing::debug!("netlink connection ended"),
                () = watch_overruns => {}
            }
        });
        Conn {
            handle,
            last_seq: Mutex::new(0),
            overruns,
            task,
            ack_capacity: (rcvbuf / ACK_TRUESIZE).max(1),
            // Half, because the kernel stops a dump once the buffer is full, but only resumes below half.
            dump_capacity: (rcvbuf / 2 / DUMP_TRUESIZE).max(1),
            max_datagram: sndbuf.saturating_sub(SNDBUF_OVERHEAD).max(1),
            dump_lock: tokio::sync::Mutex::new(()),
            #[cfg(any(test, feature = "testing"))]
            faults: None,
        }
    }

    /// How many acknowledgements the receive buffer holds.
    pub(crate) fn ack_capacity(&self) -> usize {
        self.ack_capacity
    }

    /// How many dumps' first reply datagrams the receive buffer holds.
    pub(crate) fn dump_capacity(&self) -> usize {
        self.dump_capacity
    }

    /// The largest datagram the kernel accepts on this socket.
    pub(crate) fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Whether the connection task has ended (the socket failed): every request now fails.
    pub(crate) fn is_closed(&self) -> bool {
        #[cfg(any(test, feature = "testing"))]
        if self.faults.as_ref().is_some_and(|f| f.is_closed()) {
            return true;
        }
        self.task.is_finished()
    }

    /// Sends `messages` as one datagram (the kernel processes them in order). Returns `None` when the
    /// connection is gone.
    pub(crate) fn send(&self, messages: Vec<NetlinkMessage<Wire>>) -> Option<Pending> {
        #[cfg(any(test, feature = "testing"))]
        let (messages, faulted) = match &self.faults {
            Some(faults) => faults.before_send(messages).map(|(messages, batch)| (messages, Some(batch)))?,
            None => (messages, None),
        };
        let len = u32::try_from(messages.len()).ok()?;
        let mut overruns = self.overruns.clone();
        overruns.borrow_and_update();
        let mut last = self.last_seq.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stream = self.handle.request_batch(messages, SocketAddr::new(0, 0)).ok()?;
        let first = last.wrapping_add(1);
        *last = last.wrapping_add(len);
        drop(last);
        let stream: Pin<Box<dyn Stream<Item = NetlinkMessage<Wire>> + Send>> = Box::pin(stream);
        #[cfg(any(test, feature = "testing"))]
        let stream = match faulted {
            Some(batch) => batch.wrap(first, stream),
            None => stream,
        };
        Some(Pending { first, len, stream, overruns })
    }
}

/// The answers still to come for a batch.
pub(crate) struct Pending {
    first: u32,
    len: u32,
    stream: Pin<Box<dyn Stream<Item = NetlinkMessage<Wire>> + Send>>,
    overruns: watch::Receiver<u64>,
}

/// How one message of a batch ended, when not with success.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The kernel refused it.
    Kernel {
        /// Positive errno.
        errno: i32,
        /// Extended-ack text.
        message: Option<String>,
    },
    /// A reply did not decode.
    Decode(DecodeError),
    /// The connection ended first.
    Closed,
    /// The answer was lost to a receive-buffer overrun.
    Lost,
    /// Nothing arrived for this long.
    Timeout(Duration),
    /// An answer carried a sequence number of no message of the batch.
    Stray(u32),
}

/// The answer to one message: the replies it got and how it ended.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// Replies (for gets and dumps), in order.
    pub(crate) replies: Vec<Wire>,
    /// `None` until the message ended; then success or why not.
    pub(crate) result: Option<Result<(), Failure>>,
    decode_error: Option<DecodeError>,
}

impl Answer {
    fn end(&mut self, result: Result<(), Failure>) {
        self.result = Some(match (result, self.decode_error.take()) {
            // A reply that did not decode spoils an otherwise successful answer.
            (Ok(()), Some(e)) => Err(Failure::Decode(e)),
            (result, _) => result,
        });
    }
}

/// The kernel's extended-ack message among `tlvs`, if the flags say there are any.
fn ext_ack_message(flags: u16, tlvs: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    NlasIterator::new(tlvs).filter_map(Result::ok).find(|nla| nla.kind() == NLMSGERR_ATTR_MSG).map(|nla| {
        let v = nla.value();
        let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
        String::from_utf8_lossy(&v[..end]).into_owned()
    })
}

/// The TLVs of an `NLMSG_ERROR` payload after its code: they follow the echoed request, which is only its
/// header when the kernel capped it.
fn error_tlvs(flags: u16, echoed: &[u8]) -> &[u8] {
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        echoed
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| (u32::from_ne_bytes(b) as usize + 3) & !3)
            .unwrap_or(echoed.len())
    };
    echoed.get(skip..).unwrap_or(&[])
}

impl Pending {
    /// Waits for every message of the batch to end. `timeout` bounds the silence between two answers.
    pub(crate) async fn collect(mut self, timeout: Duration) -> Vec<Answer> {
        let mut answers: Vec<Answer> = (0..self.len).map(|_| Answer::default()).collect();
        let mut open = answers.len();
        while open > 0 {
            let event = tokio::select! {
                biased;
                msg = self.stream.next() => msg.ok_or(Failure::Closed),
                changed = self.overruns.changed() => Err(if changed.is_ok() { Failure::Lost } else { Failure::Closed }),
                () = tokio::time::sleep(timeout) => Err(Failure::Timeout(timeout)),
            };
            let msg = match event {
                // netlink-proto reports a receive-buffer overrun on the unsolicited channel (watched above); one in
                // the answers themselves (the fault layer's, `ipvs::faults`) means the same loss.
                Ok(msg) if matches!(msg.payload, NetlinkPayload::Overrun(_)) => {
                    fail_open(&mut answers, &Failure::Lost);
                    break;
                }
                Ok(msg) => msg,
                Err(failure) => {
                    fail_open(&mut answers, &failure);
                    break;
                }
            };
            let seq = msg.header.sequence_number;
            let index = seq.wrapping_sub(self.first);
            let Some(answer) = answers.get_mut(index as usize).filter(|_| index < self.len) else {
                // Answers can no longer be told apart: fail the batch rather than misattribute one.
                tracing::error!(seq, first = self.first, len = self.len, "netlink answer for an unknown sequence");
                fail_open(&mut answers, &Failure::Stray(seq));
                break;
            };
            if answer.result.is_some() {
                continue;
            }
            let flags = msg.header.flags;
            let ended = match msg.payload {
                NetlinkPayload::InnerMessage(Wire::Malformed(e)) => {
                    answer.decode_error.get_or_insert(e);
                    None
                }
                NetlinkPayload::InnerMessage(wire) => {
                    answer.replies.push(wire);
                    None
                }
                NetlinkPayload::Error(e) => Some(match e.code {
                    None => Ok(()),
                    Some(code) => Err(Failure::Kernel {
                        errno: code.get().saturating_abs(),
                        message: ext_ack_message(flags, error_tlvs(flags, &e.header)),
                    }),
                }),
                NetlinkPayload::Done(d) if d.code == 0 => Some(Ok(())),
                NetlinkPayload::Done(d) => Some(Err(Failure::Kernel {
                    errno: d.code.saturating_abs(),
                    message: ext_ack_message(flags, &d.extended_ack),
                })),
                _ => None,
            };
            if let Some(result) = ended {
                answer.end(result);
                open -= 1;
            }
        }
        answers
    }
}

/// A batch answered by `messages` (in order) from a connection that then closes: the read's decode path fed with
/// bytes instead of a socket, for the fuzz target `netlink_decoder` (`ipvs::read::replay_read`).
#[cfg(feature = "testing")]
impl Pending {
    pub(crate) fn replayed(first: u32, len: u32, messages: Vec<NetlinkMessage<Wire>>) -> Pending {
        // The overrun sender is dropped at once: the watch then reads as closed, like the socket after its last
        // message (the stream is polled first, so every message is delivered before that).
        let (_, overruns) = watch::channel(0);
        Pending { first, len, stream: Box::pin(futures::stream::iter(messages)), overruns }
    }
}

/// Ends every open answer with `failure`.
fn fail_open(answers: &mut [Answer], failure: &Failure) {
    for answer in answers.iter_mut().filter(|a| a.result.is_none()) {
        let copy = match failure {
            Failure::Kernel { errno, message } => Failure::Kernel { errno: *errno, message: message.clone() },
            Failure::Decode(e) => Failure::Decode(DecodeError::from(e.to_string())),
            Failure::Closed => Failure::Closed,
            Failure::Lost => Failure::Lost,
            Failure::Timeout(t) => Failure::Timeout(*t),
            Failure::Stray(s) => Failure::Stray(*s),
        };
        answer.end(Err(copy));
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use futures::channel::mpsc;
    use netlink_packet_core::{DoneMessage, ErrorMessage, NLM_F_MULTIPART, NetlinkHeader};
    use netlink_packet_generic::GenlMessage;

    use super::*;
    use crate::ipvs::packet::IpvsMessage;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A batch of `len` messages numbered from `first`, fed by hand, as if from the kernel.
    fn pending(first: u32, len: u32) -> (Pending, mpsc::UnboundedSender<NetlinkMessage<Wire>>, watch::Sender<u64>) {
        let (tx, rx) = mpsc::unbounded();
        let (overrun_tx, overruns) = watch::channel(0);
        (Pending { first, len, stream: Box::pin(rx), overruns }, tx, overrun_tx)
    }

    fn msg(seq: u32, flags: u16, payload: NetlinkPayload<Wire>) -> NetlinkMessage<Wire> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.flags = flags;
        NetlinkMessage::new(header, payload)
    }

    fn ack(seq: u32, errno: i32) -> NetlinkMessage<Wire> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-errno);
        msg(seq, NLM_F_CAPPED, NetlinkPayload::Error(e))
    }

    fn done(seq: u32, code: i32) -> NetlinkMessage<Wire> {
        let mut d = DoneMessage::default();
        d.code = code;
        msg(seq, NLM_F_MULTIPART, NetlinkPayload::Done(d))
    }

    fn reply(seq: u32) -> NetlinkMessage<Wire> {
        let genl = GenlMessage::from_payload(IpvsMessage::flush());
        msg(seq, NLM_F_MULTIPART, NetlinkPayload::InnerMessage(Wire::Ipvs(genl)))
    }

    fn errno_of(answer: &Answer) -> Option<i32> {
        match answer.result {
            Some(Err(Failure::Kernel { errno, .. })) => Some(errno),
            _ => None,
        }
    }

    #[tokio::test]
    async fn answers_are_matched_by_sequence_number_whatever_their_order() {
        let (p, tx, _o) = pending(41, 3);
        for m in [ack(43, 17), reply(42), ack(41, 0), done(42, 0)] {
            tx.unbounded_send(m).unwrap();
        }
        let answers = p.collect(TIMEOUT).await;
        assert!(matches!(answers[0].result, Some(Ok(()))));
        assert!(matches!(answers[1].result, Some(Ok(()))));
        assert_eq!(answers[1].replies.len(), 1);
        assert_eq!(errno_of(&answers[2]), Some(17));
    }

    #[tokio::test]
    async fn sequence_numbers_wrap() {
        let (p, tx, _o) = pending(u32::MAX, 2);
        tx.unbounded_send(ack(0, 0)).unwrap();
        tx.unbounded_send(ack(u32::MAX, 0)).unwrap();
        assert!(p.collect(TIMEOUT).await.iter().all(|a| matches!(a.result, Some(Ok(())))));
    }

    #[tokio::test]
    async fn a_dump_that_fails_midway_reports_the_errno_of_its_done() {
        let (p, tx, _o) = pending(1, 1);
        tx.unbounded_send(reply(1)).unwrap();
        tx.unbounded_send(done(1, -90)).unwrap();
        assert_eq!(errno_of(&p.collect(TIMEOUT).await[0]), Some(90));
    }

    #[tokio::test]
    async fn a_malformed_reply_spoils_a_successful_dump() {
        let (p, tx, _o) = pending(1, 1);
        let bad = Wire::Malformed(DecodeError::from("IPVS_SVC_ATTR_PORT: expected 2 bytes, got 4"));
        tx.unbounded_send(msg(1, NLM_F_MULTIPART, NetlinkPayload::InnerMessage(bad))).unwrap();
        tx.unbounded_send(reply(1)).unwrap();
        tx.unbounded_send(done(1, 0)).unwrap();
        let answers = p.collect(TIMEOUT).await;
        let Some(Err(Failure::Decode(e))) = &answers[0].result else { panic!("{answers:?}") };
        assert!(e.to_string().contains("IPVS_SVC_ATTR_PORT"));
    }

    #[tokio::test]
    async fn a_closed_connection_fails_what_is_still_open() {
        let (p, tx, _o) = pending(1, 2);
        tx.unbounded_send(ack(1, 0)).unwrap();
        drop(tx);
        let answers = p.collect(TIMEOUT).await;
        assert!(matches!(answers[0].result, Some(Ok(()))));
        assert!(matches!(answers[1].result, Some(Err(Failure::Closed))));
    }

    #[tokio::test]
    async fn an_overrun_fails_what_is_still_open_as_lost() {
        let (p, tx, overrun) = pending(1, 2);
        tx.unbounded_send(ack(2, 0)).unwrap();
        let collecting = tokio::spawn(p.collect(TIMEOUT));
        tokio::task::yield_now().await;
        overrun.send_modify(|n| *n += 1);
        let answers = collecting.await.unwrap();
        assert!(matches!(answers[0].result, Some(Err(Failure::Lost))));
        assert!(matches!(answers[1].result, Some(Ok(()))));
        drop(tx);
    }

    #[tokio::test]
    async fn an_overrun_among_the_answers_fails_what_is_still_open_as_lost() {
        let (p, tx, _o) = pending(1, 2);
        tx.unbounded_send(ack(1, 0)).unwrap();
        tx.unbounded_send(msg(2, 0, NetlinkPayload::Overrun(Vec::new()))).unwrap();
        let answers = p.collect(TIMEOUT).await;
        assert!(matches!(answers[0].result, Some(Ok(()))));
        assert!(matches!(answers[1].result, Some(Err(Failure::Lost))));
    }

    #[tokio::test]
    async fn an_answer_for_another_batch_fails_the_batch_instead_of_being_misattributed() {
        let (p, tx, _o) = pending(10, 2);
        tx.unbounded_send(ack(12, 0)).unwrap();
        let answers = p.collect(TIMEOUT).await;
        assert!(answers.iter().all(|a| matches!(a.result, Some(Err(Failure::Stray(12))))));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out() {
        let (p, _tx, _o) = pending(1, 1);
        let answers = p.collect(TIMEOUT).await;
        assert!(matches!(answers[0].result, Some(Err(Failure::Timeout(t))) if t == TIMEOUT));
    }

    #[test]
    fn extended_ack_text_is_found_after_a_capped_or_full_echo() {
        // echoed nlmsghdr (16 bytes, nlmsg_len 20), 4 bytes of original payload, then NLMSGERR_ATTR_MSG "bad".
        let mut echoed = vec![20u8, 0, 0, 0];
        echoed.extend([0; 12]);
        let payload = [9u8, 9, 9, 9];
        let tlv = [8u8, 0, 1, 0, b'b', b'a', b'd', 0];
        let full: Vec<u8> = [&echoed[..], &payload, &tlv].concat();
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, error_tlvs(NLM_F_ACK_TLVS, &full)).as_deref(), Some("bad"));
        let capped: Vec<u8> = [&echoed[..], &tlv].concat();
        let flags = NLM_F_ACK_TLVS | NLM_F_CAPPED;
        assert_eq!(ext_ack_message(flags, error_tlvs(flags, &capped)).as_deref(), Some("bad"));
        assert_eq!(ext_ack_message(0, error_tlvs(0, &full)), None, "no TLVs without NLM_F_ACK_TLVS");
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, error_tlvs(NLM_F_ACK_TLVS, &[1, 2])), None);
    }
}

//! [`Ipvs::apply`]: many operations, batched into few datagrams, several batches in flight.
//!
//! The kernel processes every message of a datagram in order, answering each with an acknowledgement or an
//! error, and processes the datagrams of one socket in the order they were sent. So the operations go out on
//! one socket, in order, without waiting for answers between them (an operation that depends on an earlier
//! one, like a destination after its service, can follow it in the same batch), and the answers are matched
//! back to operations by sequence number. The number of unanswered operations is bounded by what the socket's
//! receive buffer can hold, since a batch's acknowledgements all queue up before any is read.

use std::ops::Range;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};

use super::client::{Ipvs, answer_result};
use super::packet::IpvsMessage;
use super::{IpvsError, Request};
use crate::model::Op;

/// Splits messages of `sizes` bytes, in order, into batches of at most `max_ops` messages and `max_bytes` bytes
/// (a message larger than `max_bytes` goes alone).
pub(super) fn plan_batches(sizes: &[usize], max_ops: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let max_ops = max_ops.max(1);
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count == max_ops || bytes + size > max_bytes) {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

impl Ipvs {
    /// Carries out `ops` in order and returns one result per operation, in the same order.
    ///
    /// Operations are sent in batches of up to [`ConnectOptions::batch_max_ops`](super::ConnectOptions) per
    /// datagram without waiting for the previous answers; a failed operation does not stop the later ones (an
    /// operation that depended on it fails in turn, e.g. [`IpvsError::NoSuchService`] for a destination whose
    /// service could not be added). An error for which [`IpvsError::outcome_unknown`] holds means the answer
    /// never came: the operation may or may not have been applied.
    pub async fn apply(&self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        let conn = &self.inner.conns[0];
        let options = &self.inner.options;
        let capacity = conn.ack_capacity();
        let max_ops = options.batch_max_ops.clamp(1, capacity.max(1));
        let window = capacity.min(options.batches_in_flight.max(1) * max_ops).max(max_ops);
        let timeout = options.reply_timeout;

        let messages: Vec<IpvsMessage> = ops.iter().map(IpvsMessage::from_op).collect();
        let cmds: Vec<_> = messages.iter().map(|m| m.cmd).collect();
        let framed: Vec<_> = messages.into_iter().map(|m| self.netlink(m, NLM_F_REQUEST | NLM_F_ACK)).collect();
        let sizes: Vec<usize> = framed.iter().map(|m| m.buffer_len()).collect();
        let batches = plan_batches(&sizes, max_ops, options.batch_max_bytes.min(conn.max_datagram()));

        let mut results: Vec<Option<Result<(), IpvsError>>> = (0..ops.len()).map(|_| None).collect();
        let mut record = |range: Range<usize>, answers: Vec<_>| {
            for (i, answer) in range.zip(answers) {
                results[i] = Some(answer_result(answer, cmds[i], Request::from_op(&ops[i])).map(drop));
            }
        };
        let mut framed = framed.into_iter();
        let mut in_flight = FuturesOrdered::new();
        let mut in_flight_ops = 0;
        for range in batches {
            while in_flight_ops + range.len() > window {
                let Some((done, answers)) = in_flight.next().await else { break };
                in_flight_ops -= Range::len(&done);
                record(done, answers);
            }
            let batch: Vec<_> = framed.by_ref().take(range.len()).collect();
            // The send happens here, synchronously and in order; only the waiting is concurrent.
            // When nothing could be sent, the results stay empty: reported as a closed connection below.
            if let Some(pending) = conn.send(batch) {
                in_flight_ops += range.len();
                in_flight.push_back(async move { (range, pending.collect(timeout).await) });
            }
        }
        while let Some((done, answers)) = in_flight.next().await {
            record(done, answers);
        }
        results
            .into_iter()
            .zip(ops)
            .map(|(result, op)| {
                result.unwrap_or_else(|| Err(IpvsError::ConnectionClosed { request: Request::from_op(op) }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn batches_cover_every_message_in_order_within_the_limits(
            sizes in proptest::collection::vec(1usize..300, 0..200),
            max_ops in 1usize..40,
            max_bytes in 1usize..2000,
        ) {
            let batches = plan_batches(&sizes, max_ops, max_bytes);
            let mut next = 0;
            for b in &batches {
                prop_assert_eq!(b.start, next, "contiguous, in order");
                prop_assert!(!b.is_empty());
                prop_assert!(b.len() <= max_ops);
                let bytes: usize = sizes[b.clone()].iter().sum();
                prop_assert!(bytes <= max_bytes || b.len() == 1, "only a lone message may exceed the byte limit");
                next = b.end;
            }
            prop_assert_eq!(next, sizes.len());
            // Greedy: a batch ends only because the next message would not fit.
            for pair in batches.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let bytes: usize = sizes[a.clone()].iter().sum();
                prop_assert!(a.len() == max_ops || bytes + sizes[b.start] > max_bytes);
            }
        }
    }
}

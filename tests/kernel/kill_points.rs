//! kill -9 at random points of a large apply and of a run pass: the next start converges (issue 21).

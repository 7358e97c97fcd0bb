//! Injected netlink and state-file faults against the real kernel: a pass aborts without a delete, the next converges (issue 21).

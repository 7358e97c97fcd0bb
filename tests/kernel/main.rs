//! Tests against the real kernel's IPVS. They only build with `--features vm-tests` and run inside the VM that
//! `tests/vm/run` boots (Debian's stock kernel, IPVS modules loaded); `tests/all` does both. Each test works in a
//! fresh network namespace, so tests run in parallel and never see each other's tables.

#![cfg(feature = "vm-tests")]

mod agent;
mod bad_input;
mod cleanup;
mod client;
mod client_matrix;
mod coexistence;
mod director;
mod engine;
mod faults;
mod health;
mod kill_points;
mod migration;
mod support;
mod vip_traffic;
mod vips;

//! The pool CRD's CEL rules, evaluated with kube's CEL evaluator (what the API server refuses at `kubectl apply`),
//! and their agreement with the conversion admission uses.

use serde_json::{Value, json};

use super::*;
use crate::source::admission::Pool;

fn refusals(spec: &Value) -> Vec<String> {
    match VirtualServicePoolSpec::validate_cel(spec, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.to_string().lines().map(str::to_owned).collect(),
    }
}

/// Accepted by CEL, and converted by admission without a problem.
fn accepted(spec: Value) {
    assert_eq!(refusals(&spec), Vec::<String>::new(), "{spec}");
    let parsed: VirtualServicePoolSpec = serde_json::from_value(spec.clone()).unwrap();
    let (_, problems) = Pool::from_resource(&VirtualServicePool::new("p", parsed));
    assert!(problems.is_empty(), "CEL accepts what admission cannot read: {spec} {problems:?}");
}

/// Refused by CEL with `message`, and not readable by admission either.
fn refused(spec: Value, message: &str) {
    let found = refusals(&spec);
    assert!(found.iter().any(|m| m.contains(message)), "{spec}: expected {message:?}, got {found:?}");
    let parsed: VirtualServicePoolSpec = serde_json::from_value(spec.clone()).unwrap();
    let (_, problems) = Pool::from_resource(&VirtualServicePool::new("p", parsed));
    assert!(!problems.is_empty(), "admission reads what CEL refuses: {spec}");
}

#[test]
fn good_pools_pass() {
    accepted(json!({"addresses": ["192.0.2.0/28", "2001:db8:1::/120"], "namespaces": ["team-a"]}));
    accepted(json!({"addresses": ["192.0.2.10/32"], "fwmarks": [{"from": 100, "to": 199}], "namespaceSelector": {}}));
    accepted(json!({"addresses": ["192.0.2.0/24"], "backendCIDRs": ["10.0.0.0/8", "fd00::/8"]}));
}

#[test]
fn bad_cidrs_are_refused() {
    let message = "every address must be a CIDR";
    refused(json!({"addresses": ["192.0.2.999/28"]}), message);
    refused(json!({"addresses": ["192.0.2.10"]}), message);
    refused(json!({"addresses": ["192.0.2.0/33"]}), message);
    refused(json!({"addresses": ["::ffff:192.0.2.0/120"]}), message);
    refused(json!({"addresses": ["192.0.2.0/24"], "backendCIDRs": ["10.0.0.0/x"]}), "every backendCIDRs entry");
}

#[test]
fn a_fwmark_range_runs_upwards() {
    refused(json!({"addresses": ["192.0.2.0/24"], "fwmarks": [{"from": 200, "to": 100}]}), "from must not be greater");
}

//! Bad manifests beside valid neighbours, applied to the real kernel: each bad document costs only itself (issue 21).
//!
//! A subset of the host corpus (`tests/fixtures/bad-input/`, checked with `validate` by `tests/bad_input.rs`), each
//! applied with `ipvs-reconciler apply` in a fresh namespace that already holds a foreign service (made by
//! ipvsadm): the valid neighbours are programmed exactly (read back with `ipvsadm -Sn`), the bad document is
//! reported with its place and field, the exit code is `apply`'s (1 when any object is invalid), the bad
//! document's virtual address is not bound, the foreign service is left as it was, and a second pass has nothing to
//! do.

use std::path::Path;

use crate::support::{Netns, Workdir, sorted};

/// The foreign service, as `ipvsadm -Sn` lists it.
const FOREIGN: [&str; 2] = ["-A -t 192.0.2.200:80 -s rr", "-a -t 192.0.2.200:80 -r 10.0.0.200:80 -m -w 1"];

/// The sandwich neighbours `good-before` and `good-after`, as `ipvsadm -Sn` lists them.
const NEIGHBOURS: [&str; 7] = [
    "-A -t 192.0.2.1:80 -s wlc",
    "-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 1",
    "-a -t 192.0.2.1:80 -r 10.0.0.2:8080 -m -w 1",
    "-A -t 192.0.2.2:80 -s wlc",
    "-a -t 192.0.2.2:80 -r 10.0.0.3:8080 -m -w 1",
    "-a -t 192.0.2.2:80 -r 10.0.0.4:8080 -m -w 1",
    "-a -t 192.0.2.2:80 -r 10.0.0.5:8080 -m -w 1",
];

/// Applies the corpus file `fixture` (copied into a fresh manifest directory) beside a foreign service; checks the
/// exit code, that a stderr line holds every part of each of `reported`, and that the kernel then holds exactly
/// the foreign service and `programmed`, with only `vips` bound on ipvs0 (the bad document's address is not).
#[track_caller]
fn apply_case(fixture: &str, exit: i32, reported: &[&[&str]], programmed: &[&str], vips: &[&str], absent_vip: &str) {
    let ns = Netns::new("bad-input");
    let work = Workdir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-input").join(fixture);
    let name = source.file_name().unwrap().to_str().unwrap();
    std::fs::copy(&source, work.manifests().join(name)).expect("copy the fixture");
    ns.ipvsadm(&["-A", "-t", "192.0.2.200:80", "-s", "rr"]);
    ns.ipvsadm(&["-a", "-t", "192.0.2.200:80", "-r", "10.0.0.200:80", "-m", "-w", "1"]);

    let apply = work.apply(&ns);
    apply.expect_code(exit);
    assert!(!apply.stderr.contains("panicked"), "{apply}");
    for parts in reported {
        assert!(
            apply.stderr.lines().any(|line| parts.iter().all(|part| line.contains(part))),
            "no stderr line holds {parts:?}\n{apply}"
        );
    }
    let mut expected: Vec<&str> = FOREIGN.to_vec();
    expected.extend_from_slice(programmed);
    assert_eq!(ns.saved_rules(), sorted(&expected), "the table after apply\n{apply}");

    let bound = ns.addresses_of("ipvs0");
    for vip in vips {
        assert!(bound.contains(&format!(" {vip}/32 ")), "{vip} not bound on ipvs0:\n{bound}\n{apply}");
    }
    assert!(!bound.contains(&format!(" {absent_vip}/")), "the bad document's {absent_vip} is bound:\n{bound}");

    // Nothing left to do: the bad document plans nothing either (its service is not in the kernel to delete).
    let plan = work.plan(&ns);
    assert!(plan.op_lines().is_empty(), "a second pass would change the table\n{plan}");
    assert_eq!(ns.saved_rules(), sorted(&expected), "plan changed the table");
}

#[test]
fn a_type_error_and_a_range_error_are_both_reported_and_the_neighbours_programmed() {
    apply_case(
        "types/weight-string.yaml",
        1,
        &[
            &["weight-string.yaml#1 (default/bad): spec.backends[0].weight: ", "expected an integer"],
            &["weight-string.yaml#1 (default/bad): spec.port: ", "out of range"],
        ],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn an_integer_beyond_64_bits_costs_its_document_only() {
    apply_case(
        "numbers/weight-beyond-64-bits.yaml",
        1,
        &[&["weight-beyond-64-bits.yaml#1 (default/bad): spec.backends[0].weight: ", "out of range"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn a_duplicate_key_costs_its_document_only() {
    apply_case(
        "duplicates/key-in-spec.yaml",
        1,
        &[&["key-in-spec.yaml#1", "duplicate", "line 19"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn a_syntax_error_costs_its_document_only() {
    apply_case(
        "syntax/unclosed-flow-mapping.yaml",
        1,
        &[&["unclosed-flow-mapping.yaml#1", "invalid YAML: ", "line 16"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn a_billion_laughs_costs_its_document_only() {
    apply_case(
        "bombs/billion-laughs.yaml",
        1,
        &[&["billion-laughs.yaml#1"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn a_nul_byte_costs_its_document_only() {
    apply_case(
        "bytes/nul-in-a-document.yaml",
        1,
        &[&["nul-in-a-document.yaml#1"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn a_document_without_a_name_is_refused() {
    apply_case(
        "identity/no-metadata.yaml",
        1,
        &[&["no-metadata.yaml#1: metadata.name: ", "required"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

#[test]
fn the_metadata_address_is_never_a_virtual_address() {
    apply_case(
        "addresses/vip-link-local-metadata.yaml",
        1,
        &[&["vip-link-local-metadata.yaml#1 (default/bad): spec.address: ", "169.254.169.254 is link-local"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "169.254.169.254",
    );
}

#[test]
fn a_byte_order_mark_is_accepted_and_every_document_programmed() {
    let mut programmed = NEIGHBOURS.to_vec();
    programmed.push("-A -t 192.0.2.9:80 -s wlc");
    apply_case(
        "bom/file-start-before-a-document.yaml",
        0,
        &[],
        &programmed,
        &["192.0.2.1", "192.0.2.2", "192.0.2.9"],
        "192.0.2.99",
    );
}

#[test]
fn of_two_objects_claiming_one_service_the_older_is_programmed() {
    // A conflict is reported, not a failure of the pass: apply exits 0 (validate, a check, exits 1).
    apply_case(
        "duplicates/conflict-same-service.yaml",
        0,
        &[&["conflict: ", "conflict-same-service.yaml#1 (default/bad)", "#0 (default/good-before)"]],
        &NEIGHBOURS,
        &["192.0.2.1", "192.0.2.2"],
        "192.0.2.9",
    );
}

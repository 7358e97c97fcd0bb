//! The bad-input corpus (issue 21): malformed and hostile manifests, each beside valid neighbours, through the real
//! binary's `ipvs-reconciler validate -f CASE` (`--kubernetes` for VirtualServicePools, which only that mode reads).
//!
//! The cases are the files and directories under `tests/fixtures/bad-input/` (each file's first comment says what
//! it holds and what is expected), plus a few generated here because they are 100 kB long. Most files are a
//! sandwich: a valid neighbour (`#0`, `good-before`, 2 backends), the bad document (`#1`, named `bad`), another
//! valid neighbour (`#2`, `good-after`, 3 backends); directory cases put a neighbour in another file.
//!
//! Every case asserts:
//! - the exit code (`validate`: 0 clean, 1 any error or conflict);
//! - every problem line (`error: ...`, `conflict: ...`), each naming the object (`file#doc (namespace/name)`) and
//!   the field, and no other problem line (but the consequences marked [`OPTIONAL`]): in particular none blames a
//!   neighbour (no object named `good-...`);
//! - that the neighbours survive: the summary's count of valid services and backends includes them;
//! - that nothing panics, nothing hangs (a run over [`PATIENCE`] is killed and fails the case), and no output line
//!   is longer than [`MAX_LINE`] characters (echoed input is cut);
//! - that problems speak a user's words, not Rust's ([`RUST_WORDS`]);
//! - as files: that `plan` (the reader of `run` and `apply`) reports the very same problem lines as `validate`. It
//!   is run with `--netns` naming no namespace, so it stops after reading, before any kernel is asked.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The corpus, relative to the package root.
const FIXTURES: &str = "tests/fixtures/bad-input";

/// How long one run may take before the case fails as a hang. Generous: a debug build on a loaded machine; every
/// case takes well under two seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// The longest output line allowed: a message with a cut echo of the input, its object and its field.
const MAX_LINE: usize = 1100;

/// Words of the implementation that a problem must never show a user.
const RUST_WORDS: &[&str] = &["i64", "u16", "u32", "u64", "u128", "unit value", "struct ", "invalid type:"];

/// A network namespace that does not exist: `plan` reads the manifests, reports their problems, then fails to
/// enter it, so no kernel is read.
const NO_NETNS: &str = "/nonexistent/ipvs-reconciler-bad-input";

/// The summary when both sandwich neighbours survive (`good-before` with 2 backends, `good-after` with 3).
const NEIGHBOURS: &str = "2 valid service(s) with 5 backend(s);";

/// The `--kubernetes` summary of the pool cases: the two neighbours and the valid pool `good-pool`.
const POOL_NEIGHBOURS: &str =
    "2 valid VirtualService(s) with 5 backend(s) and 0 backendsFrom reference(s), 1 valid VirtualServicePool(s);";

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Lines cut for the report only: a 100 kB line would bury the rest.
        let cut = |text: &str| text.lines().map(|l| l.chars().take(400).collect::<String>() + "\n").collect::<String>();
        let (stdout, stderr) = (cut(&self.stdout), cut(&self.stderr));
        write!(f, "exit code {:?} after {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}---", self.code, self.elapsed)
    }
}

impl Run {
    /// The `error: ...` and `conflict: ...` lines of stderr.
    fn problems(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("error: ") || l.starts_with("conflict: ")).collect()
    }
}

/// Runs the binary with `args` from the package root; kills it and fails after [`PATIENCE`].
fn run(args: &[&str]) -> Run {
    let out_dir = tempfile::tempdir().unwrap();
    let (stdout_path, stderr_path) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("IPVS_RECONCILER_NETNS")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ipvs-reconciler {args:?} still running after {PATIENCE:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Run { code: status.code(), stdout: read(&stdout_path), stderr: read(&stderr_path), elapsed: start.elapsed() }
}

/// The first part of an expected problem that may be reported or not (a consequence of the one that must be,
/// true but not required).
const OPTIONAL: &str = "(optional)";

/// Whether `line` holds every part of `expected`; a part `a|b` holds when either does.
fn matches(line: &str, expected: &[&str]) -> bool {
    expected.iter().all(|part| part.split('|').any(|alternative| line.contains(alternative)))
}

/// How a case is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `validate -f PATH`, as `run` and `apply` read files; `plan` must report the same problems.
    Files,
    /// `validate -f PATH` only: documents that `validate` skips and `run` refuses (other kinds).
    FilesValidateOnly,
    /// `validate --kubernetes -f PATH`: as a cluster receives them (pools read).
    Kubernetes,
}

/// The checks every case makes (see the module's documentation).
#[track_caller]
fn check(mode: Mode, path: &Path, exit: i32, valid: &str, errors: &[&[&str]]) {
    let path = path.to_str().unwrap();
    let validate = match mode {
        Mode::Kubernetes => run(&["validate", "--kubernetes", "-f", path]),
        Mode::Files | Mode::FilesValidateOnly => run(&["validate", "-f", path]),
    };
    assert_sane(&validate);
    assert_eq!(validate.code, Some(exit), "exit code\n{validate}");

    let summary = validate.stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with(valid), "the valid neighbours did not survive: expected `{valid}...`\n{validate}");

    let problems = validate.problems();
    for line in &problems {
        for word in RUST_WORDS {
            assert!(!line.contains(word), "`{word}` shown to a user: {line}\n{validate}");
        }
        // `error: PATH#N (namespace/name): field: message`: the object is what precedes the second ": ".
        let object = line.split_once(": ").map_or("", |(_, rest)| rest.split(": ").next().unwrap_or_default());
        assert!(!object.contains("good-"), "a valid neighbour is blamed: {line}\n{validate}");
    }
    let mut unmatched = problems.clone();
    for expected in errors.iter().filter(|e| e.first() != Some(&OPTIONAL)) {
        let Some(found) = unmatched.iter().position(|line| matches(line, expected)) else {
            panic!("no problem line holds {expected:?}\n{validate}");
        };
        unmatched.remove(found);
    }
    for expected in errors.iter().filter(|e| e.first() == Some(&OPTIONAL)) {
        unmatched.retain(|line| !matches(line, &expected[1..]));
    }
    assert!(unmatched.is_empty(), "problem lines not expected: {unmatched:#?}\n{validate}");

    if mode == Mode::Files {
        let plan = plan(path);
        let (mut read, mut checked) = (plan.problems(), problems);
        read.sort_unstable();
        checked.sort_unstable();
        assert_eq!(
            read, checked,
            "`plan` (as `run` and `apply` read files) and `validate` disagree\n{plan}\n{validate}"
        );
    }
}

/// `plan -f PATH` in no namespace: what `run` and `apply` make of the files, before any kernel is asked.
fn plan(path: &str) -> Run {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().join("state.json");
    let plan = run(&["--netns", NO_NETNS, "plan", "-f", path, "--state", state.to_str().unwrap()]);
    assert_sane(&plan);
    assert_eq!(plan.code, Some(1), "plan in no namespace\n{plan}");
    assert!(plan.stderr.contains(NO_NETNS), "plan stopped before the namespace\n{plan}");
    plan
}

/// No panic, and no line over [`MAX_LINE`] characters.
#[track_caller]
fn assert_sane(run: &Run) {
    assert!(!run.stderr.contains("panicked"), "a panic\n{run}");
    for line in run.stdout.lines().chain(run.stderr.lines()) {
        let length = line.chars().count();
        assert!(length <= MAX_LINE, "a line of {length} characters (at most {MAX_LINE}): echoed input not cut\n{run}");
    }
}

/// A case of the corpus, read as files.
#[track_caller]
fn case(path: &str, exit: i32, valid: &str, errors: &[&[&str]]) {
    check(Mode::Files, &Path::new(FIXTURES).join(path), exit, valid, errors);
}

/// A case of the corpus, read as a cluster receives it.
#[track_caller]
fn cluster_case(path: &str, exit: i32, valid: &str, errors: &[&[&str]]) {
    check(Mode::Kubernetes, &Path::new(FIXTURES).join(path), exit, valid, errors);
}

/// A sandwich case: the neighbours survive, and the bad document `#1` of `file` (under `dir`) is reported at
/// `field` with `why`.
#[track_caller]
fn bad(dir: &str, file: &str, field: &str, why: &str) {
    case(&format!("{dir}/{file}"), 1, NEIGHBOURS, &[&[&format!("{file}#1 (default/bad): {field}: "), why]]);
}

// ------------------------------------------------------------------------------------------------- wrong types

#[test]
fn types_a_string_for_an_integer_is_named_in_a_users_words_and_hides_no_other_error() {
    case(
        "types/weight-string.yaml",
        1,
        NEIGHBOURS,
        &[
            &["weight-string.yaml#1 (default/bad): spec.backends[0].weight: ", "expected an integer"],
            &["weight-string.yaml#1 (default/bad): spec.port: ", "70000", "out of range"],
        ],
    );
}

#[test]
fn types_a_list_for_spec() {
    bad("types", "spec-is-a-list.yaml", "spec", "expected a mapping");
}

#[test]
fn types_a_mapping_for_the_backends() {
    bad("types", "backends-is-a-mapping.yaml", "spec.backends", "expected a list");
}

#[test]
fn types_a_string_for_a_backend() {
    let at = "backend-is-a-string.yaml#1 (default/bad): spec.backends[0]";
    let errors: &[&[&str]] =
        &[&[&format!("{at}: "), "expected a mapping"], &[OPTIONAL, &format!("{at}.address: "), "required"]];
    case("types/backend-is-a-string.yaml", 1, NEIGHBOURS, errors);
}

#[test]
fn types_a_number_for_an_address() {
    bad("types", "address-is-a-number.yaml", "spec.address", "expected a string");
}

#[test]
fn types_null_for_an_address() {
    bad("types", "address-is-null.yaml", "spec.backends[0].address", "expected a string");
}

#[test]
fn types_a_quoted_boolean() {
    bad("types", "bool-is-a-string.yaml", "spec.bindAddress", "expected true or false");
}

#[test]
fn types_a_string_for_metadata() {
    // `metadata: bad` names nothing: the document is named by its place alone.
    let at = "metadata-is-a-string.yaml#1: metadata";
    let errors: &[&[&str]] =
        &[&[&format!("{at}: "), "expected a mapping"], &[OPTIONAL, &format!("{at}.name: "), "required"]];
    case("types/metadata-is-a-string.yaml", 1, NEIGHBOURS, errors);
}

#[test]
fn types_a_list_for_a_document() {
    case("types/document-is-a-list.yaml", 1, NEIGHBOURS, &[&["document-is-a-list.yaml#1: ", "expected a mapping"]]);
}

#[test]
fn types_a_word_for_a_document() {
    case("types/document-is-a-scalar.yaml", 1, NEIGHBOURS, &[&["document-is-a-scalar.yaml#1: ", "expected a mapping"]]);
}

#[test]
fn types_a_protocol_in_lowercase_is_told_the_known_ones() {
    case(
        "types/protocol-lowercase.yaml",
        1,
        NEIGHBOURS,
        &[&["protocol-lowercase.yaml#1 (default/bad): spec.protocol: ", "tcp", "TCP", "UDP", "SCTP"]],
    );
}

#[test]
fn types_a_fraction_for_rise() {
    bad("types", "rise-is-a-float.yaml", "spec.healthCheck.rise", "expected an integer");
}

#[test]
fn types_a_string_three_levels_down() {
    bad("types", "tunnel-port-is-a-string.yaml", "spec.forwarding.tunnel.port", "expected an integer");
}

#[test]
fn types_a_string_for_a_list() {
    bad("types", "scheduler-flags-is-a-string.yaml", "spec.schedulerFlags", "expected a list");
}

#[test]
fn types_a_fraction_for_a_port() {
    bad("types", "port-is-a-float.yaml", "spec.port", "expected an integer");
}

#[test]
fn types_infinity_for_a_weight() {
    bad("types", "weight-is-infinite.yaml", "spec.backends[0].weight", "expected an integer");
}

// ----------------------------------------------------------------------------------------------------- numbers

#[test]
fn numbers_a_negative_weight() {
    bad("numbers", "weight-negative.yaml", "spec.backends[0].weight", "-1 is out of range 0-2147483647");
}

#[test]
fn numbers_a_weight_above_the_kernels() {
    bad(
        "numbers",
        "weight-above-the-kernels.yaml",
        "spec.backends[0].weight",
        "2147483648 is out of range 0-2147483647",
    );
}

#[test]
fn numbers_an_integer_beyond_64_bits_is_out_of_range_for_its_field() {
    bad("numbers", "weight-beyond-64-bits.yaml", "spec.backends[0].weight", "out of range");
}

#[test]
fn numbers_a_negative_integer_beyond_64_bits() {
    bad("numbers", "port-beyond-64-bits-negative.yaml", "spec.port", "out of range");
}

#[test]
fn numbers_an_unsigned_64_bit_integer_beyond_the_signed_range() {
    bad("numbers", "fwmark-2-to-the-64-minus-1.yaml", "spec.fwmark", "out of range");
}

#[test]
fn numbers_a_port_above_65535() {
    bad("numbers", "port-70000.yaml", "spec.port", "70000 is out of range 0-65535");
}

#[test]
fn numbers_a_negative_drain_timeout() {
    bad("numbers", "drain-timeout-negative.yaml", "spec.drainTimeoutSeconds", "-1 is out of range");
}

#[test]
fn numbers_a_persistence_timeout_of_zero() {
    bad("numbers", "persistence-timeout-zero.yaml", "spec.persistence.timeoutSeconds", "0 is out of range 1-2678400");
}

#[test]
fn numbers_crossed_thresholds() {
    bad("numbers", "thresholds-crossed.yaml", "spec.backends[0].lowerThreshold", "20 is above upperThreshold 10");
}

#[test]
fn numbers_a_threshold_above_32_bits() {
    bad("numbers", "threshold-huge.yaml", "spec.backends[0].upperThreshold", "99999999999 is out of range");
}

// --------------------------------------------------------------------------------------------------- addresses

#[test]
fn addresses_unspecified_v4_is_no_virtual_address() {
    bad("addresses", "vip-unspecified-v4.yaml", "spec.address", "0.0.0.0 is unspecified");
}

#[test]
fn addresses_unspecified_v6_is_no_virtual_address() {
    bad("addresses", "vip-unspecified-v6.yaml", "spec.address", ":: is unspecified");
}

#[test]
fn addresses_broadcast_is_no_virtual_address() {
    bad("addresses", "vip-broadcast.yaml", "spec.address", "255.255.255.255 is broadcast");
}

#[test]
fn addresses_multicast_v4_is_no_virtual_address() {
    bad("addresses", "vip-multicast-v4.yaml", "spec.address", "224.0.0.1 is multicast");
}

#[test]
fn addresses_multicast_v6_is_no_virtual_address() {
    bad("addresses", "vip-multicast-v6.yaml", "spec.address", "ff02::1 is multicast");
}

#[test]
fn addresses_loopback_v4_is_no_virtual_address() {
    bad("addresses", "vip-loopback-v4.yaml", "spec.address", "127.0.0.1 is loopback");
}

#[test]
fn addresses_loopback_v6_is_no_virtual_address() {
    bad("addresses", "vip-loopback-v6.yaml", "spec.address", "::1 is loopback");
}

#[test]
fn addresses_the_cloud_metadata_address_is_no_virtual_address() {
    bad("addresses", "vip-link-local-metadata.yaml", "spec.address", "169.254.169.254 is link-local");
}

#[test]
fn addresses_link_local_v6_is_no_virtual_address() {
    bad("addresses", "vip-link-local-v6.yaml", "spec.address", "fe80::1 is link-local");
}

#[test]
fn addresses_an_ipv4_mapped_virtual_address_is_told_its_ipv4_form() {
    bad("addresses", "vip-ipv4-mapped.yaml", "spec.address", "write the IPv4 form 192.0.2.9");
}

#[test]
fn addresses_a_virtual_address_that_is_none() {
    bad("addresses", "vip-not-an-address.yaml", "spec.address", "`192.0.2.300` is not an IPv4 or IPv6 address");
}

#[test]
fn addresses_a_virtual_address_with_a_prefix() {
    bad("addresses", "vip-with-prefix.yaml", "spec.address", "`192.0.2.9/32` is not an IPv4 or IPv6 address");
}

#[test]
fn addresses_an_unspecified_backend() {
    bad("addresses", "backend-unspecified.yaml", "spec.backends[0].address", "0.0.0.0 is unspecified");
}

#[test]
fn addresses_a_broadcast_backend() {
    bad("addresses", "backend-broadcast.yaml", "spec.backends[0].address", "255.255.255.255 is broadcast");
}

#[test]
fn addresses_a_multicast_backend() {
    bad("addresses", "backend-multicast.yaml", "spec.backends[0].address", "239.1.1.1 is multicast");
}

#[test]
fn addresses_a_link_local_v6_backend() {
    bad("addresses", "backend-link-local-v6.yaml", "spec.backends[0].address", "fe80::9 is link-local");
}

#[test]
fn addresses_a_loopback_backend_behind_nat() {
    bad("addresses", "backend-loopback-masquerade.yaml", "spec.backends[0].address", "only forwarding method Local");
}

#[test]
fn addresses_an_ipv4_mapped_backend() {
    // Both of what is wrong: its form, and the family it then has.
    let at = "backend-ipv4-mapped.yaml#1 (default/bad): spec.backends[0].address: ";
    case(
        "addresses/backend-ipv4-mapped.yaml",
        1,
        NEIGHBOURS,
        &[&[at, "write the IPv4 form 10.0.0.9"], &[at, "another family needs forwarding method Tunnel"]],
    );
}

#[test]
fn addresses_a_backend_of_the_other_family() {
    bad("addresses", "backend-other-family.yaml", "spec.backends[0].address", "forwarding method Tunnel");
}

#[test]
fn addresses_a_multicast_sorry_server() {
    bad("addresses", "sorry-server-multicast.yaml", "spec.sorryServer.address", "224.0.0.9 is multicast");
}

#[test]
fn addresses_a_multicast_probe_source() {
    let file = "health-check-source-multicast.yaml";
    bad("addresses", file, "spec.healthCheck.sourceAddress", "224.0.0.9 is not a unicast address");
}

#[test]
fn addresses_ipv4_link_local_backends_and_loopback_through_local_are_accepted() {
    let file = "addresses/accepted-link-local-v4-and-local-loopback.yaml";
    case(file, 0, "3 valid service(s) with 7 backend(s); 0 error(s), 0 conflict(s)", &[]);
}

// -------------------------------------------------------------------------------------------------- duplicates

#[test]
fn duplicates_a_key_costs_its_document_only_and_names_its_line() {
    case("duplicates/key-in-spec.yaml", 1, NEIGHBOURS, &[&["key-in-spec.yaml#1", "duplicate", "line 19"]]);
}

#[test]
fn duplicates_a_top_level_key() {
    case("duplicates/key-at-top-level.yaml", 1, NEIGHBOURS, &[&["key-at-top-level.yaml#1", "duplicate", "line 19"]]);
}

#[test]
fn duplicates_a_key_in_a_flow_mapping() {
    let file = "duplicates/key-in-flow-mapping.yaml";
    case(file, 1, NEIGHBOURS, &[&["key-in-flow-mapping.yaml#1", "duplicate", "line 20"]]);
}

#[test]
fn duplicates_two_documents_with_one_name_in_one_file() {
    // `{name: dup}` without a namespace is default/dup, as kubectl applies it; the first stays valid.
    case(
        "duplicates/same-name-in-one-file.yaml",
        1,
        "3 valid service(s) with 6 backend(s);",
        &[&["same-name-in-one-file.yaml#2 (default/dup): metadata.name: ", "same-name-in-one-file.yaml#1"]],
    );
}

#[test]
fn duplicates_two_documents_with_one_name_in_two_files() {
    case(
        "duplicates/same-name-across-files",
        1,
        "3 valid service(s) with 6 backend(s);",
        &[&["b.yaml#0 (default/dup): metadata.name: ", "a.yaml#1"]],
    );
}

#[test]
fn duplicates_one_name_in_two_namespaces_is_two_objects() {
    case("duplicates/same-name-other-namespace.yaml", 0, "4 valid service(s) with 5 backend(s); 0 error(s)", &[]);
}

#[test]
fn duplicates_two_objects_claiming_one_service_the_older_wins() {
    case(
        "duplicates/conflict-same-service.yaml",
        1,
        NEIGHBOURS,
        &[&[
            "conflict: ",
            "conflict-same-service.yaml#1 (default/bad): ",
            "TCP 192.0.2.1:80",
            "#0 (default/good-before)",
        ]],
    );
}

#[test]
fn duplicates_two_files_claiming_one_service_the_older_wins() {
    case(
        "duplicates/conflict-across-files",
        1,
        NEIGHBOURS,
        &[&["conflict: ", "b.yaml#0 (default/bad): ", "TCP 192.0.2.1:80", "a.yaml#0 (default/good-before)"]],
    );
}

#[test]
fn duplicates_one_backend_twice() {
    bad("duplicates", "backend-twice.yaml", "spec.backends[1]", "duplicate of spec.backends[0]");
}

// ---------------------------------------------------------------------------------------------- unknown fields

#[test]
fn unknown_field_at_the_top() {
    let at = "top-level.yaml#1 (default/bad): ";
    let errors: &[&[&str]] =
        &[&[&format!("{at}port: "), "unknown field"], &[OPTIONAL, &format!("{at}spec.port: "), "required"]];
    case("unknown-fields/top-level.yaml", 1, NEIGHBOURS, errors);
}

#[test]
fn unknown_field_in_spec() {
    let at = "in-spec.yaml#1 (default/bad): ";
    let errors: &[&[&str]] =
        &[&[&format!("{at}spec.adress: "), "unknown field"], &[OPTIONAL, &format!("{at}spec.address: "), "required"]];
    case("unknown-fields/in-spec.yaml", 1, NEIGHBOURS, errors);
}

#[test]
fn unknown_field_in_a_backend() {
    bad("unknown-fields", "in-backend.yaml", "spec.backends[0].wieght", "unknown field");
}

#[test]
fn unknown_field_in_the_health_check_no_command() {
    bad("unknown-fields", "in-health-check.yaml", "spec.healthCheck.command", "unknown field");
}

#[test]
fn unknown_field_in_the_tunnel() {
    bad("unknown-fields", "in-tunnel.yaml", "spec.forwarding.tunnel.mode", "unknown field");
}

#[test]
fn unknown_field_in_persistence() {
    bad("unknown-fields", "in-persistence.yaml", "spec.persistence.timeout", "unknown field");
}

#[test]
fn unknown_field_in_a_backends_check() {
    let at = "in-backend-health-check.yaml#1 (default/bad): spec.backends[0].healthCheck";
    let errors: &[&[&str]] = &[
        &[&format!("{at}.path: "), "unknown field"],
        &[OPTIONAL, &format!("{at}: "), "empty: give port and/or address, or disabled"],
    ];
    case("unknown-fields/in-backend-health-check.yaml", 1, NEIGHBOURS, errors);
}

#[test]
fn unknown_field_in_the_sorry_server() {
    bad("unknown-fields", "in-sorry-server.yaml", "spec.sorryServer.weight", "unknown field");
}

// ---------------------------------------------------------------------------------------------------- identity

#[test]
fn identity_a_document_without_metadata_needs_a_name() {
    case("identity/no-metadata.yaml", 1, NEIGHBOURS, &[&["no-metadata.yaml#1: metadata.name: ", "required"]]);
}

#[test]
fn identity_metadata_without_a_name() {
    case("identity/no-name.yaml", 1, NEIGHBOURS, &[&["no-name.yaml#1", "metadata.name: ", "required"]]);
}

#[test]
fn identity_an_empty_name() {
    case(
        "identity/empty-name.yaml",
        1,
        NEIGHBOURS,
        &[&["empty-name.yaml#1", "metadata.name: ", "required|not a valid"]],
    );
}

#[test]
fn identity_a_name_kubernetes_refuses() {
    let file = "identity/name-kubernetes-refuses.yaml";
    case(file, 1, NEIGHBOURS, &[&["#1 (default/Web_Server!): metadata.name: ", "not a valid|not a DNS subdomain"]]);
}

#[test]
fn identity_a_name_of_300_characters() {
    let file = "identity/name-300-characters.yaml";
    case(file, 1, NEIGHBOURS, &[&["name-300-characters.yaml#1", "metadata.name: ", "not a valid|not a DNS subdomain"]]);
}

#[test]
fn identity_a_namespace_kubernetes_refuses() {
    let file = "identity/bad-namespace.yaml";
    case(file, 1, NEIGHBOURS, &[&["#1 (Prod_1/bad): metadata.namespace: ", "not a valid|not a DNS label"]]);
}

#[test]
fn identity_a_number_for_a_name() {
    let file = "identity/name-is-a-number.yaml";
    case(file, 1, NEIGHBOURS, &[&["name-is-a-number.yaml#1", "metadata.name: ", "expected a string"]]);
}

#[test]
fn identity_a_dotted_name_is_a_name() {
    case("identity/dotted-name.yaml", 0, "3 valid service(s) with 5 backend(s); 0 error(s)", &[]);
}

// ------------------------------------------------------------------------------------------ bombs and nesting

#[test]
fn bombs_a_billion_laughs_is_refused_at_once() {
    case("bombs/billion-laughs.yaml", 1, NEIGHBOURS, &[&["billion-laughs.yaml#1"]]);
}

#[test]
fn bombs_deep_flow_lists_are_refused_without_overflowing_the_stack() {
    case("bombs/deep-flow-lists.yaml", 1, NEIGHBOURS, &[&["deep-flow-lists.yaml#1"]]);
}

#[test]
fn bombs_deep_flow_mappings() {
    case("bombs/deep-flow-mappings.yaml", 1, NEIGHBOURS, &[&["deep-flow-mappings.yaml#1"]]);
}

#[test]
fn bombs_deep_block_mappings() {
    case("bombs/deep-block-mappings.yaml", 1, NEIGHBOURS, &[&["deep-block-mappings.yaml#1"]]);
}

#[test]
fn bombs_anchors_aliases_and_merge_keys_used_as_meant_are_accepted() {
    case("bombs/anchors-and-merge-keys.yaml", 0, "4 valid service(s) with 8 backend(s); 0 error(s)", &[]);
}

// -------------------------------------------------------------------------------------------- byte-order marks

/// Every byte-order mark case holds three valid services, 5 backends.
const BOM_ACCEPTED: &str = "3 valid service(s) with 5 backend(s); 0 error(s)";

#[test]
fn bom_at_the_file_start_before_a_comment() {
    case("bom/file-start-before-a-comment.yaml", 0, BOM_ACCEPTED, &[]);
}

#[test]
fn bom_at_the_file_start_before_a_document_marker() {
    case("bom/file-start-before-a-document-marker.yaml", 0, BOM_ACCEPTED, &[]);
}

#[test]
fn bom_at_the_file_start_before_a_document() {
    case("bom/file-start-before-a-document.yaml", 0, BOM_ACCEPTED, &[]);
}

#[test]
fn bom_before_a_later_document_marker() {
    case("bom/before-a-later-document-marker.yaml", 0, BOM_ACCEPTED, &[]);
}

#[test]
fn bom_at_a_later_documents_start() {
    case("bom/at-a-later-document-start.yaml", 0, BOM_ACCEPTED, &[]);
}

// ------------------------------------------------------------------------------------- NUL and non-UTF-8 bytes

#[test]
fn bytes_a_nul_costs_its_document_only() {
    case("bytes/nul-in-a-document.yaml", 1, NEIGHBOURS, &[&["nul-in-a-document.yaml#1", "invalid YAML: ", "line 19"]]);
}

#[test]
fn bytes_one_that_is_never_utf8_costs_its_document_only() {
    case("bytes/non-utf8-in-a-document.yaml", 1, NEIGHBOURS, &[&["non-utf8-in-a-document.yaml#1", "UTF-8"]]);
}

#[test]
fn bytes_a_latin1_file_is_refused_beside_a_good_one() {
    case("bytes/latin1-file", 1, NEIGHBOURS, &[&["latin1-file/a.yaml", "UTF-8"]]);
}

#[test]
fn bytes_a_binary_file_is_refused_beside_a_good_one() {
    case("bytes/binary-file", 1, NEIGHBOURS, &[&["binary-file/a.yaml", "UTF-8"]]);
}

#[test]
fn bytes_a_utf16_file_is_refused_beside_a_good_one() {
    case("bytes/utf16-file", 1, NEIGHBOURS, &[&["utf16-file/a.yaml", "UTF-8"]]);
}

// -------------------------------------------------------------------------------------------------------- tabs

#[test]
fn tabs_for_indentation_cost_their_document_and_name_the_line() {
    case("tabs/indentation.yaml", 1, NEIGHBOURS, &[&["indentation.yaml#1", "invalid YAML: ", "line 17"]]);
}

#[test]
fn tabs_after_colons_are_accepted() {
    case("tabs/after-colons.yaml", 0, "3 valid service(s) with 5 backend(s); 0 error(s)", &[]);
}

// ------------------------------------------------------------------------------------------------------- empty

#[test]
fn empty_comment_only_and_blank_files_are_skipped() {
    case("empty/files", 0, "2 valid service(s) with 5 backend(s); 0 error(s)", &[]);
}

#[test]
fn empty_documents_are_skipped() {
    case("empty/documents.yaml", 0, "2 valid service(s) with 5 backend(s); 0 error(s)", &[]);
}

#[test]
fn empty_mapping_is_no_object() {
    case("empty/empty-mapping.yaml", 1, NEIGHBOURS, &[&["empty-mapping.yaml#1: kind: "]]);
}

// -------------------------------------------------------------------------------------------------------- JSON

/// The directory cases of JSON: the good file's one service.
const ONE_GOOD_JSON: &str = "1 valid service(s) with 2 backend(s);";

#[test]
fn json_a_file_is_read_beside_yaml() {
    case("json/valid", 0, "3 valid service(s) with 6 backend(s); 0 error(s)", &[]);
}

#[test]
fn json_a_document_in_a_yaml_stream_is_read() {
    case("json/document-in-a-yaml-stream.yaml", 0, "3 valid service(s) with 6 backend(s); 0 error(s)", &[]);
}

#[test]
fn json_unterminated_is_refused_beside_a_good_file() {
    case("json/bad-json", 1, ONE_GOOD_JSON, &[&["bad-json/a.json", "invalid YAML: ", "line 2"]]);
}

#[test]
fn json_a_duplicate_key() {
    case("json/duplicate-key", 1, ONE_GOOD_JSON, &[&["duplicate-key/a.json#0", "duplicate", "line 4"]]);
}

#[test]
fn json_an_integer_beyond_64_bits() {
    let at = "number-beyond-64-bits/a.json#0 (default/bad): spec.backends[0].weight: ";
    case("json/number-beyond-64-bits", 1, ONE_GOOD_JSON, &[&[at, "out of range"]]);
}

#[test]
fn json_an_array_is_no_object() {
    case("json/array-of-objects", 1, ONE_GOOD_JSON, &[&["array-of-objects/a.json#0: ", "expected a mapping"]]);
}

// ------------------------------------------------------------------------------------------------------- kinds

#[test]
fn kinds_a_list_is_read_item_by_item_by_validate_and_by_apply() {
    // `validate` unfolds a v1 List (kubectl get -o yaml writes one, kubectl apply takes one); `run` and `apply`
    // must read it the same way (this is what `plan`, compared in `case`, shows).
    let at = "list.yaml#1 (default/bad): spec.port: ";
    case("kinds/list.yaml", 1, "3 valid service(s) with 5 backend(s);", &[&[at, "70000 is out of range"]]);
}

/// A document of another kind: `validate` skips it with a warning that `run` and `apply` refuse it, and they do.
#[track_caller]
fn skipped(file: &str, object: &str, kind: &str) {
    let path = Path::new(FIXTURES).join("kinds").join(file);
    let summary = "2 valid service(s) with 5 backend(s); 0 error(s), 0 conflict(s); 1 other document(s) skipped";
    check(Mode::FilesValidateOnly, &path, 0, summary, &[]);
    let validate = run(&["validate", "-f", path.to_str().unwrap()]);
    let warning = format!("{file}#1 ({object}): kind {kind}");
    assert!(validate.stderr.lines().any(|l| l.contains(&warning) && l.contains("skipped")), "{validate}");
    let plan = plan(path.to_str().unwrap());
    let refused = [format!("{file}#1 ({object}): kind: |{file}#1 ({object}): apiVersion: "), format!("kind `{kind}`")];
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    assert!(plan.problems().iter().any(|l| matches(l, &refused)), "{plan}");
    assert_eq!(plan.problems().len(), 1, "{plan}");
}

#[test]
fn kinds_another_kind_is_skipped_and_counted() {
    skipped("other-kind.yaml", "default/web", "Deployment");
}

#[test]
fn kinds_istios_virtual_service_is_not_ours() {
    skipped("istio-virtualservice.yaml", "default/web", "VirtualService");
}

#[test]
fn kinds_a_pool_in_files_is_skipped() {
    skipped("pool-in-files.yaml", "default/pool", "VirtualServicePool");
}

#[test]
fn kinds_an_unknown_kind_of_this_api() {
    bad("kinds", "unknown-kind-of-this-group.yaml", "kind", "`VirtualServer`");
}

#[test]
fn kinds_an_unknown_version_of_this_api() {
    bad("kinds", "other-version-of-this-group.yaml", "apiVersion", "`ipvs.dev/v1beta1`");
}

#[test]
fn kinds_no_kind() {
    bad("kinds", "no-kind.yaml", "kind", "expected kind VirtualService");
}

// ----------------------------------------------------------------------------------------------- health checks

#[test]
fn checks_a_timeout_not_below_the_interval() {
    let file = "timeout-not-below-interval.yaml";
    bad("health-checks", file, "spec.healthCheck.timeoutSeconds", "2 is not below intervalSeconds 2");
}

#[test]
fn checks_rise_zero() {
    bad("health-checks", "rise-zero.yaml", "spec.healthCheck.rise", "0 is out of range");
}

#[test]
fn checks_an_interval_over_a_day() {
    bad("health-checks", "interval-over-a-day.yaml", "spec.healthCheck.intervalSeconds", "86401 is out of range");
}

#[test]
fn checks_an_unknown_type_is_told_the_known_ones() {
    bad("health-checks", "unknown-type.yaml", "spec.healthCheck.type", "ICMP");
}

#[test]
fn checks_a_missing_type() {
    // The field named, whether as `spec.healthCheck.type` or as the mapping that misses it.
    let at = "type-missing.yaml#1 (default/bad): spec.healthCheck";
    case("health-checks/type-missing.yaml", 1, NEIGHBOURS, &[&[at, "type", "required|missing"]]);
}

#[test]
fn checks_an_http_field_on_tcp() {
    bad("health-checks", "http-field-on-tcp.yaml", "spec.healthCheck.path", "only for types HTTP and HTTPS");
}

#[test]
fn checks_dns_without_a_query() {
    bad("health-checks", "dns-without-query.yaml", "spec.healthCheck.query", "required with type DNS");
}

#[test]
fn checks_a_status_600() {
    bad("health-checks", "expect-status-600.yaml", "spec.healthCheck.expectStatus[0]", "`600`");
}

#[test]
fn checks_a_path_without_a_slash() {
    bad("health-checks", "path-without-slash.yaml", "spec.healthCheck.path", "does not start with");
}

#[test]
fn checks_udp_bytes_not_in_hex() {
    bad("health-checks", "udp-send-not-hex.yaml", "spec.healthCheck.send", "not hex");
}

#[test]
fn checks_a_backend_override_with_port_and_disabled() {
    bad(
        "health-checks",
        "backend-override-both.yaml",
        "spec.backends[0].healthCheck",
        "disabled excludes port and address",
    );
}

#[test]
fn checks_a_backend_override_without_a_check() {
    let file = "backend-override-without-check.yaml";
    bad("health-checks", file, "spec.backends[0].healthCheck", "needs spec.healthCheck");
}

#[test]
fn checks_a_quorum_without_a_sorry_server() {
    bad("health-checks", "quorum-without-sorry-server.yaml", "spec.quorum", "needs spec.sorryServer");
}

// ------------------------------------------------------------------------------- pools (validate --kubernetes)

/// A pool case: the neighbours and `good-pool` survive; the bad pool `#2` of `file` is reported at `field`.
#[track_caller]
fn bad_pool(file: &str, field: &str, why: &str) {
    let at = format!("{file}#2 (bad-pool): {field}: ");
    cluster_case(&format!("pools/{file}"), 1, POOL_NEIGHBOURS, &[&[&at, why]]);
}

#[test]
fn pools_a_cidr_of_33_bits() {
    bad_pool("cidr-prefix-33.yaml", "spec.addresses[0]", "`192.0.2.0/33` is not a CIDR");
}

#[test]
fn pools_a_backend_cidr_of_40_bits() {
    bad_pool("backend-cidr-prefix-40.yaml", "spec.backendCIDRs[0]", "`10.0.0.0/40` is not a CIDR");
}

#[test]
fn pools_fwmarks_from_above_to() {
    bad_pool("fwmark-from-above-to.yaml", "spec.fwmarks[0]", "10-5");
}

#[test]
fn pools_a_fwmark_beyond_64_bits() {
    bad_pool("fwmark-beyond-64-bits.yaml", "spec.fwmarks[0].to", "out of range");
}

#[test]
fn pools_an_unknown_field() {
    bad_pool("unknown-field.yaml", "spec.namespace", "unknown field");
}

#[test]
fn pools_without_addresses() {
    let at = "addresses-missing.yaml#2 (bad-pool): spec";
    cluster_case("pools/addresses-missing.yaml", 1, POOL_NEIGHBOURS, &[&[at, "addresses", "required|missing"]]);
}

#[test]
fn pools_a_string_for_the_addresses() {
    bad_pool("addresses-is-a-string.yaml", "spec.addresses", "expected a list");
}

#[test]
fn pools_a_namespace_kubernetes_refuses() {
    bad_pool("bad-namespace.yaml", "spec.namespaces[0]", "`Prod_1`");
}

#[test]
fn pools_a_selector_key_kubernetes_refuses() {
    bad_pool("bad-namespace-selector.yaml", "spec.namespaceSelector.matchLabels.bad key!", "not a label key");
}

#[test]
fn pools_two_with_one_name() {
    cluster_case(
        "pools/duplicate-name.yaml",
        1,
        "2 valid VirtualService(s) with 5 backend(s) and 0 backendsFrom reference(s), 2 valid VirtualServicePool(s);",
        &[&["duplicate-name.yaml#3 (dup-pool): metadata.name: ", "duplicate-name.yaml#2 (dup-pool)"]],
    );
}

// ------------------------------------------------------------------------------------------------- YAML syntax

#[test]
fn syntax_an_error_costs_its_document_only_and_names_the_files_line() {
    let file = "syntax/unclosed-flow-mapping.yaml";
    case(file, 1, NEIGHBOURS, &[&["unclosed-flow-mapping.yaml#1", "invalid YAML: ", "line 16"]]);
}

#[test]
fn syntax_bad_indentation() {
    case("syntax/bad-indentation.yaml", 1, NEIGHBOURS, &[&["bad-indentation.yaml#1", "invalid YAML: ", "line 18"]]);
}

#[test]
fn syntax_an_unterminated_quote() {
    let file = "syntax/unterminated-quote.yaml";
    case(file, 1, NEIGHBOURS, &[&["unterminated-quote.yaml#1", "invalid YAML: ", "line 19"]]);
}

#[test]
fn syntax_a_colon_in_a_plain_value() {
    let file = "syntax/colon-in-plain-scalar.yaml";
    case(file, 1, NEIGHBOURS, &[&["colon-in-plain-scalar.yaml#1", "invalid YAML: ", "line 19"]]);
}

// ------------------------------------------------------------------------------------------ long echoed input

/// The sandwich neighbours, for the generated cases.
const BEFORE: &str = "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: good-before}\nspec:\n  \
                      address: 192.0.2.1\n  port: 80\n  backends:\n    - {address: 10.0.0.1, port: 8080}\n    - \
                      {address: 10.0.0.2, port: 8080}\n";
const AFTER: &str = "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: good-after}\nspec:\n  \
                     address: 192.0.2.2\n  port: 80\n  backends:\n    - {address: 10.0.0.3, port: 8080}\n    - \
                     {address: 10.0.0.4, port: 8080}\n    - {address: 10.0.0.5, port: 8080}\n";

/// The bad document of a generated case: `metadata` and `spec` lines as given.
fn document(metadata: &str, spec: &str) -> String {
    format!("apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {metadata}\nspec:\n{spec}")
}

/// A 100 kB value: far beyond any line a person reads.
fn long_text() -> String {
    "x".repeat(100_000)
}

/// Writes `name` with `bad` between the neighbours into a scratch directory and checks it as a case.
#[track_caller]
fn generated(name: &str, bad: &str, errors: &[&[&str]]) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, format!("---\n{BEFORE}---\n{bad}---\n{AFTER}")).unwrap();
    check(Mode::Files, &path, 1, NEIGHBOURS, errors);
}

#[test]
fn long_a_100_kb_scheduler_is_cut_in_its_message() {
    let bad = document("{name: bad}", &format!("  address: 192.0.2.9\n  port: 80\n  scheduler: {}\n", long_text()));
    generated("long-scheduler.yaml", &bad, &[&["long-scheduler.yaml#1 (default/bad): spec.scheduler: ", "scheduler"]]);
}

#[test]
fn long_a_100_kb_name_is_cut_in_its_message() {
    let bad = document(&format!("{{name: {}}}", long_text()), "  address: 192.0.2.9\n  port: 80\n");
    generated("long-name.yaml", &bad, &[&["long-name.yaml#1", "metadata.name: "]]);
}

#[test]
fn long_a_100_kb_protocol_is_cut_in_its_message() {
    let bad = document("{name: bad}", &format!("  address: 192.0.2.9\n  port: 80\n  protocol: {}\n", long_text()));
    generated("long-protocol.yaml", &bad, &[&["long-protocol.yaml#1 (default/bad): spec.protocol: "]]);
}

#[test]
fn long_a_100_kb_key_is_cut_in_its_message() {
    // Longer than YAML's simple keys may be (1024 characters): a syntax error of that document.
    let bad = document("{name: bad}", &format!("  address: 192.0.2.9\n  port: 80\n  {}: 1\n", long_text()));
    generated("long-key.yaml", &bad, &[&["long-key.yaml#1", "invalid YAML: |unknown field"]]);
}

#[test]
fn long_a_100_kb_check_path_is_reported_by_its_length() {
    let spec = format!(
        "  address: 192.0.2.9\n  port: 80\n  healthCheck: {{type: HTTP, path: /{}}}\n  backends:\n    - {{address: \
         10.0.0.9}}\n",
        long_text()
    );
    let bad = document("{name: bad}", &spec);
    generated(
        "long-path.yaml",
        &bad,
        &[&["long-path.yaml#1 (default/bad): spec.healthCheck.path: ", "100001 characters"]],
    );
}

#[test]
fn long_a_100_kb_address_is_reported_by_its_length() {
    let bad = document("{name: bad}", &format!("  address: {}\n  port: 80\n", long_text()));
    generated(
        "long-address.yaml",
        &bad,
        &[&["long-address.yaml#1 (default/bad): spec.address: ", "100000 characters"]],
    );
}

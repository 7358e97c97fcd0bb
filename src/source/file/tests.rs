use std::collections::BTreeSet;
use std::fs;

use tempfile::TempDir;

use super::*;

const WEB: &str = "apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata: {name: web}
spec:
  address: 192.0.2.10
  port: 80
  backends: [{address: 10.0.0.11}]
";

const DNS: &str = "apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata:
  name: dns
spec:
  address: 192.0.2.53
  port: 53
  protocol: UDP
";

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn ids(load: &FileLoad) -> Vec<String> {
    load.objects.iter().map(|o| o.id.to_string()).collect()
}

fn messages(errors: &[ValidationError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn multi_document_file_with_ids_and_ages() {
    let text = format!("{WEB}---\n{DNS}");
    let load = parse_documents(Path::new("svc.yaml"), 3, &text);
    assert_eq!(ids(&load), vec!["svc.yaml#0 (default/web)", "svc.yaml#1 (default/dns)"]);
    assert_eq!(load.objects[1].age, Age::loaded(3, 1));
    assert_eq!(load.objects[0].spec.backends[0].address, "10.0.0.11");
    assert!(load.errors.is_empty() && load.warnings.is_empty());
}

#[test]
fn empty_documents_are_skipped_with_a_warning() {
    let load = parse_documents(Path::new("a.yaml"), 0, &format!("---\n{WEB}---\n"));
    assert_eq!(ids(&load), vec!["a.yaml#0 (default/web)"]);
    assert_eq!(messages(&load.warnings), vec!["a.yaml#1: empty document, skipped"]);
    let load = parse_documents(Path::new("empty.yaml"), 0, "");
    assert!(load.objects.is_empty() && load.errors.is_empty());
    assert_eq!(load.warnings.len(), 1);
}

#[test]
fn other_kinds_are_errors_but_other_documents_load() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    let old = "apiVersion: ipvs.dev/v1beta9\nkind: VirtualService\nspec: {}\n";
    let load = parse_documents(Path::new("m.yaml"), 0, &format!("{cm}---\n{WEB}---\n{old}---\n- a list\n"));
    assert_eq!(ids(&load), vec!["m.yaml#1 (default/web)"]);
    assert_eq!(
        messages(&load.errors),
        vec![
            "m.yaml#0 (default/x): kind: expected kind VirtualService of apiVersion ipvs.dev/v1alpha1, found kind `ConfigMap` of \
             apiVersion `v1`",
            "m.yaml#2: apiVersion: expected kind VirtualService of apiVersion ipvs.dev/v1alpha1, found kind \
             `VirtualService` of apiVersion `ipvs.dev/v1beta9`",
            "m.yaml#3: expected a mapping (a VirtualService object), found a list",
        ]
    );
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    let typo = WEB.replace("backends: [{address: 10.0.0.11}]", "backends: [{address: 10.0.0.11, wieght: 2}]");
    let load = parse_documents(Path::new("t.yaml"), 0, &typo);
    // The object is still read (it names its service, held while it is invalid); the field is its problem.
    assert_eq!(ids(&load), ["t.yaml#0 (default/web)"]);
    let e = &load.problems[0];
    assert_eq!(e.field, "spec.backends[0].wieght");
    assert!(e.message.starts_with("unknown field `wieght`"), "{e}");
    assert!(
        e.to_string().starts_with("t.yaml#0 (default/web): spec.backends[0].wieght: unknown field `wieght`"),
        "{e}"
    );

    let top = format!("{WEB}scheduler: rr\n");
    let load = parse_documents(Path::new("t.yaml"), 0, &top);
    assert_eq!(load.problems[0].field, "scheduler");
    assert!(load.problems[0].message.contains("unknown field `scheduler`"), "{}", load.problems[0]);
}

#[test]
fn wrong_types_are_named_with_their_path() {
    let load = parse_documents(Path::new("t.yaml"), 0, &WEB.replace("port: 80", "port: http"));
    assert_eq!(
        messages(&load.problems),
        vec!["t.yaml#0 (default/web): spec.port: expected an integer, found the string \"http\""]
    );
    let load = parse_documents(Path::new("t.yaml"), 0, &WEB.replace("port: 80", "port: 80\n  protocol: ICMP"));
    assert_eq!(load.problems[0].field, "spec.protocol");
    assert!(
        load.problems[0].message.starts_with("unknown value `ICMP`, expected one of `TCP`"),
        "{}",
        load.problems[0]
    );
    let load = parse_documents(Path::new("t.yaml"), 0, "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\n");
    assert_eq!(
        messages(&load.problems),
        vec![
            "t.yaml#0: metadata.name: required: every object needs a name (kubectl apply refuses one without it)",
            "t.yaml#0: spec: required"
        ]
    );
}

#[test]
fn a_syntax_error_costs_its_document_only() {
    let dir = dir_with(&[("a.yaml", &format!("{WEB}---\nspec: [\n---\n{DNS}")), ("b.yaml", DNS)]);
    let load = load(&[dir.path()]).unwrap();
    let (a, b) = (dir.path().join("a.yaml").display().to_string(), dir.path().join("b.yaml").display().to_string());
    assert_eq!(
        ids(&load),
        vec![format!("{a}#0 (default/web)"), format!("{a}#2 (default/dns)"), format!("{b}#0 (default/dns)")]
    );
    assert_eq!(
        messages(&load.errors),
        [format!(
            "{a}#1: invalid YAML: did not find expected node content at line 10 column 1, while parsing a flow node"
        )]
    );
    // Duplicate keys make their document unreadable, with the line of each.
    let load = parse_documents(Path::new("d.yaml"), 0, &format!("{DNS}---\n{WEB}metadata: {{name: again}}\n"));
    assert_eq!(ids(&load), ["d.yaml#0 (default/dns)"]);
    assert_eq!(
        messages(&load.errors),
        ["d.yaml#1: invalid YAML: duplicate key `metadata` at line 17 (first at line 12)"]
    );
    let nested = WEB.replace("port: 80", "port: 80\n  scheduler: rr\n  scheduler: wrr");
    let load = parse_documents(Path::new("d.yaml"), 0, &format!("{DNS}---\n{nested}"));
    assert_eq!(
        messages(&load.errors),
        ["d.yaml#1: invalid YAML: spec: duplicate key `scheduler` at line 17 (first at line 16)"]
    );
}

#[test]
fn byte_order_marks_are_accepted() {
    let load = parse_documents(Path::new("b.yaml"), 0, &format!("\u{feff}{WEB}\u{feff}---\n{DNS}"));
    assert_eq!(ids(&load), ["b.yaml#0 (default/web)", "b.yaml#1 (default/dns)"]);
    assert!(load.errors.is_empty() && load.problems.is_empty(), "{load:?}");
}

#[test]
fn numbers_beyond_64_bits_are_out_of_range_and_hide_nothing() {
    let big = WEB.replace("port: 80", "port: 18446744073709551616\n  scheduler: \"3\"\n  drainTimeoutSeconds: x");
    let load = parse_documents(Path::new("n.yaml"), 0, &format!("{big}---\n{DNS}"));
    assert_eq!(ids(&load), ["n.yaml#0 (default/web)", "n.yaml#1 (default/dns)"]);
    let problems = messages(&load.problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("n.yaml#0 (default/web): spec.port: 18446744073709551616 is out of range for the field"),
        "{problems:?}"
    );
    assert_eq!(
        problems[1],
        "n.yaml#0 (default/web): spec.drainTimeoutSeconds: expected an integer, found the string \"x\""
    );
    // Validation still reports the object's other problems, and none of the fields it could not read.
    let outcome = desired_of(load);
    let errors = messages(&outcome.errors);
    assert!(errors.iter().any(|e| e.contains("spec.scheduler: ")), "{errors:?}");
    assert!(!errors.iter().any(|e| e.contains("spec.port: port")), "{errors:?}");
    assert_eq!(outcome.table.services.len(), 1, "dns is programmed");
}

#[test]
fn directories_are_read_sorted_filtered_and_not_recursively() {
    let dir = dir_with(&[
        ("b.yml", DNS),
        ("a.yaml", WEB),
        (
            "c.json",
            r#"{"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService", "spec": {"fwmark": 1, "family": "IPv4"}}"#,
        ),
        ("notes.txt", "not yaml: ["),
        (".hidden.yaml", "not yaml: ["),
        ("sub/d.yaml", "not yaml: ["),
    ]);
    let load = load(&[dir.path()]).unwrap();
    let names: Vec<_> = load.files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_owned()).collect();
    assert_eq!(names, vec!["a.yaml", "b.yml", "c.json"]);
    assert_eq!(load.objects.len(), 3);
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    // Files are aged in load order.
    let ages: Vec<_> = load.objects.iter().map(|o| o.age).collect();
    assert_eq!(ages, vec![Age::loaded(0, 0), Age::loaded(1, 0), Age::loaded(2, 0)]);
}

#[test]
fn files_given_by_name_keep_argument_order_and_are_read_once() {
    let dir = dir_with(&[("z.yaml", WEB), ("a.txt", DNS)]);
    let z = dir.path().join("z.yaml");
    let a = dir.path().join("a.txt");
    let load = load(&[z.clone(), a.clone(), dir.path().to_owned(), z.clone()]).unwrap();
    assert_eq!(load.files, vec![z, a]);
}

#[test]
fn unreadable_paths_fail_the_whole_load() {
    let dir = dir_with(&[("a.yaml", WEB)]);
    let missing = dir.path().join("missing.yaml");
    let err = load(&[dir.path().to_owned(), missing.clone()]).unwrap_err();
    assert!(matches!(&err, LoadError::Read { path, .. } if *path == missing), "{err}");
    assert!(err.to_string().starts_with(&format!("cannot read {}: ", missing.display())), "{err}");
}

#[test]
fn dangling_links_in_a_directory_fail_the_whole_load() {
    let dir = dir_with(&[("a.yaml", WEB)]);
    std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("b.yaml")).unwrap();
    assert!(matches!(load(&[dir.path()]), Err(LoadError::Read { .. })));
}

/// A path that `stat`s as a regular file but whose read fails (EIO: address 0 of this process is not mapped), as
/// a file on a failing disk or a FUSE mount that errors would. Works as root, where permission bits do not.
const UNREADABLE_FILE: &str = "/proc/self/mem";

#[test]
fn a_file_that_stats_but_cannot_be_read_fails_the_whole_load() {
    let dir = dir_with(&[("a.yaml", WEB)]);
    let link = dir.path().join("b.yaml");
    std::os::unix::fs::symlink(UNREADABLE_FILE, &link).unwrap();
    assert!(fs::metadata(&link).unwrap().is_file(), "the test needs a path that stats as a file");
    let err = load(&[dir.path()]).unwrap_err();
    assert!(matches!(&err, LoadError::Read { path, .. } if *path == link), "{err}");
    let err = load(&[Path::new(UNREADABLE_FILE)]).unwrap_err();
    assert!(matches!(&err, LoadError::Read { .. }), "{err}");
}

#[test]
fn incremental_reload_fails_whole_on_a_file_that_stats_but_cannot_be_read() {
    let dir = dir_with(&[("a.yaml", &vs("a", 1, 1))]);
    let mut source = FileSource::new(vec![dir.path().to_owned()]);
    let mut index = ObjectIndex::new();
    source.reload_into(&mut index).unwrap();
    assert_eq!(index.table().services.len(), 1);
    std::os::unix::fs::symlink(UNREADABLE_FILE, dir.path().join("b.yaml")).unwrap();
    assert!(matches!(source.reload_into(&mut index), Err(LoadError::Read { .. })));
    assert_eq!(index.table().services.len(), 1, "a failed reload leaves the index as it was");
}

#[test]
fn errors_name_the_document_by_where_and_what_it_is() {
    let bad = WEB.replace("port: 80", "port: 80\n  bogus: 1");
    let named_in_prod = DNS.replace("name: dns", "name: dns\n  namespace: prod");
    let unnamed = DNS.replace("metadata:\n  name: dns\n", "");
    let dir =
        dir_with(&[("web.yaml", &format!("{unnamed}---\n{bad}---\n{}", named_in_prod.replace("port: 53", "port: x")))]);
    let load = load(&[dir.path()]).unwrap();
    let file = dir.path().join("web.yaml");
    let errors = messages(&load.problems);
    assert_eq!(errors.len(), 3, "{errors:?}");
    // A document without a name is named by where it is only.
    assert_eq!(
        errors[0],
        format!(
            "{}#0: metadata.name: required: every object needs a name (kubectl apply refuses one without it)",
            file.display()
        )
    );
    let web = format!("{}#1 (default/web): spec.bogus: unknown field `bogus`", file.display());
    assert!(errors[1].starts_with(&web), "{errors:?}");
    assert!(errors[2].starts_with(&format!("{}#2 (prod/dns): spec.port: ", file.display())), "{errors:?}");
}

#[test]
fn non_utf8_file_is_an_error_for_that_file() {
    let dir = dir_with(&[("a.yaml", WEB)]);
    fs::write(dir.path().join("b.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let load = load(&[dir.path()]).unwrap();
    assert_eq!(load.objects.len(), 1);
    assert_eq!(load.errors.len(), 1);
    assert!(load.errors[0].to_string().ends_with("b.yaml#0: not UTF-8 text (line 1)"), "{}", load.errors[0]);
    // Only the document holding the bytes.
    let mut bytes = format!("{WEB}---\n").into_bytes();
    bytes.extend(b"kind: \xff\n---\n");
    bytes.extend(DNS.as_bytes());
    fs::write(dir.path().join("b.yaml"), bytes).unwrap();
    let load = super::load(&[dir.path()]).unwrap();
    assert_eq!(load.objects.len(), 3);
    assert!(load.errors[0].to_string().ends_with("b.yaml#1: not UTF-8 text (line 9)"), "{}", load.errors[0]);
}

#[test]
fn file_source_keeps_the_last_good_load_on_error() {
    let dir = dir_with(&[("a.yaml", WEB), ("b.yaml", DNS)]);
    let mut source = FileSource::new(vec![dir.path().join("a.yaml"), dir.path().join("b.yaml")]);
    let mut index = ObjectIndex::new();
    source.reload_into(&mut index).unwrap();
    assert_eq!(index.table().services.len(), 2);
    fs::remove_file(dir.path().join("b.yaml")).unwrap();
    assert!(source.reload_into(&mut index).is_err());
    assert_eq!(index.table().services.len(), 2);
    // A document that turns bad replaces its object with its error.
    fs::write(dir.path().join("b.yaml"), DNS.replace("port: 53", "port: 53\n  bogus: 1")).unwrap();
    let reload = source.reload_into(&mut index).unwrap();
    assert_eq!(reload.files_read, 1, "a.yaml did not change");
    assert_eq!(reload.changed.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["UDP 192.0.2.53:53"]);
    let out = index.outcome();
    assert_eq!(out.table.services.len(), 1);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].field, "spec.bogus");
}

#[test]
fn yaml_merge_keys_are_applied() {
    let text = "apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
spec:
  address: 192.0.2.1
  port: 80
  backends:
    - &b {address: 10.0.0.1, weight: 5}
    - <<: *b
      address: 10.0.0.2
";
    let load = parse_documents(Path::new("m.yaml"), 0, text);
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    assert_eq!(load.objects[0].spec.backends[1].weight, Some(5));
}

// ---- the shipped examples ----

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn examples_validate_into_the_documented_table() {
    let load = load(&[examples()]).unwrap();
    assert!(load.errors.is_empty(), "{:#?}", load.errors);
    assert!(load.warnings.is_empty(), "{:#?}", load.warnings);
    let out = desired_of(load);
    assert!(out.is_clean(), "{:#?} {:#?}", out.errors, out.conflicts);
    // The numbers examples/README.md states.
    assert_eq!(out.table.services.len(), 9);
    assert_eq!(out.table.services.values().map(|s| s.dests.len()).sum::<usize>(), 21);
}

#[test]
fn examples_stay_in_the_documented_address_ranges() {
    use std::net::IpAddr;
    let out = desired_of(load(&[examples()]).unwrap());
    let in_prefix = |addr: IpAddr, net: IpAddr, len: u32| match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => u32::from(a) >> (32 - len) == u32::from(n) >> (32 - len),
        (IpAddr::V6(a), IpAddr::V6(n)) => u128::from(a) >> (128 - len) == u128::from(n) >> (128 - len),
        _ => false,
    };
    let net = |s: &str| s.parse::<IpAddr>().unwrap();
    for (key, service) in &out.table.services {
        if let crate::model::ServiceKey::Addr { addr, .. } = key {
            let documentation = in_prefix(*addr, net("192.0.2.0"), 24)
                || in_prefix(*addr, net("198.51.100.0"), 24)
                || in_prefix(*addr, net("203.0.113.0"), 24)
                || in_prefix(*addr, net("2001:db8::"), 32);
            assert!(documentation, "{key}: virtual IP outside the documentation ranges");
        }
        for dest in service.dests.keys() {
            let routed = in_prefix(dest.addr, net("10.0.0.0"), 16) || in_prefix(dest.addr, net("fd00::"), 64);
            assert!(routed, "{key}: backend {dest} outside 10.0.0.0/16 and fd00::/64 (see examples/README.md)");
        }
    }
}

/// What a load asks for, through the index every source uses.
fn desired_of(load: FileLoad) -> crate::source::DesiredOutcome {
    let mut index = ObjectIndex::new();
    index.reset(load.objects, load.errors);
    index.outcome()
}

fn vs(name: &str, last: u8, weight: u32) -> String {
    format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  address: 192.0.2.{last}\n  port: 80\n  backends: [{{address: 10.0.0.1, weight: {weight}}}]\n"
    )
}

#[test]
fn incremental_reload_matches_a_full_load_after_every_change() {
    let dir = dir_with(&[("a.yaml", &vs("a", 1, 1)), ("b.yaml", &vs("b", 2, 1)), ("c.yaml", "kind: Nope\n")]);
    let mut source = FileSource::new(vec![dir.path().to_owned()]);
    let mut index = ObjectIndex::new();
    let full = |dir: &TempDir| desired_of(load(&[dir.path()]).unwrap());
    let first = source.reload_into(&mut index).unwrap();
    assert_eq!((first.files_read, first.files, first.changed.len()), (3, 3, 2));
    assert_eq!(index.outcome(), full(&dir));

    // One file changes (same length, so only the times tell), one appears before the others, one goes.
    fs::write(dir.path().join("b.yaml"), vs("b", 2, 7)).unwrap();
    fs::write(dir.path().join("0.yaml"), vs("first", 1, 1)).unwrap();
    fs::remove_file(dir.path().join("c.yaml")).unwrap();
    let reload = source.reload_into(&mut index).unwrap();
    assert_eq!((reload.files_read, reload.files), (2, 3), "a.yaml was neither read nor parsed");
    // 192.0.2.1 passes to the new first file (older by load position), 192.0.2.2 has a new weight.
    assert_eq!(reload.changed.len(), 2, "{:?}", reload.changed);
    let outcome = index.outcome();
    assert_eq!(outcome, full(&dir));
    // The new first file is now the oldest claim on 192.0.2.1: ages follow load positions.
    assert_eq!(outcome.conflicts.len(), 1);
    let weight = |o: &crate::source::DesiredOutcome, last: u8| {
        let key = crate::model::ServiceKey::tcp(std::net::IpAddr::from([192, 0, 2, last]), 80);
        o.table.services[&key].dests.values().next().map(|d| d.config.weight)
    };
    assert_eq!(weight(&outcome, 2), Some(7));
    assert!(
        outcome
            .table
            .services
            .values()
            .any(|s| matches!(&s.origin, ObjectId::Document { path, index: 0, .. } if path.ends_with("0.yaml")))
    );
}

#[test]
fn incremental_reload_fails_whole_on_an_unreadable_path() {
    let dir = dir_with(&[("a.yaml", &vs("a", 1, 1))]);
    let mut source = FileSource::new(vec![dir.path().join("missing")]);
    assert!(source.reload_into(&mut ObjectIndex::new()).is_err());
}

#[test]
fn an_edit_reported_by_path_reads_that_file_only() {
    let dir = dir_with(&[("a.yaml", &vs("a", 1, 1)), ("b.yaml", &vs("b", 2, 1)), ("c.yaml", &vs("c", 3, 1))]);
    let mut source = FileSource::new(vec![dir.path().to_owned()]);
    let mut index = ObjectIndex::new();
    source.reload_into(&mut index).unwrap();
    let paths = |names: &[&str]| names.iter().map(|n| dir.path().join(n)).collect::<BTreeSet<_>>();

    fs::write(dir.path().join("b.yaml"), vs("b", 2, 9)).unwrap();
    // An editor's swap file and a backup, gone or not: nothing to list again.
    fs::write(dir.path().join(".b.yaml.swp"), "x").unwrap();
    let reload = source.reload_paths_into(&mut index, &paths(&["b.yaml", ".b.yaml.swp", "4913", "b.yaml~"])).unwrap();
    assert_eq!((reload.listed, reload.files_read, reload.changed.len()), (false, 1, 1));
    assert_eq!(index.outcome(), desired_of(load(&[dir.path()]).unwrap()));

    // Replaced by a rename (a new inode): still one file.
    fs::write(dir.path().join("tmp"), vs("c", 3, 4)).unwrap();
    fs::rename(dir.path().join("tmp"), dir.path().join("c.yaml")).unwrap();
    let reload = source.reload_paths_into(&mut index, &paths(&["tmp", "c.yaml"])).unwrap();
    assert_eq!((reload.listed, reload.files_read), (false, 1));
    assert_eq!(index.outcome(), desired_of(load(&[dir.path()]).unwrap()));
}

#[test]
fn new_removed_and_linked_files_list_the_directory_again() {
    let dir = dir_with(&[("a.yaml", &vs("a", 1, 1)), ("b.yaml", &vs("b", 2, 1))]);
    let mut source = FileSource::new(vec![dir.path().to_owned()]);
    let mut index = ObjectIndex::new();
    source.reload_into(&mut index).unwrap();
    let one = |name: &str| BTreeSet::from([dir.path().join(name)]);

    fs::write(dir.path().join("0.yaml"), vs("first", 1, 5)).unwrap();
    let reload = source.reload_paths_into(&mut index, &one("0.yaml")).unwrap();
    assert!(reload.listed, "a new file takes its place in the load order");
    assert_eq!(index.outcome(), desired_of(load(&[dir.path()]).unwrap()));

    fs::remove_file(dir.path().join("b.yaml")).unwrap();
    assert!(source.reload_paths_into(&mut index, &one("b.yaml")).unwrap().listed);
    assert_eq!(index.outcome(), desired_of(load(&[dir.path()]).unwrap()));

    // A ConfigMap volume swaps its hidden `..data` link: hidden, but a link, so the listing may change.
    std::os::unix::fs::symlink(dir.path(), dir.path().join("..data")).unwrap();
    assert!(source.reload_paths_into(&mut index, &one("..data")).unwrap().listed);
}

/// Read part by part, whatever the parts' size, a file gives the documents, identities, values and problems (with
/// their lines) it gives read whole.
#[test]
fn a_file_read_in_parts_reads_as_a_whole() {
    let bad_byte = {
        let mut bytes = format!("{WEB}---\n").into_bytes();
        bytes.extend_from_slice(b"metadata: {name: x}\nspec: {address: \xff}\n---\n");
        bytes.extend_from_slice(DNS.as_bytes());
        bytes
    };
    let files: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"# only a comment\n".to_vec(),
        format!("{WEB}---\n{DNS}---\n{WEB}").into_bytes(),
        format!("# header\n---\n{WEB}...\n%YAML 1.2\n---\n{DNS}---\na: [b\n---\n\u{feff}---\n{WEB}---\n").into_bytes(),
        bad_byte,
    ];
    let path = Path::new("m.yaml");
    fn collect(out: &mut Vec<String>) -> impl FnMut(usize, &ObjectId, Result<Value, ValidationError>) + '_ {
        move |index, id, value| out.push(format!("{index} {id} {:?}", value.map_err(|e| e.to_string())))
    }
    for bytes in files {
        let mut whole = Vec::new();
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => FileText::Text(text),
            Err(_) => FileText::Bytes(&bytes),
        };
        each_value(path, text, collect(&mut whole));
        for part in [0, 1, 10, 100, 1 << 20] {
            let mut parts = Vec::new();
            each_value_read_in(path, &bytes[..], part, collect(&mut parts)).unwrap();
            assert_eq!(parts, whole, "{} in parts of {part}", String::from_utf8_lossy(&bytes));
        }
    }
}

/// What a load gave when it read every file whole: each file's text parsed by [`collect`], fed by [`feed`].
fn read_whole(paths: &[&Path]) -> (FileLoad, crate::source::DesiredOutcome, Vec<ValidationError>) {
    let (mut whole, mut index, mut warnings) = (FileLoad::default(), ObjectIndex::new(), Vec::new());
    for (position, path) in expand(paths).unwrap().into_iter().enumerate() {
        let content = read_file(&path).unwrap();
        let parsed = collect(&path, position, content.text());
        whole.objects.extend(parsed.objects);
        whole.errors.extend(parsed.errors);
        whole.problems.extend(parsed.problems);
        whole.warnings.extend(parsed.warnings);
        whole.files.push(path.clone());
        feed(&mut index, (&path, position, &content), Vec::new(), &mut warnings);
    }
    (whole, index.outcome(), warnings)
}

/// Files larger than a part give `load`, `run`, `plan` and `apply` (the file source) the objects, problems, lines,
/// duplicates and warnings they gave read whole, whatever the parts' size.
#[test]
fn a_load_in_parts_gives_what_a_whole_read_gave() {
    let mut bytes = format!("{WEB}---\n{DNS}---\n").into_bytes();
    bytes.extend_from_slice(b"metadata: {name: x}\nspec: {address: \xff}\n---\n");
    bytes.extend_from_slice(format!("{}---\n---\na: [b\n---\n", vs("late", 7, 2)).as_bytes());
    let list =
        format!("apiVersion: v1\nkind: List\nitems:\n- {}\n", vs("listed", 8, 1).trim_end().replace('\n', "\n  "));
    let dir = dir_with(&[
        ("a.yaml", &format!("# header\n---\n{WEB}---\n{}---\n{}", vs("b", 3, 1), vs("c", 4, 1).replace("80", "x"))),
        ("c.yaml", &format!("{list}---\n{DNS}---\n{}", vs("b", 5, 1))),
        ("d.yaml", ""),
    ]);
    fs::write(dir.path().join("b.yaml"), &bytes).unwrap();
    let (whole, outcome, warnings) = read_whole(&[dir.path()]);
    assert!(!whole.errors.is_empty() && !whole.problems.is_empty() && !whole.warnings.is_empty(), "{whole:?}");
    assert!(!outcome.conflicts.is_empty() || !outcome.errors.is_empty(), "{outcome:?}");
    for part in [0, 1, 50, 200, PART] {
        assert_eq!(load_in(&[dir.path()], part).unwrap(), whole, "parts of {part}");
        let mut source = FileSource { part, ..FileSource::new(vec![dir.path().to_owned()]) };
        let mut index = ObjectIndex::new();
        let reload = source.reload_into(&mut index).unwrap();
        assert_eq!((index.outcome(), reload.warnings, reload.files_read), (outcome.clone(), warnings.clone(), 4));
        // A new file, and an empty file that gets documents, are read in parts too.
        fs::write(dir.path().join("e.yaml"), vs("e", 9, 1)).unwrap();
        fs::write(dir.path().join("d.yaml"), format!("{}---\n{WEB}", vs("d", 10, 1))).unwrap();
        source.reload_into(&mut index).unwrap();
        let now = read_whole(&[dir.path()]);
        assert_eq!(index.outcome(), now.1, "parts of {part}");
        fs::write(dir.path().join("d.yaml"), "").unwrap();
        fs::remove_file(dir.path().join("e.yaml")).unwrap();
        source.reload_into(&mut index).unwrap();
        assert_eq!(index.outcome(), outcome, "parts of {part}");
    }
}

/// Files read part by part are fed as they are read: when a later one cannot be read, what the earlier ones gave
/// is taken back, and a changed file read whole is not fed either.
#[test]
fn a_load_in_parts_that_fails_leaves_the_index_as_it_was() {
    let dir = dir_with(&[("a.yaml", &vs("a", 1, 1)), ("b.yaml", &vs("b", 2, 1))]);
    std::os::unix::fs::symlink(UNREADABLE_FILE, dir.path().join("z.yaml")).unwrap();
    let mut source = FileSource { part: 1, ..FileSource::new(vec![dir.path().to_owned()]) };
    let mut index = ObjectIndex::new();
    assert!(matches!(source.reload_into(&mut index), Err(LoadError::Read { .. })));
    assert!(index.is_empty() && index.table().services.is_empty(), "{:?}", index.outcome());

    fs::remove_file(dir.path().join("z.yaml")).unwrap();
    source.reload_into(&mut index).unwrap();
    let before = index.outcome();
    fs::write(dir.path().join("a.yaml"), vs("a", 1, 7)).unwrap();
    fs::write(dir.path().join("c.yaml"), vs("c", 3, 1)).unwrap();
    std::os::unix::fs::symlink(UNREADABLE_FILE, dir.path().join("z.yaml")).unwrap();
    assert!(matches!(source.reload_into(&mut index), Err(LoadError::Read { .. })));
    assert_eq!(index.outcome(), before, "a failed reload leaves the index as it was");
    fs::remove_file(dir.path().join("z.yaml")).unwrap();
    fs::write(dir.path().join("z.yaml"), "").unwrap();
    source.reload_into(&mut index).unwrap();
    assert_eq!(index.outcome(), read_whole(&[dir.path()]).1);

    // By path: a known file that gave nothing is read in parts, after the changed ones are read whole.
    let before = index.outcome();
    fs::write(dir.path().join("a.yaml"), vs("a", 1, 8)).unwrap();
    fs::remove_file(dir.path().join("z.yaml")).unwrap();
    std::os::unix::fs::symlink(UNREADABLE_FILE, dir.path().join("z.yaml")).unwrap();
    let paths = BTreeSet::from([dir.path().join("a.yaml"), dir.path().join("z.yaml")]);
    assert!(matches!(source.reload_paths_into(&mut index, &paths), Err(LoadError::Read { .. })));
    assert_eq!(index.outcome(), before, "a failed reload leaves the index as it was");
    fs::remove_file(dir.path().join("z.yaml")).unwrap();
    fs::write(dir.path().join("z.yaml"), vs("z", 26, 1)).unwrap();
    let reload = source.reload_paths_into(&mut index, &paths).unwrap();
    assert_eq!((reload.listed, reload.files_read), (false, 2));
    assert_eq!(index.outcome(), read_whole(&[dir.path()]).1);
}

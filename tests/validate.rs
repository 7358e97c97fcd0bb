//! `validate` as CI runs it: the manifests a cluster will receive (`--kubernetes`), from directories or from
//! standard input, with documents of other kinds beside ours.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn validate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler"))
        .arg("validate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_cluster_examples_pass_as_a_cluster_receives_them() {
    let examples = repo("deploy/examples");
    let out = validate(&["--kubernetes", "-f", examples.to_str().unwrap()], None);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.starts_with("2 valid VirtualService(s)"), "{summary}");
    assert!(summary.contains("2 valid VirtualServicePool(s); 0 error(s), 0 conflict(s)"), "{summary}");

    // As files for `run`, backendsFrom and nodeSelector need the agent: refused, as before.
    let out = validate(&["-f", examples.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("spec.backendsFrom: needs the Kubernetes agent"), "{}", text(&out.stderr));
}

#[test]
fn every_example_together_names_each_object_once() {
    // Applying examples/ and deploy/examples/ to one cluster must not replace one object by another.
    let (files, cluster) = (repo("examples"), repo("deploy/examples"));
    let out = validate(&["--kubernetes", "-f", files.to_str().unwrap(), "-f", cluster.to_str().unwrap()], None);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn the_install_directories_hold_only_other_kinds() {
    let (deploy, crds) = (repo("deploy"), repo("crds"));
    let out = validate(&["--kubernetes", "-f", deploy.to_str().unwrap(), "-f", crds.to_str().unwrap()], None);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.starts_with("0 valid VirtualService(s)"), "{summary}");
    assert!(summary.trim_end().ends_with("other document(s) skipped"), "{summary}");
}

#[test]
fn standard_input_is_read_and_other_kinds_beside_are_skipped() {
    let stream = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_owned(),
        std::fs::read_to_string(repo("deploy/examples/web-from-endpoints.yaml")).unwrap(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec: {}\n".to_owned(),
        std::fs::read_to_string(repo("deploy/examples/pools.yaml")).unwrap(),
    ]
    .join("---\n");
    let out = validate(&["--kubernetes", "-f", "-"], Some(&stream));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("1 valid VirtualService(s)"), "{summary}");
    assert!(summary.trim_end().ends_with("; 2 other document(s) skipped"), "{summary}");

    // A bad VirtualService among them is still an error, named by its place in the stream.
    let bad = stream.replace("port: 80\n", "port: 80000\n");
    let out = validate(&["--kubernetes", "-f", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: <stdin>#1 (default/web): spec.port: 80000 is out of range 0-65535"), "{stderr}");

    // Without --kubernetes, standard input is read as `run` reads a file.
    let file = "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: web}\nspec: {address: 192.0.2.1, port: 80}\n";
    let out = validate(&["-f", "-"], Some(file));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "1 valid service(s) with 0 backend(s); 0 error(s), 0 conflict(s)");
}

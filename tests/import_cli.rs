//! `import` as a user runs it: what goes to stdout, stderr and the output directory, and the exit codes (0
//! complete, 3 partial with the manifests still written, 1 an input that cannot be read), with every object the
//! import writes accepted by `validate`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler"))
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

/// `validate` of manifests on stdin: every object valid, and how many.
fn assert_valid(manifests: &str) -> usize {
    let out = run(&["validate", "-f", "-"], Some(manifests));
    assert!(out.status.success(), "{}{}\n{manifests}", text(&out.stdout), text(&out.stderr));
    manifests.matches("kind: VirtualService").count()
}

#[test]
fn keepalived_documentation_sample_is_partial_with_every_unmapped_item_named_and_the_rest_written() {
    let conf = repo("tests/fixtures/keepalived/samples/keepalived.conf");
    let out = run(&["import", "keepalived", conf.to_str().unwrap()], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "partial: {stderr}");
    assert!(assert_valid(&stdout) >= 3, "{stdout}");
    let place = format!("{}:", conf.display());
    let unmapped: Vec<&str> = stderr.lines().filter(|line| line.contains(": not mapped: ")).collect();
    assert!(unmapped.iter().all(|line| line.starts_with(&place)), "file:line on each: {unmapped:#?}");
    for item in ["MISC_CHECK", "digest", "a further url"] {
        assert!(unmapped.iter().any(|line| line.contains(item)), "{item} reported: {stderr}");
    }
    assert!(stderr.contains("bindAddress false"), "the VRRP VIP is left to VRRP: {stderr}");
    assert!(stdout.contains("bindAddress: false"), "{stdout}");
    assert!(stderr.contains("import is partial"), "{stderr}");
}

#[test]
fn keepalived_with_includes_writes_one_file_per_object_named_after_it_in_the_namespace() {
    let conf = repo("tests/fixtures/keepalived/includes/keepalived.conf");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("manifests");
    let out = run(&["import", "keepalived", conf.to_str().unwrap(), "-n", "lb", "-o", out_dir.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing on stdout with -o: {}", text(&out.stdout));
    let mut names: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(names.iter().all(|n| n.ends_with(".yaml") && !n.ends_with(".tmp")), "{names:?}");
    let manifests: Vec<String> = names
        .iter()
        .filter(|n| n.as_str() != "director.yaml")
        .map(|n| std::fs::read_to_string(out_dir.join(n)).unwrap())
        .collect();
    assert!(!manifests.is_empty());
    for (name, manifest) in names.iter().zip(&manifests) {
        assert!(manifest.contains("namespace: lb"), "{name}: {manifest}");
        let object = name.trim_end_matches(".yaml");
        assert!(manifest.contains(&format!("name: {object}\n")), "named after its file: {manifest}");
    }
    assert_eq!(assert_valid(&manifests.join("---\n")), manifests.len());
    assert!(!names.contains(&"director.yaml".to_owned()), "no director settings in this configuration");
}

#[test]
fn keepalived_director_settings_become_a_director_file_the_program_reads() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  lvs_timeouts tcp 7200 tcpfin 60 udp 30\n  lvs_sync_daemon eth1 VI_1 id 7\n}\n\
         vrrp_instance VI_1 {\n  state MASTER\n  interface eth1\n  virtual_router_id 51\n  priority 100\n\
         virtual_ipaddress {\n    192.0.2.10/24 dev eth1\n  }\n}\n\
         virtual_server 192.0.2.10 80 {\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("manifests");
    let out = run(&["import", "keepalived", conf.to_str().unwrap(), "-o", out_dir.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Beside the manifest directory, not in it: `run` reads every YAML file of the directory as a manifest.
    assert!(!out_dir.join("director.yaml").exists());
    let validated = run(&["validate", "-f", out_dir.to_str().unwrap()], None);
    assert!(validated.status.success(), "the directory holds manifests only: {}", text(&validated.stderr));
    let director = std::fs::read_to_string(dir.path().join("director.yaml")).unwrap();
    let config = ipvs_reconciler::director::DirectorConfig::parse(&director, "director.yaml").unwrap();
    assert_eq!((config.timeouts.tcp, config.timeouts.tcp_fin, config.timeouts.udp), (Some(7200), Some(60), Some(30)));
    assert_eq!(config.sync_daemons.len(), 1, "{director}");
    assert_eq!((config.sync_daemons[0].interface.as_str(), config.sync_daemons[0].sync_id), ("eth1", 7));
    let web = std::fs::read_to_string(out_dir.join("tcp-192-0-2-10-80.yaml")).unwrap();
    assert!(web.contains("bindAddress: false"), "VRRP's address: {web}");
    assert!(text(&out.stderr).contains("VI_1"), "the VRRP instance is noted: {}", text(&out.stderr));

    // An existing director.yaml is never replaced by default: refused before anything is written.
    let again = dir.path().join("manifests-again");
    let out = run(&["import", "keepalived", conf.to_str().unwrap(), "-o", again.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!again.exists(), "nothing written");
    assert!(text(&out.stderr).contains("--director-output"), "{}", text(&out.stderr));
    let chosen = dir.path().join("chosen.yaml");
    let out =
        run(&["import", "keepalived", conf.to_str().unwrap(), "--director-output", chosen.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kind: VirtualService"), "manifests on stdout");
    assert!(ipvs_reconciler::director::DirectorConfig::parse(&std::fs::read_to_string(&chosen).unwrap(), "c").is_ok());
}

#[test]
fn a_malformed_keepalived_conf_is_an_error_naming_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(
        &conf,
        "virtual_server 192.0.2.1 80 {\n  lvs_sched rr\n  real_server 10.0.0.1 80 {\n    weight x\n  }\n}\n",
    )
    .unwrap();
    let out = run(&["import", "keepalived", conf.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{}:4", conf.display())), "{stderr}");

    std::fs::write(&conf, "virtual_server 192.0.2.1 80 {\n  lvs_sched rr\n").unwrap();
    let out = run(&["import", "keepalived", conf.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "an unclosed block: {}", text(&out.stderr));
    let missing = run(&["import", "keepalived", dir.path().join("none.conf").to_str().unwrap()], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("none.conf"), "{}", text(&missing.stderr));
}

#[test]
fn ipvsadm_rules_from_stdin_import_and_names_are_refused() {
    let rules = "-A -t 192.0.2.10:80 -s wlc -p 300\n-a -t 192.0.2.10:80 -r 10.0.0.1:8080 -m -w 3\n\
                 -A -u [2001:db8::10]:53 -s rr\n-a -u [2001:db8::10]:53 -r [2001:db8::1]:53 -m -w 1\n\
                 -A -f 42 -s sh -b sh-port\n-a -f 42 -r 10.0.0.3:0 -g -w 1\n";
    let out = run(&["import", "ipvsadm", "-"], Some(rules));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(assert_valid(&stdout), 3, "{stdout}");
    for name in ["name: tcp-192-0-2-10-80", "name: udp-2001-db8--10-53", "name: fwm-42"] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
    assert!(text(&out.stderr).contains("thresholds"), "the -S limitation is said: {}", text(&out.stderr));

    let out = run(&["import", "ipvsadm"], Some("-A -t www.example.com:http -s wlc\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("ipvsadm -Sn"), "{}", text(&out.stderr));
}

//! deploy/systemd/ipvs-reconciler.service works as installed: modprobe can load ip_vs although the service's
//! bounding set has only CAP_NET_ADMIN, `ipvs-reconciler status` finds the service's `--listen` without flags, and
//! the directories the command line names are made by systemd. With systemd-analyze on the machine, the unit also
//! passes `systemd-analyze verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use ipvs_reconciler::cli::Cli;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/ipvs-reconciler.service")
}

/// The unit's settings: (section, key) to its values in order (a key may be repeated).
fn parse(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut settings: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        assert!(!line.ends_with('\\'), "continued lines are not read by this test: {line}");
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        settings.entry((section.clone(), key.trim().to_owned())).or_default().push(value.trim().to_owned());
    }
    settings
}

fn service<'a>(settings: &'a BTreeMap<(String, String), Vec<String>>, key: &str) -> &'a [String] {
    settings.get(&("Service".to_owned(), key.to_owned())).map(Vec::as_slice).unwrap_or_default()
}

/// An Exec line's special prefixes (`-`, `@`, `:`, `+`, `!`, `!!`) and its words.
fn command(line: &str) -> (String, Vec<String>) {
    let prefix: String = line.chars().take_while(|c| "-@:+!".contains(*c)).collect();
    let words = line[prefix.len()..].split_whitespace().map(str::to_owned).collect();
    (prefix, words)
}

fn flag<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    words.iter().position(|w| w == name).and_then(|i| words.get(i + 1)).map(String::as_str)
}

#[test]
fn modprobe_runs_with_full_privileges_when_the_bounding_set_lacks_cap_sys_module() {
    let settings = parse(&std::fs::read_to_string(unit_path()).unwrap());
    let bounding = service(&settings, "CapabilityBoundingSet").join(" ");
    assert!(bounding.contains("CAP_NET_ADMIN"), "{bounding}");
    let may_load_modules = bounding.is_empty() || bounding.contains("CAP_SYS_MODULE");
    let mut modprobes = 0;
    for key in ["ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload"] {
        for line in service(&settings, key) {
            let (prefix, words) = command(line);
            if words.first().is_some_and(|w| w.ends_with("/modprobe") || w == "modprobe") {
                modprobes += 1;
                assert!(
                    may_load_modules || prefix.contains('+'),
                    "{key}={line}: without CAP_SYS_MODULE in the bounding set, modprobe needs the + prefix"
                );
                assert!(!prefix.contains('-'), "{key}={line}: a failed load must stop the start, with its message");
                assert!(words.iter().any(|w| w == "ip_vs"), "{key}={line}");
            }
        }
    }
    assert_eq!(modprobes, 1, "ip_vs is loaded before the start (kernels before 5.16 do not load it on access)");
}

#[test]
fn status_finds_the_listen_address_and_the_directories_are_made() {
    let settings = parse(&std::fs::read_to_string(unit_path()).unwrap());
    let [start] = service(&settings, "ExecStart") else { panic!("one ExecStart") };
    let (_, words) = command(start);
    assert_eq!(words[0], "/usr/local/bin/ipvs-reconciler", "where the README's install steps put it");
    assert_eq!(words[1], "run");

    // `ipvs-reconciler status` with no flag asks its --url default: the unit must listen there.
    let cli = Cli::command();
    let status = cli.get_subcommands().find(|c| c.get_name() == "status").unwrap();
    let url = status.get_arguments().find(|a| a.get_id() == "url").unwrap().get_default_values()[0].to_str().unwrap();
    let listen = flag(&words, "--listen").expect("--listen: without it `status` is refused");
    assert_eq!(format!("http://{listen}"), url.trim_end_matches('/'));
    assert!(listen.starts_with("127.0.0.1:"), "metrics and /status stay on loopback: {listen}");

    // Every directory the command line names is made by systemd (ConfigurationDirectory= under /etc,
    // StateDirectory= under /var/lib), which also keeps the state writable under ProtectSystem=strict.
    let made = |key: &str, base: &str| -> Vec<PathBuf> {
        service(&settings, key).iter().flat_map(|v| v.split_whitespace()).map(|d| Path::new(base).join(d)).collect()
    };
    let configuration = made("ConfigurationDirectory", "/etc");
    let state = made("StateDirectory", "/var/lib");
    let manifests = Path::new(flag(&words, "--manifests").unwrap());
    assert!(configuration.iter().any(|d| d == manifests), "{manifests:?} not made by {configuration:?}");
    let state_file = Path::new(flag(&words, "--state").unwrap());
    assert!(state.iter().any(|d| Some(d.as_path()) == state_file.parent()), "{state_file:?} not in {state:?}");
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze not installed: the unit is checked by the parsing tests only");
        return;
    };
    // verify requires every command to exist: the unit with this build's binary in place of the installed one.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit_path())
        .unwrap()
        .replace("/usr/local/bin/ipvs-reconciler", env!("CARGO_BIN_EXE_ipvs-reconciler"));
    let copy = dir.path().join("ipvs-reconciler.service");
    std::fs::write(&copy, text).unwrap();
    // --man=no: the man page of Documentation= is installed by the README's steps, not on a build machine.
    let out = std::process::Command::new(analyze).args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).ok_or(())
}

//! `--log-format json`: every log line is one JSON object (for log pipelines); text stays the default.

use std::process::Command;

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    // An empty document is skipped with a warning: a log line.
    std::fs::write(dir.path().join("empty.yaml"), "---\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler"))
        .args(["--log-format", "json", "validate", "-f"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log line: {stderr}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(value["level"], "WARN", "{line}");
        assert!(value["fields"]["message"].as_str().unwrap().contains("empty document"), "{line}");
    }
    let text =
        Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler")).args(["validate", "-f"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&text.stderr);
    assert!(text.contains("WARN") && !text.trim_start().starts_with('{'), "{text}");
}

/// The binary with stderr to a file (not a terminal), as under systemd or a container runtime.
fn stderr_to_file(args: &[&str]) -> (std::process::ExitStatus, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .status()
        .unwrap();
    (status, std::fs::read(&path).unwrap())
}

/// A directory that does not exist, and a state file nowhere near the host's: whatever `run` stops on (no IPVS
/// here, or the missing directory where there is), it stops before changing anything.
fn run_args(dir: &std::path::Path) -> Vec<String> {
    let missing = dir.join("no-such-manifests");
    let state = dir.join("state.json");
    ["run", "--manifests", missing.to_str().unwrap(), "--state", state.to_str().unwrap()].map(str::to_owned).to_vec()
}

#[test]
fn a_log_written_to_a_file_has_no_escape_byte() {
    let dir = tempfile::tempdir().unwrap();
    // A warning (an empty document), an error line, and a file name carrying an escape sequence of its own.
    std::fs::write(dir.path().join("empty.yaml"), "---\n").unwrap();
    std::fs::write(dir.path().join("colour\x1b[31m.yaml"), "---\n").unwrap();
    let manifests = dir.path().to_str().unwrap();
    let (_, validate) = stderr_to_file(&["validate", "-f", manifests]);
    let text = String::from_utf8_lossy(&validate);
    assert!(text.contains("WARN"), "the test needs a log line: {text}");
    assert!(!validate.contains(&0x1b), "escape byte in {text:?}");

    let run: Vec<String> = run_args(dir.path());
    let (status, run) = stderr_to_file(&run.iter().map(String::as_str).collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&run);
    assert!(!status.success(), "{text}");
    assert!(text.contains("INFO") && text.contains("ipvs-reconciler: "), "a start line and the fatal error: {text}");
    assert!(!run.contains(&0x1b), "escape byte in {text:?}");
}

#[test]
fn the_first_line_of_run_names_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let run: Vec<String> = run_args(dir.path());
    let (_, log) = stderr_to_file(&run.iter().map(String::as_str).collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&log);
    let first = text.lines().next().unwrap_or_default();
    let version = concat!("ipvs-reconciler ", env!("CARGO_PKG_VERSION"));
    assert!(first.contains(version) && first.contains("starting"), "first line {first:?} of {text}");
}

#[test]
fn the_fatal_error_is_one_json_line_under_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--log-format".to_owned(), "json".to_owned()];
    args.extend(run_args(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, log) = stderr_to_file(&args);
    let text = String::from_utf8_lossy(&log);
    assert!(!status.success(), "{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines[0]["fields"]["message"].as_str().unwrap().contains("starting"), "{text}");
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{text}");
    assert!(!last["fields"]["message"].as_str().unwrap().is_empty(), "{text}");

    // Even with every log silenced, the reason for exiting is written, as JSON.
    let out = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler")).args(&args).env("RUST_LOG", "off").output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(value["level"], "ERROR", "{text}");
}

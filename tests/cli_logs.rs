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

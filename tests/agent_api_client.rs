//! The agent's API client on a host without a CA bundle: an `http://` API needs none, an `https://` one without a
//! certificate authority in its kubeconfig fails and says why. The agent is pointed at a network namespace that
//! does not exist, so that once past its client it stops at once, on any host (the VM test `agent.rs` runs it for
//! real with no CA bundle).

use std::path::Path;
use std::process::Command;

fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join(format!("kubeconfig-{}", if server.starts_with("https") { "https" } else { "http" }));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- {{name: c, cluster: {{server: \"{server}\"}}}}\ncontexts:\n\
         - {{name: x, context: {{cluster: c, user: u}}}}\ncurrent-context: x\nusers:\n- {{name: u, user: {{}}}}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The agent's stderr with `server` as its API and no CA certificate anywhere it could look.
fn agent_without_ca_bundle(server: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let empty_file = dir.path().join("empty.pem");
    std::fs::write(&empty_file, "").unwrap();
    let empty_dir = dir.path().join("certs");
    std::fs::create_dir(&empty_dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler"))
        .args(["--netns", "/nonexistent/netns", "agent", "--listen", "127.0.0.1:0", "--state"])
        .arg(dir.path().join("state.json"))
        .env_clear()
        .env("KUBECONFIG", kubeconfig(dir.path(), server))
        .env("SSL_CERT_FILE", &empty_file)
        .env("SSL_CERT_DIR", &empty_dir)
        .env("NODE_NAME", "n1")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the namespace does not exist");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_http_api_needs_no_ca_bundle() {
    let stderr = agent_without_ca_bundle("http://127.0.0.1:9");
    assert!(!stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("/nonexistent/netns"), "past the API client, stopped at the namespace: {stderr}");
}

#[test]
fn an_https_api_without_any_ca_says_which_is_missing() {
    let stderr = agent_without_ca_bundle("https://127.0.0.1:9");
    assert!(stderr.contains("names no certificate authority"), "{stderr}");
    assert!(stderr.contains("SSL_CERT_FILE"), "{stderr}");
}

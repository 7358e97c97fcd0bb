//! The agent's Kubernetes client, from the kubeconfig or the in-cluster service account (as `kubectl`).
//!
//! kube builds a TLS client configuration whatever the API's scheme, and with no certificate authority in the
//! configuration it loads the system's CA bundle for it, failing where there is none (a minimal VM, a distroless
//! host). An `http://` API never uses that configuration, so there it gets an empty trust store instead: nothing is
//! read, and a TLS connection made with it (there is none) would trust nothing. An `https://` API still needs a CA,
//! from the kubeconfig or the system, and its absence stays an error that says so.

use anyhow::{Context, Result};

/// Where the configuration comes from, for messages.
const SOURCES: &str = "KUBECONFIG, ~/.kube/config, or the in-cluster service account";

/// A client for the API server the environment names.
pub async fn api_client() -> Result<kube::Client> {
    let config =
        kube::Config::infer().await.with_context(|| format!("reading the Kubernetes API configuration ({SOURCES})"))?;
    client_for(config)
}

/// A client for `config`, reading the system's CA bundle only when an `https://` connection may need it.
pub fn client_for(mut config: kube::Config) -> Result<kube::Client> {
    let url = config.cluster_url.to_string();
    let needs_roots = needs_system_roots(&config);
    if !tls_needed(&config) && config.root_cert.is_none() {
        config.root_cert = Some(Vec::new());
        // The in-cluster CA file (re-read on rotation) is for an https API only.
        config.root_cert_file = None;
    }
    kube::Client::try_from(config).with_context(|| {
        if needs_roots {
            format!(
                "connecting to the Kubernetes API at {url}: the configuration names no certificate authority, so \
                 the system's CA bundle is needed (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs)"
            )
        } else {
            format!("connecting to the Kubernetes API at {url} ({SOURCES})")
        }
    })
}

/// Whether some connection the client makes may be TLS: an `https://` API, or an `https://` proxy in front of it.
fn tls_needed(config: &kube::Config) -> bool {
    let https = |scheme: Option<&str>| scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"));
    https(config.cluster_url.scheme_str()) || config.proxy_url.as_ref().is_some_and(|p| https(p.scheme_str()))
}

/// Whether building the client reads the system's CA bundle: TLS with no certificate authority configured and
/// verification on.
fn needs_system_roots(config: &kube::Config) -> bool {
    tls_needed(config) && config.root_cert.is_none() && !config.accept_invalid_certs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> kube::Config {
        kube::Config::new(url.parse().unwrap())
    }

    #[test]
    fn only_https_needs_tls() {
        assert!(!tls_needed(&config("http://127.0.0.1:8080")));
        assert!(tls_needed(&config("https://10.96.0.1")));
        assert!(tls_needed(&config("HTTPS://10.96.0.1")));
        let mut proxied = config("http://10.0.0.1:8080");
        proxied.proxy_url = Some("https://proxy:3128".parse().unwrap());
        assert!(tls_needed(&proxied), "an https proxy is a TLS connection");
    }

    #[test]
    fn system_roots_are_needed_only_without_a_ca_and_with_verification() {
        assert!(needs_system_roots(&config("https://10.96.0.1")));
        let mut with_ca = config("https://10.96.0.1");
        with_ca.root_cert = Some(vec![vec![1]]);
        assert!(!needs_system_roots(&with_ca));
        let mut insecure = config("https://10.96.0.1");
        insecure.accept_invalid_certs = true;
        assert!(!needs_system_roots(&insecure));
        assert!(!needs_system_roots(&config("http://127.0.0.1:8080")));
    }
}

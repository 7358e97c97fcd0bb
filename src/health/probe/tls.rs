//! TLS for HTTPS probes: rustls with the ring provider (the one kube already brings), two client configurations
//! built once per [`super::Prober`]: one verifying against a trust store, one accepting any certificate. The
//! provider is passed explicitly; nothing here installs a process-wide default.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::health::error::ProbeError;

/// The ALPN protocol offered: the HTTP probe speaks HTTP/1.1 only.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The two client configurations. A configuration that could not be built (the provider offers no usable protocol
/// version, which the ring provider always does) is kept as its error, so that HTTPS probes fail with it instead of
/// the prober failing to start.
pub(super) struct TlsConfigs {
    verified: Result<Arc<ClientConfig>, String>,
    insecure: Result<Arc<ClientConfig>, String>,
}

impl TlsConfigs {
    pub(super) fn new(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        let insecure = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map(
            |builder| {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                        algorithms: provider.signature_verification_algorithms,
                    }))
                    .with_no_client_auth()
            },
        );
        TlsConfigs {
            verified: verified.map(finish).map_err(|e| e.to_string()),
            insecure: insecure.map(finish).map_err(|e| e.to_string()),
        }
    }

    /// The TLS handshake over `stream`, `server_name` sent as SNI (when it is a DNS name) and verified against the
    /// certificate unless `insecure`.
    pub(super) async fn connect(
        &self,
        stream: TcpStream,
        server_name: ServerName<'static>,
        insecure: bool,
    ) -> Result<TlsStream<TcpStream>, ProbeError> {
        let config = if insecure { &self.insecure } else { &self.verified };
        let config = config.as_ref().map_err(|err| ProbeError::Tls(format!("client configuration: {err}")))?;
        TlsConnector::from(config.clone()).connect(server_name, stream).await.map_err(|err| {
            // tokio-rustls reports rustls's own errors (certificate, alert, protocol) inside an io::Error; their
            // text is what an operator needs ("invalid peer certificate: UnknownIssuer").
            match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(tls) => ProbeError::Tls(tls.to_string()),
                None => ProbeError::Tls(format!("handshake: {err}")),
            }
        })
    }
}

/// What both configurations share: ALPN for HTTP/1.1, and no session resumption. A resumed session skips the
/// certificate, and a check must see the certificate a new client gets: an expired or replaced certificate fails
/// the next probe, not the first one after the session ticket runs out.
fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// The node's trust store. Certificates that do not parse are skipped (and logged): one bad file in the CA
/// directory must not leave every verified probe failing.
pub(super) fn native_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for err in &loaded.errors {
        tracing::warn!(error = %err, "health checks: reading the system's CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "health checks: some system CA certificates do not parse and are not trusted");
    }
    if added == 0 {
        tracing::warn!("health checks: no system CA certificate found; verified HTTPS checks will fail");
    }
    roots
}

/// The name an HTTPS probe sends as SNI and verifies: the configured `server_name`, else the host of the `Host`
/// header, else the target's address (rustls sends no SNI for an address and checks the certificate's IP SANs).
pub(super) fn server_name(
    configured: Option<&str>,
    host_header: Option<&str>,
    target: SocketAddr,
) -> Result<ServerName<'static>, ProbeError> {
    let name = match (configured, host_header) {
        (Some(name), _) => name.to_owned(),
        (None, Some(host)) => host_of(host),
        (None, None) => return Ok(ServerName::IpAddress(target.ip().into())),
    };
    ServerName::try_from(name.clone())
        .map_err(|err| ProbeError::InvalidCheck(format!("TLS server name {name:?}: {err}")))
}

/// `host` of `host[:port]`, brackets removed from an IPv6 literal.
fn host_of(authority: &str) -> String {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
        _ => authority.to_owned(),
    }
}

/// `insecureSkipVerify`: any certificate chain is accepted, but the handshake still checks the server's signature
/// with the certificate's key, so the check still exercises a full handshake with a server that holds its key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_ports_and_brackets() {
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("example.com:8443"), "example.com");
        assert_eq!(host_of("10.0.0.1:443"), "10.0.0.1");
        assert_eq!(host_of("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(host_of("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(host_of("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn server_name_prefers_configured_then_host_then_address() {
        let target: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(
            server_name(Some("svc.example"), Some("other.example"), target).unwrap(),
            ServerName::try_from("svc.example").unwrap()
        );
        assert_eq!(
            server_name(None, Some("other.example:8443"), target).unwrap(),
            ServerName::try_from("other.example").unwrap()
        );
        assert_eq!(server_name(None, None, target).unwrap(), ServerName::IpAddress(target.ip().into()));
        assert!(matches!(server_name(Some("bad name!"), None, target), Err(ProbeError::InvalidCheck(_))));
    }
}

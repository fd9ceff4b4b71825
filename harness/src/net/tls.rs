//! TLS for `https://` targets (rustls): a staging server behind a TLS
//! terminator is checked and hunted as it is deployed. The server's
//! certificate is verified against Mozilla's roots (webpki-roots, compiled in:
//! no system store needed) and any CA certificates given with `--ca-cert`
//! (a self-signed test certificate is its own CA). Verification is never
//! switched off: a verdict about a server the harness could not authenticate
//! would be about whoever answered.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Largest CA file read (a bundle of a few hundred certificates fits).
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// How to speak TLS to one server: the roots that may vouch for it and the
/// name its certificate must carry.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    /// The extra CA certificates as given (PEM), for clients built on other
    /// TLS stacks (rust_socketio's native-tls).
    extra_ca_pem: Option<Arc<[u8]>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("name", &self.name)
            .field("extra_ca", &self.extra_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Why TLS cannot be set up (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The host is not a DNS name or IP address a certificate can name.
    #[error("'{host}' cannot be checked against a certificate: {reason}")]
    Name {
        /// As given.
        host: String,
        /// Why not.
        reason: String,
    },
    /// The CA file could not be read or holds no usable certificate.
    #[error("--ca-cert {path}: {reason}")]
    CaFile {
        /// As given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Tls {
    /// TLS to `host`, trusting Mozilla's roots and the PEM certificates in
    /// `ca_file` (its path, for messages, and its bytes).
    pub fn new(host: &str, ca_file: Option<(&str, &[u8])>) -> Result<Self, TlsError> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| TlsError::Name {
            host: host.to_owned(),
            reason: e.to_string(),
        })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some((path, pem)) = ca_file {
            let bad = |reason: String| TlsError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("no CERTIFICATE block in it".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Name {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            name,
            extra_ca_pem: ca_file.map(|(_, pem)| Arc::from(pem)),
        })
    }

    /// Reads `path` (capped) and sets up TLS to `host` with it.
    pub fn with_ca_file(host: &str, path: &std::path::Path) -> Result<Self, TlsError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let bad = |reason: String| TlsError::CaFile {
            path: shown.clone(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut pem = Vec::new();
        file.take(MAX_CA_FILE_BYTES + 1)
            .read_to_end(&mut pem)
            .map_err(|e| bad(e.to_string()))?;
        if pem.len() as u64 > MAX_CA_FILE_BYTES {
            return Err(bad(format!("larger than {MAX_CA_FILE_BYTES} bytes")));
        }
        Self::new(host, Some((&shown, &pem)))
    }

    /// The TLS handshake over `stream`.
    pub async fn handshake(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(self.name.clone(), stream)
            .await
    }

    /// The CA certificates given with `--ca-cert`, as PEM.
    pub fn extra_ca_pem(&self) -> Option<&[u8]> {
        self.extra_ca_pem.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_by_name() {
        let e = Tls::new("localhost", Some(("ca.pem", b"hello"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--ca-cert ca.pem: no CERTIFICATE block in it"
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
        let e = Tls::new("localhost", Some(("ca.pem", garbage))).unwrap_err();
        assert!(e.to_string().starts_with("--ca-cert ca.pem: "), "{e}");
    }

    #[test]
    fn names_and_addresses_are_accepted_as_certificate_names() {
        for host in ["localhost", "chat.example.com", "127.0.0.1", "::1"] {
            Tls::new(host, None).unwrap();
        }
        assert!(Tls::new("not a name", None).is_err());
    }
}

//! The server a check, a live hunt or a replay points at: its URL, the
//! address it resolves to, and how it is deployed (TLS, where Socket.IO is
//! mounted), as the connectors that reach it need them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::CheckError;
use crate::net::tls::Tls;
use crate::net::transport::{TcpConnector, SOCKETIO_PATH};

/// How a deployment differs from the contract's plain `http://HOST:PORT` with
/// Socket.IO at `/socket.io/` (the `--path` and `--ca-cert` options), and how
/// it is restarted (`--restart-cmd`).
#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// Where Socket.IO is mounted (`--path`), e.g. `/chat/socket.io/`.
    pub socketio_path: Option<String>,
    /// CA certificates (PEM) that may vouch for an `https://` server besides
    /// Mozilla's roots: a self-signed test certificate is its own CA.
    pub ca_cert: Option<PathBuf>,
    /// How to restart the server, for scenarios that restart it.
    pub restart: Option<super::RestartCommand>,
    /// Each node's own URL (`--node`), for a deployment of several nodes
    /// behind the public URL (`--level cluster`): users are placed on chosen
    /// nodes through them.
    pub nodes: Vec<String>,
    /// A command that kills one node without a word (`--kill-node-cmd`, run
    /// with `sh -c`, the node's URL as `$1`), for N3.
    pub kill_node: Option<String>,
    /// Commands that cut the last node off from the shared state and heal it
    /// (`--adapter-cut-cmd`, `--adapter-heal-cmd`, the node's URL as `$1`),
    /// for N4.
    pub adapter: Option<(String, String)>,
}

impl Reach {
    /// The options after the URL that reach the server again (`--path`,
    /// `--ca-cert`, `--restart-cmd`), for the lines that rerun a command;
    /// empty by default.
    pub fn flags(&self) -> String {
        let mut flags = String::new();
        if let Some(path) = &self.socketio_path {
            flags.push_str(&format!(" --path {path}"));
        }
        if let Some(ca) = &self.ca_cert {
            flags.push_str(&format!(" --ca-cert {}", ca.display()));
        }
        if let Some(restart) = &self.restart {
            flags.push_str(&restart.flags());
        }
        for node in &self.nodes {
            flags.push_str(&format!(" --node {node}"));
        }
        if let Some(kill) = &self.kill_node {
            flags.push_str(&format!(
                " --kill-node-cmd {}",
                super::restart::quoted(kill)
            ));
        }
        if let Some((cut, heal)) = &self.adapter {
            flags.push_str(&format!(
                " --adapter-cut-cmd {} --adapter-heal-cmd {}",
                super::restart::quoted(cut),
                super::restart::quoted(heal)
            ));
        }
        flags
    }
}

/// A server to check: its URL as given, the address it resolved to, and how
/// to reach it.
#[derive(Clone, Debug)]
pub struct Target {
    /// As given on the command line.
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// `host[:port]` from the URL: the `Host` header, so a server behind a
    /// proxy that routes by name is reached.
    pub authority: String,
    /// TLS, for `https://`.
    pub tls: Option<Tls>,
    /// How it was reached, for the lines that rerun a command.
    pub reach: Reach,
}

impl Target {
    /// Parses `http://HOST[:PORT][/]` or `https://…` and resolves the host.
    pub async fn resolve(url: &str) -> Result<Self, CheckError> {
        Self::resolve_with(url, &Reach::default()).await
    }

    /// As [`Target::resolve`], with Socket.IO mounted elsewhere or a CA of
    /// the deployment's own.
    pub async fn resolve_with(url: &str, reach: &Reach) -> Result<Self, CheckError> {
        let bad = |reason: &str| CheckError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let secure = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(bad(&format!("scheme '{other}' is not supported"))),
            None => return Err(bad("no scheme")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "the server's root URL has no path or query (Socket.IO mounted elsewhere: --path)",
            ));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(CheckError::BadUrl {
                url: "(a URL with user:password@, not echoed)".into(),
                reason: "credentials in the URL are not supported".into(),
            });
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // `Uri::port` is None both for no port and for one out of range.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let port_text = authority
            .rsplit_once(':')
            .filter(|(_, tail)| !tail.contains(']'))
            .map(|(_, tail)| tail);
        let port = match port_text {
            None | Some("") if secure => 443,
            None | Some("") => 80,
            Some(text) => match text.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(bad(&format!("port {text} is not a TCP port (1 to 65535)")))
                }
                Ok(port) => port,
            },
        };
        if let Some(path) = &reach.socketio_path {
            check_socketio_path(path).map_err(|reason| CheckError::BadUrl {
                url: url.to_owned(),
                reason: format!("--path {path:?}: {reason}"),
            })?;
        }
        let tls = match (secure, &reach.ca_cert) {
            (false, None) => None,
            (false, Some(_)) => return Err(bad("--ca-cert is for https:// servers")),
            (true, None) => Some(Tls::new(host, None)),
            (true, Some(path)) => Some(Tls::with_ca_file(host, path)),
        }
        .transpose()
        .map_err(|e| CheckError::Tls {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| CheckError::Unreachable {
                url: url.to_owned(),
                reason: format!("cannot resolve {host}: {e}"),
            })?
            .next()
            .ok_or_else(|| CheckError::Unreachable {
                url: url.to_owned(),
                reason: format!("{host} resolves to no address"),
            })?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            authority: authority.to_owned(),
            tls,
            reach: reach.clone(),
        })
    }

    /// A connector to the server ([`TcpConnector::via`] for one through a
    /// fault proxy).
    pub fn connector(&self) -> TcpConnector {
        TcpConnector {
            addr: self.addr,
            authority: Some(Arc::from(self.authority.as_str())),
            tls: self.tls.clone(),
            socketio_path: self.reach.socketio_path.as_deref().map(Arc::from),
        }
    }

    /// Where Socket.IO is mounted on this server.
    pub fn socketio_path(&self) -> &str {
        self.reach.socketio_path.as_deref().unwrap_or(SOCKETIO_PATH)
    }
}
/// A Socket.IO mount point: an absolute path ending in `/`, without query,
/// fragment, or anything a request line cannot carry.
fn check_socketio_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || !path.ends_with('/') {
        return Err("must start and end with '/', as /socket.io/ does".into());
    }
    if path.len() > 256 {
        return Err("longer than 256 bytes".into());
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:@".contains(*c)))
    {
        return Err(format!("{c:?} cannot appear in a URL path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_defaults_to_port_443_and_keeps_the_name_for_host() {
        let target = Target::resolve("https://localhost").await.unwrap();
        assert_eq!(target.addr.port(), 443);
        assert_eq!(target.authority, "localhost");
        assert!(target.tls.is_some());
        let plain = Target::resolve("http://localhost:8000/").await.unwrap();
        assert_eq!(plain.addr.port(), 8000);
        assert!(plain.tls.is_none());
        assert_eq!(
            plain.connector().authority.as_deref(),
            Some("localhost:8000")
        );
    }

    #[tokio::test]
    async fn bad_paths_and_misplaced_certificates_are_usage_errors() {
        for path in ["socket.io/", "/socket.io", "/a b/", "/x?y/"] {
            let reach = Reach {
                socketio_path: Some(path.into()),
                ..Reach::default()
            };
            let e = Target::resolve_with("http://127.0.0.1:1", &reach)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("--path"), "{path}: {e}");
        }
        let reach = Reach {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..Reach::default()
        };
        let e = Target::resolve_with("http://127.0.0.1:1", &reach)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--ca-cert is for https://"), "{e}");
        let e = Target::resolve_with("https://127.0.0.1:1", &reach)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = Target::resolve("http://127.0.0.1:1/chat")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--path"), "{e}");
    }
}

//! The byte pipes under the reference client: a [`Connector`] that opens TCP
//! streams (turmoil's or tokio's), one-shot and kept-alive HTTP/1.1 requests over them (hyper),
//! and WebSocket sessions over them (tokio-tungstenite). Nothing here knows about
//! Socket.IO.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;
use tokio_util::either::Either;

use super::tls::Tls;

/// Opens TCP connections to the server under test. One implementation per
/// network: turmoil's simulated TCP and real tokio TCP, so the same client code
/// runs on both.
pub trait Connector: Clone + Send + Sync + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Opens a connection.
    fn connect(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// `host:port` for `Host` headers and URLs.
    fn authority(&self) -> String;
    /// Where the server mounts Socket.IO (T1's `/socket.io/` unless a
    /// deployment moved it): requests under `/socket.io/` go there.
    fn socketio_path(&self) -> &str {
        SOCKETIO_PATH
    }
}

/// Socket.IO's path in the contract (T1).
pub const SOCKETIO_PATH: &str = "/socket.io/";

/// Connects over turmoil's simulated network to `host:port`.
#[derive(Clone, Debug)]
pub struct SimConnector {
    /// Turmoil host name of the server.
    pub host: String,
    /// Server port.
    pub port: u16,
}

impl Connector for SimConnector {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect((self.host.as_str(), self.port)).await
    }
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Connects over real TCP, to the server or to a fault proxy in front of it;
/// with TLS for an `https://` target (through a proxy too: the proxy moves
/// bytes, the TLS session is the server's).
#[derive(Clone, Debug)]
pub struct TcpConnector {
    /// Where to connect: the server, or a proxy in front of it.
    pub addr: std::net::SocketAddr,
    /// `host[:port]` the server answers to (the `Host` header); `None`: `addr`.
    pub authority: Option<Arc<str>>,
    /// TLS to the server, for `https://`.
    pub tls: Option<Tls>,
    /// Where the server mounts Socket.IO; `None`: the contract's `/socket.io/`.
    pub socketio_path: Option<Arc<str>>,
}

impl TcpConnector {
    /// Plain TCP to `addr`, Socket.IO at `/socket.io/`.
    pub fn plain(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            authority: None,
            tls: None,
            socketio_path: None,
        }
    }

    /// The same server reached through `addr` (a fault proxy in front of
    /// it): the same name, TLS session and Socket.IO path.
    pub fn via(&self, addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            ..self.clone()
        }
    }
}

impl Connector for TcpConnector {
    type Stream = Either<tokio::net::TcpStream, TlsStream<tokio::net::TcpStream>>;
    async fn connect(&self) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Either::Left(stream)),
            Some(tls) => Ok(Either::Right(tls.handshake(stream).await?)),
        }
    }
    fn authority(&self) -> String {
        match &self.authority {
            Some(authority) => authority.to_string(),
            None => self.addr.to_string(),
        }
    }
    fn socketio_path(&self) -> &str {
        self.socketio_path.as_deref().unwrap_or(SOCKETIO_PATH)
    }
}

/// A WebSocket over real TCP (TLS or not).
pub type TcpWebSocket = WebSocketStream<<TcpConnector as Connector>::Stream>;

/// `path_and_query` on the server: a path under the contract's `/socket.io/`
/// moves to where this server mounts Socket.IO.
fn located<'a, C: Connector>(connector: &C, path_and_query: &'a str) -> Cow<'a, str> {
    match path_and_query.strip_prefix(SOCKETIO_PATH) {
        Some(rest) if connector.socketio_path() != SOCKETIO_PATH => {
            Cow::Owned(format!("{}{rest}", connector.socketio_path()))
        }
        _ => Cow::Borrowed(path_and_query),
    }
}

/// Why a request or session failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(#[from] io::Error),
    /// HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Request(String),
    /// WebSocket handshake or frame failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server answered something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server took too long.
    #[error("timed out")]
    Timeout,
}

/// An HTTP response: status and body text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `Access-Control-Allow-Origin`, if any (the CORS finding).
    pub allow_origin: Option<String>,
    /// Body as UTF-8 (lossy).
    pub body: String,
    /// The `name=value` of each `Set-Cookie` (at most [`MAX_COOKIES`], each
    /// at most [`MAX_COOKIE_BYTES`]): a balancer's stickiness cookie, which
    /// the session's later requests carry back as a browser would.
    pub cookies: Vec<String>,
}

/// Most `Set-Cookie`s of one answer kept.
pub const MAX_COOKIES: usize = 8;
/// Longest `name=value` kept (browsers keep 4096 bytes a cookie).
pub const MAX_COOKIE_BYTES: usize = 4096;

impl Response {
    /// The `Cookie` header that sends this answer's cookies back, if any.
    pub fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| self.cookies.join("; "))
    }
}

/// Largest HTTP response body the harness reads (a full mailbox page of the
/// reference server is about 2.5 MB).
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Largest WebSocket message or frame the harness accepts.
pub const MAX_WS_MESSAGE_BYTES: usize = 8 << 20;

/// One HTTP/1.1 request on a fresh connection.
pub async fn request<C: Connector>(
    connector: &C,
    method: http::Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<Response, TransportError> {
    let request = build(connector, method, path_and_query, headers, body)?;
    let (mut sender, driver) = open(connector).await?;
    let outcome = exchange(&mut sender, request).await;
    driver.abort();
    outcome
}

/// HTTP/1.1 requests on one kept-alive connection, opened on first use and
/// again after it closed or a request on it failed or was abandoned — as socket.io-client's
/// long-polling runs (browsers keep connections alive, and so does Node's
/// default agent since Node 19). A middlebox that cuts an idle connection
/// then fails the next request on it, as it fails a real client's.
pub struct KeptAlive<C: Connector> {
    connector: C,
    connection: Option<Kept>,
}

struct Kept {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl<C: Connector> KeptAlive<C> {
    /// No connection yet: the first request opens one.
    pub fn new(connector: C) -> Self {
        Self {
            connector,
            connection: None,
        }
    }

    /// One request, on the kept connection when it is still usable.
    pub async fn request(
        &mut self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Response, TransportError> {
        let request = build(&self.connector, method, path_and_query, headers, body)?;
        // Taken out for the exchange: a request abandoned midway (its future
        // dropped) drops the connection with it, its state unknown.
        let reused = match self.connection.take() {
            Some(mut kept) => kept.sender.ready().await.is_ok().then_some(kept),
            None => None,
        };
        // None yet, or closed while idle: a new one, before anything is
        // sent (an agent drops a socket that closed in its pool).
        let mut kept = match reused {
            Some(kept) => kept,
            None => self.open().await?,
        };
        let outcome = exchange(&mut kept.sender, request).await;
        if outcome.is_ok() {
            self.connection = Some(kept);
        }
        outcome
    }

    async fn open(&self) -> Result<Kept, TransportError> {
        let (sender, driver) = open(&self.connector).await?;
        Ok(Kept { sender, driver })
    }
}

/// A new HTTP/1.1 connection and the task that drives it.
async fn open<C: Connector>(
    connector: &C,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        tokio::task::JoinHandle<()>,
    ),
    TransportError,
> {
    let stream = connector.connect().await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, driver))
}

fn build<C: Connector>(
    connector: &C,
    method: http::Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<http::Request<Full<Bytes>>, TransportError> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(located(connector, path_and_query).as_ref())
        .header(http::header::HOST, connector.authority());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8");
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| TransportError::Request(e.to_string()))
}

/// Sends `request` and reads the whole answer (at most [`MAX_BODY_BYTES`]).
async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> Result<Response, TransportError> {
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let header = |name: http::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(http::header::CONTENT_TYPE);
    let allow_origin = header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN);
    let cookies = response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|c| c.contains('=') && c.len() <= MAX_COOKIE_BYTES)
        .take(MAX_COOKIES)
        .map(str::to_owned)
        .collect();
    // A hostile server can answer an endless body: read at most this much.
    let bytes = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            TransportError::Request(format!(
                "response body unreadable or above {MAX_BODY_BYTES} bytes: {e}"
            ))
        })?
        .to_bytes();
    Ok(Response {
        status,
        content_type,
        allow_origin,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        cookies,
    })
}

/// The websocket read buffer of a client tab.
const WS_READ_BUFFER_BYTES: usize = 4 * 1024;

/// Opens a WebSocket to `path_and_query` with extra `headers`.
pub async fn websocket<C: Connector>(
    connector: &C,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<C::Stream>, TransportError> {
    let stream = connector.connect().await?;
    let url = format!(
        "ws://{}{}",
        connector.authority(),
        located(connector, path_and_query)
    );
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| TransportError::Request(e.to_string()))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|e| TransportError::Request(e.to_string()))?;
        request.headers_mut().insert(name, value);
    }
    // tungstenite zero-fills its whole read buffer before every read (a
    // soundness workaround for `Read::read`, tungstenite-rs #547): at its
    // 128 KiB default that memset was 16 % of a 200-user simulation's time,
    // and the buffer 128 KiB of memory a tab. 4 KiB is what its docs advise
    // for many connections (engineioxide's default too); larger frames
    // still grow the buffer as they need.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP/1.1 server that counts the connections it accepts and
    /// answers every request `ok`; with `Connection: close` on the request
    /// numbered `close_after` of each connection.
    async fn counting_server(close_after: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    for n in 1.. {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => seen.extend_from_slice(&buf[..k]),
                            }
                        }
                        let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        seen.drain(..end);
                        let close = n == close_after;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{}\r\nok",
                            if close { "connection: close\r\n" } else { "" }
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn a_kept_connection_carries_request_after_request_and_is_reopened_once_closed() {
        let (addr, accepted) = counting_server(3).await;
        let mut kept = KeptAlive::new(TcpConnector::plain(addr));
        for _ in 0..3 {
            let answer = kept
                .request(http::Method::GET, "/", &[], None)
                .await
                .unwrap();
            assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "three requests, one connection"
        );
        // The server closed it after the third: once the connection has seen
        // its end, the fourth opens another rather than fail.
        for _ in 0..500 {
            if kept
                .connection
                .as_ref()
                .is_none_or(|k| k.sender.is_closed())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let answer = kept
            .request(http::Method::GET, "/", &[], None)
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // One-shot requests open one each.
        let connector = TcpConnector::plain(addr);
        request(&connector, http::Method::GET, "/", &[], None)
            .await
            .unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }
}

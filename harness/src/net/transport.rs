//! The byte pipes under the reference client: a [`Connector`] that opens TCP
//! streams (turmoil's or tokio's), one-shot HTTP/1.1 requests over them (hyper),
//! and WebSocket sessions over them (tokio-tungstenite). Nothing here knows about
//! Socket.IO.

use std::future::Future;
use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

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
}

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

/// Connects over real TCP.
#[derive(Clone, Debug)]
pub struct TcpConnector {
    /// The server's address.
    pub addr: std::net::SocketAddr,
}

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
    fn authority(&self) -> String {
        self.addr.to_string()
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
    let stream = connector.connect().await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, connector.authority());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| TransportError::Request(e.to_string()))?;
    let outcome = async {
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
        })
    }
    .await;
    driver.abort();
    outcome
}

/// Opens a WebSocket to `path_and_query` with extra `headers`.
pub async fn websocket<C: Connector>(
    connector: &C,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<C::Stream>, TransportError> {
    let stream = connector.connect().await?;
    let url = format!("ws://{}{}", connector.authority(), path_and_query);
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| TransportError::Request(e.to_string()))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|e| TransportError::Request(e.to_string()))?;
        request.headers_mut().insert(name, value);
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(socket)
}

//! Engine.IO spoken by hand over a websocket, to send what no well-behaved
//! client would and to stop reading when a test needs a stalled peer.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

use crate::support::PATIENCE;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn ws_request(
    url: &str,
    sid: Option<&str>,
    username: &str,
) -> tungstenite::handshake::client::Request {
    let base = url.replacen("http://", "ws://", 1);
    let sid = sid.map(|sid| format!("&sid={sid}")).unwrap_or_default();
    let mut request = format!("{base}/socket.io/?EIO=4&transport=websocket{sid}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("username", username.parse().unwrap());
    request
}

/// The next text frame other than a ping (answered), within [`PATIENCE`];
/// `None` once the connection closed.
pub async fn next_text(ws: &mut Ws) -> Option<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await;
        match frame.expect("a frame in time") {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok();
            }
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// A websocket session with the main namespace joined as `username`.
pub async fn joined(url: &str, username: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(ws_request(url, None, username))
        .await
        .unwrap();
    join(ws).await
}

/// [`joined`], over a socket whose receive buffer is as small as the kernel
/// allows: a test that stops reading it backs the server's writes up at once.
pub async fn joined_small_buffer(url: &str, username: &str) -> Ws {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(ws_request(url, None, username), stream)
        .await
        .unwrap();
    join(ws).await
}

async fn join(mut ws: Ws) -> Ws {
    let open = next_text(&mut ws).await.unwrap();
    assert!(open.starts_with("0{"), "engine.io open, got {open}");
    ws.send(Message::text("40")).await.unwrap();
    let connect = next_text(&mut ws).await.unwrap();
    assert!(
        connect.starts_with("40{"),
        "socket.io connect, got {connect}"
    );
    ws
}

/// An ack frame (`43<id>[value]`) as its id and its first argument.
pub fn ack(frame: &str) -> Option<(u64, serde_json::Value)> {
    let rest = frame.strip_prefix("43")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let id = rest[..digits].parse().ok()?;
    let args: serde_json::Value = serde_json::from_str(&rest[digits..]).ok()?;
    Some((id, args[0].clone()))
}

/// Opens a websocket session (with a `username` header when given), sends
/// `connect` (`40`, or `40{"token": …}`) and returns the answer: `40{…}` when
/// the namespace connect was accepted, `44{…}` when it was refused.
pub async fn connect_raw(url: &str, username: Option<&str>, connect: &str) -> (Ws, String) {
    let mut request = ws_request(url, None, username.unwrap_or("x"));
    if username.is_none() {
        request.headers_mut().remove("username");
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let open = next_text(&mut ws).await.unwrap();
    assert!(open.starts_with("0{"), "engine.io open, got {open}");
    ws.send(Message::text(connect)).await.unwrap();
    let answer = next_text(&mut ws).await.unwrap();
    (ws, answer)
}

/// Sends `count` `send_message` frames to `to` (ack ids 0…, client ids
/// `c0`…) without reading anything in between.
pub async fn pipeline_sends(ws: &mut Ws, to: &str, content: &str, count: u64) {
    for i in 0..count {
        let send = serde_json::json!(["send_message", {"to": to, "content": content, "client_id": format!("c{i}")}]);
        ws.feed(Message::text(format!("42{i}{send}")))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
}

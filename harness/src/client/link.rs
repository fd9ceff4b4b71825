//! The Engine.IO transport a connected session runs on: a websocket, or
//! long-polling for good (`transports: ['polling']`, or an upgrade the server
//! or a proxy refused: socket.io-client then stays on polling, and so does
//! this client). Packets in, packets out; the session above does not care which.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

use crate::net::packet::{EioPacket, SioPacket, RECORD_SEPARATOR};
use crate::net::transport::{Connector, KeptAlive, TransportError};
use crate::trace::Via;

/// A connected session's transport.
pub(super) enum Link<C: Connector> {
    /// Engine.IO over a websocket.
    Websocket(WebSocketStream<C::Stream>),
    /// Engine.IO long-polling.
    Polling(Polling<C>),
}

/// Long-polling: a task keeps one `GET` outstanding and hands over each
/// payload; sends are `POST`s, one at a time (as socket.io-client's, which
/// never has two writes in flight). Each kind keeps its own connection
/// alive from one request to the next, as a browser's or Node's agent does.
pub(super) struct Polling<C: Connector> {
    posts: KeptAlive<C>,
    /// `/socket.io/?EIO=4&transport=polling&sid=…`.
    session: String,
    /// Sent with every request (a browser's `extraHeaders` ride on XHR).
    headers: Vec<(String, String)>,
    request_timeout: Duration,
    incoming: mpsc::Receiver<Result<Vec<EioPacket>, String>>,
    queue: VecDeque<EioPacket>,
    poller: tokio::task::JoinHandle<()>,
}

impl<C: Connector> Drop for Polling<C> {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl<C: Connector> Polling<C> {
    /// Starts long-polling `session` through `connector`; a poll that takes
    /// longer than `poll_timeout` (the server pings well within it) ends the
    /// transport.
    pub(super) fn start(
        connector: C,
        session: String,
        headers: &[(&str, &str)],
        poll_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        // One payload in hand at most: a reader that stops reading (a
        // sleeping device) stops the polling too, after the one in flight.
        let (tx, incoming) = mpsc::channel(1);
        let poller = tokio::spawn({
            let (connector, session, headers) =
                (connector.clone(), session.clone(), headers.clone());
            async move {
                let mut polls = KeptAlive::new(connector);
                loop {
                    let pairs = borrowed(&headers);
                    let got = tokio::time::timeout(
                        poll_timeout,
                        polls.request(http::Method::GET, &session, &pairs, None),
                    )
                    .await;
                    let outcome = match got {
                        Err(_) => Err("poll timed out".to_owned()),
                        Ok(Err(e)) => Err(format!("poll: {e}")),
                        Ok(Ok(r)) if r.status != 200 => {
                            Err(format!("poll status {}: {}", r.status, r.body))
                        }
                        Ok(Ok(r)) => EioPacket::decode_payload(&r.body)
                            .map_err(|e| format!("bad poll payload: {e}")),
                    };
                    let failed = outcome.is_err();
                    if tx.send(outcome).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        Self {
            posts: KeptAlive::new(connector),
            session,
            headers,
            request_timeout,
            incoming,
            queue: VecDeque::new(),
            poller,
        }
    }

    async fn post(&mut self, body: String) -> Result<(), TransportError> {
        let pairs = borrowed(&self.headers);
        let posted = tokio::time::timeout(
            self.request_timeout,
            self.posts
                .request(http::Method::POST, &self.session, &pairs, Some(body)),
        )
        .await
        .map_err(|_| TransportError::Timeout)??;
        if posted.status != 200 {
            return Err(TransportError::Protocol(format!(
                "POST status {}",
                posted.status
            )));
        }
        Ok(())
    }
}

/// Owned header pairs as the transport takes them.
fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

impl<C: Connector> Link<C> {
    /// How a push over this link arrives (the trace's [`Via`]).
    pub(super) fn via(&self) -> Via {
        match self {
            Link::Websocket(_) => Via::Websocket,
            Link::Polling(_) => Via::PollingTransport,
        }
    }

    /// The next Engine.IO packet, or why the transport ended. Cancel-safe:
    /// the session waits on it in a `select!`.
    pub(super) async fn next(&mut self) -> Result<EioPacket, String> {
        match self {
            Link::Websocket(ws) => loop {
                match ws.next().await {
                    Some(Ok(Frame::Text(text))) => {
                        return EioPacket::decode(text.as_str())
                            .map_err(|e| format!("bad packet: {e}"))
                    }
                    Some(Ok(Frame::Close(_))) | None => return Err("transport close".into()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("transport error: {e}")),
                }
            },
            Link::Polling(polling) => loop {
                if let Some(packet) = polling.queue.pop_front() {
                    return Ok(packet);
                }
                match polling.incoming.recv().await {
                    Some(Ok(packets)) => polling.queue.extend(packets),
                    Some(Err(reason)) => return Err(reason),
                    None => return Err("transport close".into()),
                }
            },
        }
    }

    /// Whether packets already received wait to be read (long-polling hands
    /// over a payload of several at once).
    pub(super) fn has_queued(&self) -> bool {
        matches!(self, Link::Polling(polling) if !polling.queue.is_empty())
    }

    /// Sends one Engine.IO packet.
    pub(super) async fn send(&mut self, packet: &EioPacket) -> Result<(), TransportError> {
        match self {
            Link::Websocket(ws) => ws
                .send(Frame::text(packet.encode()))
                .await
                .map_err(Into::into),
            Link::Polling(polling) => polling.post(packet.encode()).await,
        }
    }

    /// Sends one Socket.IO packet.
    pub(super) async fn send_sio(&mut self, packet: &SioPacket) -> Result<(), TransportError> {
        self.send(&EioPacket::Message(packet.encode())).await
    }

    /// Sends Socket.IO packets that are ready together: frame after frame on
    /// a websocket, one `POST` payload on long-polling (as engine.io-client
    /// flushes its write buffer).
    pub(super) async fn send_sio_all(
        &mut self,
        packets: &[SioPacket],
    ) -> Result<(), TransportError> {
        match self {
            Link::Websocket(_) => {
                for packet in packets {
                    self.send_sio(packet).await?;
                }
                Ok(())
            }
            Link::Polling(polling) if !packets.is_empty() => {
                let payload: Vec<String> = packets
                    .iter()
                    .map(|p| EioPacket::Message(p.encode()).encode())
                    .collect();
                polling
                    .post(payload.join(&RECORD_SEPARATOR.to_string()))
                    .await
            }
            Link::Polling(_) => Ok(()),
        }
    }

    /// Closes the transport as the client does on `socket.disconnect()`.
    pub(super) async fn close(&mut self) {
        match self {
            Link::Websocket(ws) => {
                let _ = ws.close(None).await;
            }
            Link::Polling(polling) => {
                let _ = polling.post(EioPacket::Close.encode()).await;
            }
        }
    }
}

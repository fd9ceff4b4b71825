//! Engine.IO v4 and Socket.IO v5 packets as text: pure encoding and decoding,
//! no I/O (the transports live in `transport`).

use serde_json::Value;

/// The Engine.IO record separator between packets in one polling payload.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// An Engine.IO v4 packet (text only: the contract needs no binary).
#[derive(Clone, Debug, PartialEq)]
pub enum EioPacket {
    /// `0{…}`: the handshake.
    Open(Handshake),
    /// `1`
    Close,
    /// `2`, or `2probe` during the upgrade.
    Ping(String),
    /// `3`, or `3probe`.
    Pong(String),
    /// `4…`: carries a Socket.IO packet.
    Message(String),
    /// `5`: the client finishes the upgrade.
    Upgrade,
    /// `6`
    Noop,
}

/// The Engine.IO handshake data (`0{…}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The Engine.IO session id (random; never reaches a trace).
    pub sid: String,
    /// Transports the session may upgrade to.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// How often the server pings, ms.
    pub ping_interval: u64,
    /// How long the server waits for a pong, ms.
    pub ping_timeout: u64,
    /// Largest payload the server accepts, bytes.
    #[serde(default)]
    pub max_payload: u64,
}

/// Why a packet could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// An empty frame.
    #[error("empty packet")]
    Empty,
    /// A type digit that is not defined.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// Data that is not the JSON the packet type requires.
    #[error("bad packet data: {0}")]
    BadData(String),
}

impl EioPacket {
    /// Reads one Engine.IO packet.
    pub fn decode(text: &str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let rest = chars.as_str();
        Ok(match kind {
            '0' => EioPacket::Open(
                serde_json::from_str(rest).map_err(|e| PacketError::BadData(e.to_string()))?,
            ),
            '1' => EioPacket::Close,
            '2' => EioPacket::Ping(rest.to_owned()),
            '3' => EioPacket::Pong(rest.to_owned()),
            '4' => EioPacket::Message(rest.to_owned()),
            '5' => EioPacket::Upgrade,
            '6' => EioPacket::Noop,
            other => return Err(PacketError::UnknownType(other)),
        })
    }

    /// Writes one Engine.IO packet (the client never sends `Open`).
    pub fn encode(&self) -> String {
        match self {
            EioPacket::Open(h) => format!(
                "0{{\"sid\":{},\"pingInterval\":{},\"pingTimeout\":{}}}",
                Value::String(h.sid.clone()),
                h.ping_interval,
                h.ping_timeout
            ),
            EioPacket::Close => "1".into(),
            EioPacket::Ping(data) => format!("2{data}"),
            EioPacket::Pong(data) => format!("3{data}"),
            EioPacket::Message(data) => format!("4{data}"),
            EioPacket::Upgrade => "5".into(),
            EioPacket::Noop => "6".into(),
        }
    }

    /// Splits a polling payload into its packets.
    pub fn decode_payload(payload: &str) -> Result<Vec<Self>, PacketError> {
        payload.split(RECORD_SEPARATOR).map(Self::decode).collect()
    }
}

/// A Socket.IO v5 packet in the main namespace `/`.
#[derive(Clone, Debug, PartialEq)]
pub enum SioPacket {
    /// `0`: connect request (client) or accept with `{"sid"}` (server).
    Connect(Option<Value>),
    /// `1`
    Disconnect,
    /// `2[ackid]["event", args…]`
    Event {
        /// Event name.
        name: String,
        /// Arguments after the name.
        args: Vec<Value>,
        /// Set when the sender wants an acknowledgement.
        ack_id: Option<u64>,
    },
    /// `3<ackid>[args…]`
    Ack {
        /// The id of the event being acknowledged.
        ack_id: u64,
        /// The acknowledgement's arguments.
        args: Vec<Value>,
    },
    /// `4{…}`: the namespace connect was refused.
    ConnectError(Value),
}

impl SioPacket {
    /// Reads a Socket.IO packet from an Engine.IO message's data.
    pub fn decode(text: &str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let mut rest = chars.as_str();
        // Namespace: only "/" is used; a "/nsp," prefix is skipped.
        if rest.starts_with('/') {
            rest = rest.split_once(',').map_or("", |(_, r)| r);
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (id, data) = rest.split_at(digits);
        let ack_id = if id.is_empty() {
            None
        } else {
            Some(id.parse().map_err(|_| PacketError::BadData(id.into()))?)
        };
        let json = |data: &str| -> Result<Value, PacketError> {
            serde_json::from_str(data).map_err(|e| PacketError::BadData(e.to_string()))
        };
        let array = |data: &str| -> Result<Vec<Value>, PacketError> {
            match json(data)? {
                Value::Array(items) => Ok(items),
                other => Err(PacketError::BadData(format!(
                    "expected an array, got {other}"
                ))),
            }
        };
        Ok(match kind {
            '0' if data.is_empty() => SioPacket::Connect(None),
            '0' => SioPacket::Connect(Some(json(data)?)),
            '1' => SioPacket::Disconnect,
            '2' => {
                let mut items = array(data)?.into_iter();
                let name = match items.next() {
                    Some(Value::String(name)) => name,
                    _ => return Err(PacketError::BadData("event without a name".into())),
                };
                SioPacket::Event {
                    name,
                    args: items.collect(),
                    ack_id,
                }
            }
            '3' => SioPacket::Ack {
                ack_id: ack_id.ok_or_else(|| PacketError::BadData("ack without id".into()))?,
                args: array(data)?,
            },
            '4' => SioPacket::ConnectError(json(data)?),
            other => return Err(PacketError::UnknownType(other)),
        })
    }

    /// Writes the packet as Engine.IO message data.
    pub fn encode(&self) -> String {
        let id = |ack_id: &Option<u64>| ack_id.map(|id| id.to_string()).unwrap_or_default();
        match self {
            SioPacket::Connect(None) => "0".into(),
            SioPacket::Connect(Some(data)) => format!("0{data}"),
            SioPacket::Disconnect => "1".into(),
            SioPacket::Event { name, args, ack_id } => {
                let mut items = vec![Value::String(name.clone())];
                items.extend(args.iter().cloned());
                format!("2{}{}", id(ack_id), Value::Array(items))
            }
            SioPacket::Ack { ack_id, args } => format!("3{ack_id}{}", Value::Array(args.clone())),
            SioPacket::ConnectError(data) => format!("4{data}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_io_round_trips() {
        for packet in [
            EioPacket::Close,
            EioPacket::Ping(String::new()),
            EioPacket::Ping("probe".into()),
            EioPacket::Pong("probe".into()),
            EioPacket::Message("0".into()),
            EioPacket::Upgrade,
            EioPacket::Noop,
        ] {
            assert_eq!(EioPacket::decode(&packet.encode()), Ok(packet));
        }
        assert_eq!(EioPacket::Message("hello".into()).encode(), "4hello");
    }

    #[test]
    fn reads_the_handshake_and_a_polling_payload() {
        let payload = "0{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}\u{1e}2\u{1e}440{\"sid\":\"x\"}";
        let packets = EioPacket::decode_payload(payload).unwrap();
        let EioPacket::Open(h) = &packets[0] else {
            panic!("{packets:?}")
        };
        assert_eq!(
            (h.ping_interval, h.ping_timeout, h.sid.as_str()),
            (25000, 20000, "abc")
        );
        assert_eq!(packets[1], EioPacket::Ping(String::new()));
        assert_eq!(packets[2], EioPacket::Message("40{\"sid\":\"x\"}".into()));
        assert_eq!(EioPacket::decode(""), Err(PacketError::Empty));
        assert_eq!(EioPacket::decode("9"), Err(PacketError::UnknownType('9')));
    }

    #[test]
    fn socket_io_round_trips() {
        for packet in [
            SioPacket::Connect(None),
            SioPacket::Connect(Some(json!({"sid": "s"}))),
            SioPacket::Disconnect,
            SioPacket::Event {
                name: "user_online".into(),
                args: vec![json!({"username": "a"})],
                ack_id: None,
            },
            SioPacket::Event {
                name: "send_message".into(),
                args: vec![json!({"to": "b"})],
                ack_id: Some(12),
            },
            SioPacket::Ack {
                ack_id: 3,
                args: vec![json!({"id": 1, "delivery": "websocket"})],
            },
            SioPacket::ConnectError(json!({"message": "missing or invalid username"})),
        ] {
            assert_eq!(SioPacket::decode(&packet.encode()), Ok(packet));
        }
        assert_eq!(
            SioPacket::Event {
                name: "e".into(),
                args: vec![json!(1)],
                ack_id: Some(7)
            }
            .encode(),
            "27[\"e\",1]"
        );
    }

    #[test]
    fn refuses_malformed_socket_io() {
        assert!(SioPacket::decode("2{\"not\":\"array\"}").is_err());
        assert!(SioPacket::decode("2[42]").is_err());
        assert!(SioPacket::decode("3[1]").is_err());
        assert!(SioPacket::decode("4nope").is_err());
        assert_eq!(SioPacket::decode("1/admin,"), Ok(SioPacket::Disconnect));
        assert_eq!(
            SioPacket::decode("2/admin,5[\"e\"]"),
            Ok(SioPacket::Event {
                name: "e".into(),
                args: vec![],
                ack_id: Some(5)
            })
        );
    }
}

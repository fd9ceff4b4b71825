//! Malformed frames a fuzzer reaches (B1), as plain data: what `check`'s
//! raw-packet abuser sends beside its fixed probes, drawn from a seed, and what
//! the property tests generate. Every kind is one the contract answers: a clear
//! error, or silence where an unknown thing may be ignored; never an accepted
//! message, another user's lost session, or a server that stops answering.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One malformed thing to send on a registered raw websocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Malformed {
    /// `send_message` with a valid object followed by `extra` more arguments (M1).
    ExtraArguments {
        /// How many arguments follow the object (1..=4).
        extra: u8,
    },
    /// A binary event (`5`) whose `content` is an attachment placeholder;
    /// with `attached` the attachment follows as a binary frame, without it
    /// the attachment never comes.
    BinaryContent {
        /// Whether the announced attachment is sent.
        attached: bool,
    },
    /// A binary ack (`6`) for an ack id the server never asked about.
    BinaryAck,
    /// An event for a namespace nobody serves.
    UnknownNamespace {
        /// The namespace, without its slash.
        name: String,
    },
    /// Two `send_message` frames under one ack id; the second is wrong-shaped.
    DuplicateAckId,
    /// An ack id of `digits` nines: above `u64::MAX` from 20 digits on.
    HugeAckId {
        /// Number of digits (19..=40).
        digits: u8,
    },
    /// An event name that is not a string.
    NonStringEvent {
        /// What stands where the name belongs.
        name: Value,
    },
    /// An argument nested `depth` levels deep, of arrays or of objects.
    Nested {
        /// Nesting depth (2..=600).
        depth: u16,
        /// Objects (`{"a":…}`) rather than arrays.
        objects: bool,
    },
    /// A NUL, a lone surrogate or a byte-order mark inside `to` and `content`.
    BadStrings {
        /// Which escape (0: NUL, 1: lone high surrogate, 2: lone low surrogate, 3: BOM).
        which: u8,
    },
    /// The frame of a valid send cut after `keep` bytes.
    Truncated {
        /// Bytes kept of the valid frame.
        keep: u16,
    },
    /// A Socket.IO packet type (after the Engine.IO `4`) that does not exist.
    UnknownPacketType {
        /// The digit or letter where the packet type belongs.
        code: char,
    },
    /// A CONNECT, on a fresh connection, whose `auth` payload is not an object.
    ConnectAuth {
        /// The payload.
        auth: Value,
    },
}

/// What to write for one [`Malformed`] entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// A text frame.
    Text(String),
    /// A binary frame (an attachment).
    Binary(Vec<u8>),
}

impl Malformed {
    /// How many kinds there are ([`Malformed::draw`] picks among them).
    pub const KINDS: u8 = 12;

    /// A seeded draw of one entry of kind `kind % KINDS`, with random parameters.
    pub fn draw(kind: u8, rng: &mut impl Rng) -> Self {
        match kind % Self::KINDS {
            0 => Self::ExtraArguments {
                extra: rng.random_range(1..=4),
            },
            1 => Self::BinaryContent {
                attached: rng.random(),
            },
            2 => Self::BinaryAck,
            3 => Self::UnknownNamespace {
                name: (0..rng.random_range(1..=12))
                    .map(|_| char::from(rng.random_range(b'a'..=b'z')))
                    .collect(),
            },
            4 => Self::DuplicateAckId,
            5 => Self::HugeAckId {
                digits: rng.random_range(19..=40),
            },
            6 => Self::NonStringEvent {
                name: [
                    json!(5),
                    Value::Null,
                    json!({"e": 1}),
                    json!(["send_message"]),
                    json!(true),
                ][rng.random_range(0..5)]
                .clone(),
            },
            7 => Self::Nested {
                depth: rng.random_range(2..=600),
                objects: rng.random(),
            },
            8 => Self::BadStrings {
                which: rng.random_range(0..4),
            },
            9 => Self::Truncated {
                keep: rng.random_range(3..=60),
            },
            10 => Self::UnknownPacketType {
                code: ['7', '8', '9', 'x', ' '][rng.random_range(0..5)],
            },
            _ => Self::ConnectAuth {
                auth: [
                    json!("a string"),
                    json!(42),
                    json!([1, 2]),
                    Value::Null,
                    json!(false),
                ][rng.random_range(0..5)]
                .clone(),
            },
        }
    }

    /// `n` entries drawn from `seed`, every kind at most once while `n`
    /// allows (check's fixed, seeded sample: the same seed sends the same frames).
    pub fn sample(seed: u64, n: usize) -> Vec<Self> {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x6d61_6c66_6f72_6d65);
        let mut kinds: Vec<u8> = (0..Self::KINDS).collect();
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.random_range(0..=i));
        }
        (0..n)
            .map(|i| Self::draw(kinds[i % kinds.len()], &mut rng))
            .collect()
    }

    /// Whether this must go out on a fresh connection, as its first packet.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::ConnectAuth { .. })
    }

    /// Whether its frames leave the connection in an unfinished state: a
    /// binary event or ack whose announced attachment never comes. Socket.IO
    /// v5 has the receiver take the connection's next frames as the
    /// attachments, so whatever follows on that connection would be read as
    /// part of this packet; it goes out on a connection of its own, closed
    /// after. (Engine.IO v4 over websocket has no other such state: each
    /// websocket frame is one whole packet, a cut one included.)
    pub fn leaves_pending(&self) -> bool {
        matches!(
            self,
            Self::BinaryContent { attached: false } | Self::BinaryAck
        )
    }

    /// One entry of every kind and every variant a kind's parameters select
    /// (the attachment sent and not, arrays and objects, each bad string,
    /// each non-string name, each unknown packet type, each bad `auth`), the
    /// sizes drawn from `seed`: what `check` sends, so no seed leaves a kind
    /// or variant out and the verdict never rests on the draw.
    pub fn cover(seed: u64) -> Vec<Self> {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x6d61_6c66_6f72_6d65);
        let mut all = vec![
            Self::ExtraArguments {
                extra: rng.random_range(1..=4),
            },
            Self::BinaryContent { attached: true },
            Self::BinaryContent { attached: false },
            Self::BinaryAck,
            Self::UnknownNamespace {
                name: (0..rng.random_range(1..=12))
                    .map(|_| char::from(rng.random_range(b'a'..=b'z')))
                    .collect(),
            },
            Self::DuplicateAckId,
            Self::HugeAckId {
                digits: rng.random_range(19..=40),
            },
        ];
        all.extend(
            [
                json!(5),
                Value::Null,
                json!({"e": 1}),
                json!(["send_message"]),
                json!(true),
            ]
            .into_iter()
            .map(|name| Self::NonStringEvent { name }),
        );
        for objects in [false, true] {
            all.push(Self::Nested {
                depth: rng.random_range(2..=600),
                objects,
            });
        }
        all.extend((0..4).map(|which| Self::BadStrings { which }));
        all.push(Self::Truncated {
            keep: rng.random_range(3..=60),
        });
        all.extend(
            ['7', '8', '9', 'x', ' ']
                .into_iter()
                .map(|code| Self::UnknownPacketType { code }),
        );
        all.extend(
            [
                json!("a string"),
                json!(42),
                json!([1, 2]),
                Value::Null,
                json!(false),
            ]
            .into_iter()
            .map(|auth| Self::ConnectAuth { auth }),
        );
        all
    }

    /// The frames to write, addressing `sink`, with `ack_id` where an ack is
    /// asked for. A server may accept none of them as a message, except the
    /// first of a [`Malformed::DuplicateAckId`] pair, which is well-formed
    /// ([`Malformed::may_accept`]).
    pub fn frames(&self, sink: &str, ack_id: u64) -> Vec<Out> {
        let valid =
            |client_id: &str| json!({"to": sink, "content": "fuzz", "client_id": client_id});
        let event = |args: Vec<Value>| {
            let mut all = vec![json!("send_message")];
            all.extend(args);
            Value::Array(all).to_string()
        };
        let text = |s: String| vec![Out::Text(s)];
        match self {
            Self::ExtraArguments { extra } => {
                let mut args = vec![valid(&format!("fz-extra-{ack_id}"))];
                args.extend((0..*extra).map(|i| json!(format!("extra {i}"))));
                text(format!("42{ack_id}{}", event(args)))
            }
            Self::BinaryContent { attached } => {
                let payload = json!({"to": sink, "content": {"_placeholder": true, "num": 0},
                    "client_id": format!("fz-bin-{ack_id}")});
                let mut out = text(format!("451-{ack_id}{}", event(vec![payload])));
                if *attached {
                    out.push(Out::Binary(b"\x00\xff binary where text belongs".to_vec()));
                }
                out
            }
            Self::BinaryAck => text(format!(r#"461-{ack_id}[{{"_placeholder":true,"num":0}}]"#)),
            Self::UnknownNamespace { name } => text(format!(
                "42/{name},{ack_id}{}",
                event(vec![valid(&format!("fz-ns-{ack_id}"))])
            )),
            Self::DuplicateAckId => vec![
                Out::Text(format!(
                    "42{ack_id}{}",
                    event(vec![valid(&format!("fz-dup-{ack_id}"))])
                )),
                Out::Text(format!(
                    "42{ack_id}{}",
                    event(vec![
                        json!({"to": sink, "content": 7, "client_id": format!("fz-dup2-{ack_id}")})
                    ])
                )),
            ],
            Self::HugeAckId { digits } => text(format!(
                "42{}{}",
                "9".repeat(usize::from(*digits)),
                event(vec![valid(&format!("fz-huge-{ack_id}"))])
            )),
            Self::NonStringEvent { name } => text(format!(
                "42{ack_id}{}",
                Value::Array(vec![name.clone(), valid(&format!("fz-name-{ack_id}"))])
            )),
            Self::Nested { depth, objects } => {
                let depth = usize::from(*depth);
                let nested = if *objects {
                    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
                } else {
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
                };
                text(format!(r#"42{ack_id}["send_message",{nested}]"#))
            }
            Self::BadStrings { which } => {
                let escape = [r"\u0000", r"\ud800", r"\udc00", r"\ufeff"][usize::from(*which % 4)];
                text(format!(
                    r#"42{ack_id}["send_message",{{"to":"{sink}{escape}","content":"x{escape}","client_id":"fz-str-{ack_id}"}}]"#
                ))
            }
            Self::Truncated { keep } => {
                let whole = format!(
                    "42{ack_id}{}",
                    event(vec![valid(&format!("fz-cut-{ack_id}"))])
                );
                // Cut on a character boundary, always short of the whole frame.
                let mut end = usize::from(*keep).min(whole.len() - 1);
                while !whole.is_char_boundary(end) {
                    end -= 1;
                }
                text(whole[..end].to_owned())
            }
            Self::UnknownPacketType { code } => text(format!(
                "4{code}{ack_id}{}",
                event(vec![valid(&format!("fz-type-{ack_id}"))])
            )),
            Self::ConnectAuth { auth } => text(format!("40{auth}")),
        }
    }

    /// Which of [`Malformed::frames`] a server may accept as a message: the
    /// well-formed first of a duplicate pair, and a send under an ack id past
    /// `u64` (its payload is well-formed; python-socketio's arbitrary-precision
    /// ids accept it and answer under the same id, which loses nothing).
    pub fn may_accept(&self, frame: usize) -> bool {
        match self {
            Self::DuplicateAckId | Self::HugeAckId { .. } => frame == 0,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_sample_and_every_kind_once() {
        let a = Malformed::sample(7, usize::from(Malformed::KINDS));
        assert_eq!(a, Malformed::sample(7, usize::from(Malformed::KINDS)));
        let mut kinds: Vec<_> = a
            .iter()
            .map(|m| serde_json::to_value(m).unwrap()["kind"].clone())
            .collect();
        kinds.sort_by_key(|k| k.to_string());
        kinds.dedup();
        assert_eq!(kinds.len(), usize::from(Malformed::KINDS));
        assert_ne!(a, Malformed::sample(8, usize::from(Malformed::KINDS)));
    }

    #[test]
    fn frames_are_malformed_in_the_way_they_say() {
        let huge = Malformed::HugeAckId { digits: 21 }.frames("sink", 5);
        let Out::Text(huge) = &huge[0] else { panic!() };
        assert!(huge.starts_with(&format!("42{}[", "9".repeat(21))));
        let cut = Malformed::Truncated { keep: 500 }.frames("sink", 5);
        let Out::Text(cut) = &cut[0] else { panic!() };
        assert!(serde_json::from_str::<Value>(&cut[3..]).is_err());
        let bin = Malformed::BinaryContent { attached: true }.frames("sink", 5);
        assert!(matches!(&bin[..], [Out::Text(t), Out::Binary(_)] if t.starts_with("451-5[")));
        let strings = Malformed::BadStrings { which: 1 }.frames("sink", 5);
        let Out::Text(s) = &strings[0] else { panic!() };
        assert!(s.contains(r"\ud800"), "{s}");
        assert!(Malformed::DuplicateAckId.may_accept(0));
        assert!(Malformed::HugeAckId { digits: 30 }.may_accept(0));
        assert!(!Malformed::Nested {
            depth: 3,
            objects: false
        }
        .may_accept(0));
        assert!(!Malformed::DuplicateAckId.may_accept(1));
    }

    #[test]
    fn the_cover_has_every_kind_and_variant_whatever_the_seed() {
        for seed in 0..50 {
            let cover = Malformed::cover(seed);
            let kinds: std::collections::BTreeSet<String> = cover
                .iter()
                .map(|m| serde_json::to_value(m).unwrap()["kind"].to_string())
                .collect();
            assert_eq!(kinds.len(), usize::from(Malformed::KINDS), "seed {seed}");
            // Every variant a kind's parameters choose among, on every seed.
            let count = |f: &dyn Fn(&Malformed) -> bool| cover.iter().filter(|m| f(m)).count();
            assert_eq!(count(&|m| matches!(m, Malformed::BinaryContent { .. })), 2);
            assert_eq!(count(&|m| matches!(m, Malformed::NonStringEvent { .. })), 5);
            assert_eq!(count(&|m| matches!(m, Malformed::Nested { .. })), 2);
            assert_eq!(count(&|m| matches!(m, Malformed::BadStrings { .. })), 4);
            assert_eq!(
                count(&|m| matches!(m, Malformed::UnknownPacketType { .. })),
                5
            );
            assert_eq!(count(&|m| matches!(m, Malformed::ConnectAuth { .. })), 5);
        }
        assert!(Malformed::BinaryAck.leaves_pending());
        assert!(Malformed::BinaryContent { attached: false }.leaves_pending());
        assert!(!Malformed::BinaryContent { attached: true }.leaves_pending());
        assert!(!Malformed::Truncated { keep: 5 }.leaves_pending());
    }
}

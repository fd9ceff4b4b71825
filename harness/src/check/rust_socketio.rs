//! The core flow again with `rust_socketio`, a client nobody here wrote: a
//! server is shown to work with a mainstream client, not only with ours. Its
//! callbacks are recorded as the same trace events, judged by the same checkers.

use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{CheckOptions, Names, Run, Target};
use crate::faults::FaultPlan;
use crate::judge::{check_all, Violation, PUSH_BOUND_MS};
use crate::scenario::{HeaderPolicy, OpenMode, Scenario, UserSpec};
use crate::spec::Clause;
use crate::trace::{Event, Recorder, TraceClock, Via, What};

// ---------------------------------------------------------------------------
// rust_socketio: a second, independent client

pub(super) async fn rust_socketio_run(
    target: &Target,
    names: &Names,
    options: &CheckOptions,
) -> Run {
    use rust_socketio::asynchronous::{Client, ClientBuilder};
    use rust_socketio::{Event as SioEvent, Payload, TransportType};

    let started = Instant::now();
    let recorder = Recorder::new(TraceClock::Real(started));
    let patience = options.patience();
    let (a, b) = (names.user("rsa"), names.user("rsb"));
    let scenario = Scenario {
        seed: options.seed,
        users: vec![UserSpec::node(&a), UserSpec::node(&b)],
        steps: Vec::new(),
        faults: FaultPlan {
            latency_ms_min: 0,
            latency_ms_max: 0,
            faults: Vec::new(),
            push_bound_ms: (options.timeout_scale > 1.0).then(|| options.scaled(PUSH_BOUND_MS)),
        },
        active_ms: 0,
        heal_ms: 0,
        open_world: true,
    };
    fn first(payload: Payload) -> Value {
        match payload {
            Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
            #[allow(deprecated)]
            Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            _ => Value::Null,
        }
    }
    let connect = |name: String| {
        let recorder = recorder.clone();
        // rust_socketio takes Socket.IO's own URL when it is mounted elsewhere.
        let url = format!("{}{}", target.url, target.socketio_path());
        let tls = native_tls_for(target);
        let tokens = options.tokens.clone();
        async move {
            let label = format!("{name}#1");
            let rec = |what: fn(Value) -> Option<What>| {
                let (recorder, label) = (recorder.clone(), label.clone());
                move |payload: Payload, _: Client| {
                    if let Some(what) = what(first(payload)) {
                        recorder.record(&label, what);
                    }
                    async {}.boxed()
                }
            };
            recorder.record(
                &label,
                What::ConnectAttempt {
                    open: OpenMode::PollingFirst,
                    header: HeaderPolicy::Valid,
                    header_sent: true,
                },
            );
            let any = {
                let (recorder, label) = (recorder.clone(), label.clone());
                move |event: SioEvent, payload: Payload, _: Client| {
                    let data = first(payload);
                    let what = match &event {
                        SioEvent::Custom(e) if e == "user_online" || e == "user_offline" => {
                            Some(What::Presence {
                                username: data["username"].as_str().unwrap_or_default().to_owned(),
                                online: e == "user_online",
                            })
                        }
                        SioEvent::Custom(e) if e == "new_message" => {
                            serde_json::from_value::<crate::contract::Message>(data)
                                .ok()
                                .map(|m| What::Received {
                                    id: m.id,
                                    from: m.from,
                                    to: m.to,
                                    via: Via::Websocket,
                                    duplicate: false,
                                })
                        }
                        _ => None,
                    };
                    if let Some(what) = what {
                        recorder.record(&label, what);
                    }
                    async {}.boxed()
                }
            };
            let mut builder = ClientBuilder::new(url);
            if let Some(tls) = tls {
                builder = builder.tls_config(tls);
            }
            let mut builder = builder
                .transport_type(TransportType::Any)
                .reconnect(false)
                .opening_header("username", name.as_str());
            // A v2 server: socket.io's `auth` option carries the token (A2).
            if let Some(token) = tokens
                .as_ref()
                .and_then(|issuer| issuer.mint(crate::token::TokenPolicy::Valid, &name))
            {
                builder = builder.auth(serde_json::json!({ "token": token }));
            }
            let connecting = builder
                .on(SioEvent::Connect, rec(|_| Some(What::Connected)))
                .on(
                    SioEvent::Close,
                    rec(|_| {
                        Some(What::Disconnected {
                            reason: "transport close".into(),
                        })
                    }),
                )
                .on(
                    SioEvent::Error,
                    rec(|v| {
                        Some(What::ConnectRefused {
                            message: v.to_string(),
                        })
                    }),
                )
                .on_any(any)
                .connect();
            // Bounded like every other wait: a server that answers oddly
            // must not keep the independent client connecting for ever.
            let client = match tokio::time::timeout(patience, connecting).await {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no connection within {} ms", patience.as_millis())),
            };
            match client {
                Ok(client) => Some(client),
                Err(e) => {
                    recorder.record(
                        &label,
                        What::OpenFailed {
                            reason: e.to_string(),
                        },
                    );
                    None
                }
            }
        }
    };
    let mut found = Vec::new();
    let mut expect = |ok: bool, clause: Clause, message: String, recorder: &Recorder| {
        if !ok {
            let trace = recorder.trace();
            found.push(Violation {
                clause,
                at_ms: trace.events.last().map_or(0, |e| e.at_ms),
                message: format!("with rust_socketio 0.6: {message}"),
                evidence: trace.events.iter().rev().take(5).rev().cloned().collect(),
                subject: Default::default(),
                ruling: None,
            });
        }
        ok
    };
    let (la, lb) = (format!("{a}#1"), format!("{b}#1"));
    let client_a = connect(a.clone()).await;
    let a_up = wait_until(&recorder, patience, |e| {
        e.actor == la && e.what == What::Connected
    })
    .await;
    if expect(
        client_a.is_some() && a_up,
        Clause::T1,
        format!("{a} could not connect with a username header"),
        &recorder,
    ) {
        let client_b = connect(b.clone()).await;
        let b_up = wait_until(&recorder, patience, |e| {
            e.actor == lb && e.what == What::Connected
        })
        .await;
        if expect(
            client_b.is_some() && b_up,
            Clause::T1,
            format!("{b} could not connect"),
            &recorder,
        ) {
            let online = What::Presence {
                username: b.clone(),
                online: true,
            };
            let heard =
                wait_until(&recorder, patience, |e| e.actor == la && e.what == online).await;
            expect(
                heard,
                Clause::P1,
                format!("{a} did not hear user_online for {b}"),
                &recorder,
            );
            // A send in the same millisecond as the recipient's CONNECT would not be judged (M3).
            tokio::time::sleep(Duration::from_millis(options.scaled(100))).await;
            let client_id = "rs-1".to_owned();
            recorder.record(
                &la,
                What::Sent {
                    client_id: client_id.clone(),
                    to: b.clone(),
                },
            );
            let (ack_recorder, ack_label, ack_id) =
                (recorder.clone(), la.clone(), client_id.clone());
            let emitted = client_a
                .as_ref()
                .expect("connected")
                .emit_with_ack(
                    "send_message",
                    Payload::Text(vec![
                        json!({"to": b, "content": "from rust_socketio", "client_id": client_id}),
                    ]),
                    patience,
                    move |payload: Payload, _: Client| {
                        // rust_socketio hands an ack's argument list over as one array.
                        let ack = match first(payload) {
                            Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                            other => other,
                        };
                        let what = match serde_json::from_value::<crate::contract::Accepted>(
                            ack.clone(),
                        ) {
                            Ok(accepted) => What::Accepted {
                                client_id: ack_id.clone(),
                                id: accepted.id,
                                delivery: accepted.delivery,
                            },
                            Err(_) => What::Refused {
                                client_id: ack_id.clone(),
                                error: ack.to_string(),
                            },
                        };
                        ack_recorder.record(&ack_label, what);
                        async {}.boxed()
                    },
                )
                .await;
            if let Err(e) = emitted {
                recorder.record(
                    &la,
                    What::AckLost {
                        client_id: "rs-1".into(),
                        reason: format!("emit failed: {e}"),
                    },
                );
            }
            let answered = wait_until(&recorder, patience, |e| {
                matches!(&e.what, What::Accepted { client_id: c, .. } | What::Refused { client_id: c, .. } if c == "rs-1")
            })
            .await;
            expect(
                answered,
                Clause::M2,
                "send_message with an ack callback got no ack".into(),
                &recorder,
            );
            tokio::time::sleep(Duration::from_millis(options.scaled(300))).await;
            if let Some(client_b) = client_b {
                let _ = client_b.disconnect().await;
                let offline = What::Presence {
                    username: b.clone(),
                    online: false,
                };
                let heard =
                    wait_until(&recorder, patience, |e| e.actor == la && e.what == offline).await;
                expect(
                    heard,
                    Clause::P3,
                    format!("{a} did not hear user_offline for {b} after its disconnect"),
                    &recorder,
                );
                recorder.record(
                    &lb,
                    What::Disconnected {
                        reason: "client close".into(),
                    },
                );
            }
        }
        if let Some(client_a) = client_a {
            let _ = client_a.disconnect().await;
        }
    }
    let trace = recorder.trace();
    found.extend(check_all(&trace, &scenario));
    Run::new("rust_socketio", Some(scenario), trace, found, started)
}

/// Whether an event that `seen` accepts is recorded within `patience`.
async fn wait_until(
    recorder: &Recorder,
    patience: Duration,
    seen: impl Fn(&Event) -> bool,
) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if recorder.trace().events.iter().any(&seen) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// rust_socketio's TLS (native-tls) for an `https://` target: the system's
/// roots plus the CA given with `--ca-cert`. `None` for plain HTTP, or when
/// the CA cannot be read by native-tls (rust_socketio's defaults then apply,
/// and its run says what failed).
fn native_tls_for(target: &Target) -> Option<native_tls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let tls = target.tls.as_ref()?;
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(pem) = tls.extra_ca_pem() {
        for block in rustls::pki_types::CertificateDer::pem_slice_iter(pem).flatten() {
            if let Ok(cert) = native_tls::Certificate::from_der(&block) {
                builder.add_root_certificate(cert);
            }
        }
    }
    builder.build().ok()
}

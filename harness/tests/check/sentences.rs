//! One sentence broken at a time: the reference server behind a small layer
//! that breaks exactly one normative sentence of the plain HTTP side, which
//! no bug switch covers. `check` must fail the clause, and nothing else.
//! `specs/clauses.json` cites these tests by sentence id.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use harness::check::{check, report, CheckOptions, CheckReport, Target, Verdict};
use harness::spec::{Clause, Level};
use harness::token::{IssuerClock, TokenIssuer};
use serde_json::Value;

use super::quick;

/// What the layer breaks.
#[derive(Clone, Copy, Debug)]
enum Break {
    /// T2.2: `/api/online` says `text/plain`.
    OnlineContentType,
    /// H1.1: `/health` answers `{"status": "up"}`.
    HealthBody,
    /// P4.1: `/api/online` lists the users in reverse order, the first twice.
    OnlineUnsorted,
    /// L1.6: a poll without a `username` header is answered 200 (as user "").
    PollWithoutName,
    /// L1.7: a cursor that is not a base-10 u64 is read as 0.
    BadCursorAccepted,
    /// L1.4: a poll answer is cut at 100 entries without `"more": true`.
    PageWithoutMore,
    /// L1.1: poll answers list their entries in decreasing `seq`.
    SeqsOutOfOrder,
    /// L4.1: a stale cursor is answered 200 (and, on this server, discards
    /// nothing: the reference store keeps it).
    StaleCursorAccepted,
    /// H2.1: a v2 server's `/health` names another auth.
    HealthNamesAnotherAuth,
    /// A6.1: a poll answer carries the Bearer token it was given.
    TokenEchoed,
}

async fn json_of(response: Response) -> (axum::http::response::Parts, Value) {
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 16 << 20).await.unwrap_or_default();
    (parts, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn breaking(broken: Break, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    match (broken, path.as_str()) {
        (Break::OnlineContentType, "/api/online") => {
            let mut response = next.run(request).await;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        (Break::HealthBody, "/health") => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "up"})),
        )
            .into_response(),
        (Break::OnlineUnsorted, "/api/online") => {
            let (parts, mut body) = json_of(next.run(request).await).await;
            if let Some(users) = body["users"].as_array_mut() {
                users.reverse();
                if let Some(first) = users.first().cloned() {
                    users.push(first);
                }
            }
            Response::from_parts(parts, Body::from(body.to_string()))
        }
        (Break::PollWithoutName, "/api/messages")
            if request.headers().get("username").is_none() =>
        {
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"messages": []})),
            )
                .into_response()
        }
        (Break::BadCursorAccepted, "/api/messages")
            if query.contains("after=") && !query_is_u64(&query) =>
        {
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"messages": []})),
            )
                .into_response()
        }
        (Break::PageWithoutMore | Break::SeqsOutOfOrder, "/api/messages") => {
            let (parts, mut body) = json_of(next.run(request).await).await;
            if let Some(entries) = body["messages"].as_array_mut() {
                match broken {
                    Break::PageWithoutMore => entries.truncate(100),
                    _ => entries.reverse(),
                }
            }
            if let Some(object) = body.as_object_mut() {
                object.remove("more");
            }
            Response::from_parts(parts, Body::from(body.to_string()))
        }
        (Break::StaleCursorAccepted, "/api/messages") => {
            let response = next.run(request).await;
            if response.status() != StatusCode::CONFLICT {
                return response;
            }
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"messages": []})),
            )
                .into_response()
        }
        (Break::HealthNamesAnotherAuth, "/health") => {
            let body = serde_json::json!({"status": "ok", "contract": "v2", "auth": "jwt"});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        (Break::TokenEchoed, "/api/messages") => {
            let bearer = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (parts, mut body) = json_of(next.run(request).await).await;
            if let (Some(object), Some(bearer)) = (body.as_object_mut(), bearer) {
                object.insert("you".into(), Value::String(bearer));
            }
            Response::from_parts(parts, Body::from(body.to_string()))
        }
        _ => next.run(request).await,
    }
}

fn query_is_u64(query: &str) -> bool {
    let afters: Vec<&str> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("after="))
        .collect();
    afters.len() == 1
        && !afters[0].is_empty()
        && afters[0].bytes().all(|b| b.is_ascii_digit())
        && afters[0].parse::<u64>().is_ok()
}

const SECRET: &[u8] = b"sentences secret";

/// The reference server behind the `broken` layer, checked at `level`;
/// `secure` checks a v2 reference server.
async fn check_broken_at(broken: Break, level: Level) -> CheckReport {
    let v2 = level == Level::Secure;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let config = server_under_test::Config {
        auth: v2.then(|| server_under_test::TokenKey::new(SECRET.to_vec()).unwrap()),
        epoch_unix_ms: now_ms,
        ..quick(&[])
    };
    let (router, _chat) = server_under_test::app(config);
    let app = router.layer(axum::middleware::from_fn(move |request, next| {
        breaking(broken, request, next)
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let target = Target::resolve(&url).await.unwrap();
    let options = CheckOptions {
        level,
        seed: 8,
        timeout_scale: 2.0,
        tokens: v2.then(|| TokenIssuer::new(SECRET.to_vec(), IssuerClock::Wall)),
    };
    let report = check(&target, &options).await.expect("up");
    task.abort();
    report
}

/// `check` fails `clause`, and only `clause`.
async fn fails_only(broken: Break, clause: Clause) {
    fails_only_at(broken, clause, Level::Core).await;
}

async fn fails_only_at(broken: Break, clause: Clause, level: Level) {
    let report = check_broken_at(broken, level).await;
    let text = report::text(&report);
    assert_eq!(report.failed(), vec![clause], "{broken:?}:\n{text}");
    let line = report.clauses.iter().find(|c| c.clause == clause).unwrap();
    assert_eq!(line.verdict, Verdict::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_answer_without_the_json_content_type_fails_t2() {
    fails_only(Break::OnlineContentType, Clause::T2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_body_other_than_status_ok_fails_h1() {
    fails_only(Break::HealthBody, Clause::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsorted_online_list_with_a_duplicate_fails_p4() {
    fails_only(Break::OnlineUnsorted, Clause::P4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_without_a_name_answered_200_fails_l1() {
    fails_only(Break::PollWithoutName, Clause::L1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cursor_read_as_zero_fails_l1() {
    fails_only(Break::BadCursorAccepted, Clause::L1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_cut_at_100_without_more_fails_l1() {
    fails_only(Break::PageWithoutMore, Clause::L1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_out_of_seq_order_fail_l1() {
    fails_only(Break::SeqsOutOfOrder, Clause::L1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cursor_answered_200_fails_l4_at_robust() {
    fails_only_at(Break::StaleCursorAccepted, Clause::L4, Level::Robust).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_health_naming_another_auth_fails_h2() {
    fails_only_at(Break::HealthNamesAnotherAuth, Clause::H2, Level::Secure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_echoed_in_an_answer_fails_a6() {
    fails_only_at(Break::TokenEchoed, Clause::A6, Level::Secure).await;
}

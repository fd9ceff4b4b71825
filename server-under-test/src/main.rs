//! `server-under-test`: the reference chat server on real TCP.
//!
//! ```text
//! cargo run -p server-under-test -- --addr 127.0.0.1:8000 [--bug NAME]...
//! ```

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use server_under_test::{Bug, Config};

/// Reference server for the chat presence wire contract v1 (Socket.IO v5 + HTTP on one port).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Turn on a deliberate defect (repeatable): register_anonymous, never_push,
    /// last_sid_wins, no_ack_fallback, stale_presence, trust_payload_from, extra_args,
    /// ignore_stale_cursor, ack_by_client_id_only; with --auth jwt also trust_header, skip_exp, accept_alg_none, mailbox_by_header;
    /// with --redis also presence_per_process, push_local_only, ids_per_process, presence_without_expiry.
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    bugs: Vec<Bug>,
    /// Engine.IO ping interval in milliseconds (50 to 600000: 0 would stop
    /// heartbeats, and dead peers would never be noticed).
    #[arg(long, default_value_t = Config::default().ping_interval_ms,
          value_parser = clap::value_parser!(u64).range(50..=600_000))]
    ping_interval_ms: u64,
    /// Engine.IO ping timeout in milliseconds (50 to 600000).
    #[arg(long, default_value_t = Config::default().ping_timeout_ms,
          value_parser = clap::value_parser!(u64).range(50..=600_000))]
    ping_timeout_ms: u64,
    /// How long a pushed message waits for the recipient's ack before it is also
    /// stored for polling (M5), 50 to 600000 ms.
    #[arg(long, default_value_t = Config::default().ack_timeout_ms,
          value_parser = clap::value_parser!(u64).range(50..=600_000))]
    ack_timeout_ms: u64,
    /// An origin whose browser pages may call the server (repeatable), e.g.
    /// http://localhost:5173: CORS for the `username` header on GET and POST.
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    cors_origins: Vec<String>,
    /// A connection must send a request's headers within this many ms, also
    /// between requests (closes slowloris and idle connections), 100 to 600000.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    header_read_timeout_ms: u64,
    /// Connections served at once; beyond it new ones are closed at once.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Where identity comes from: `header` (contract v1, the `username`
    /// header) or `jwt` (contract v2: an HS256 token in the CONNECT auth
    /// payload and as a Bearer token on polls; needs a secret).
    #[arg(long, value_enum, default_value_t = AuthMode::Header)]
    auth: AuthMode,
    /// A file holding the HS256 secret for `--auth jwt` (trailing newline
    /// ignored). Or set CHAT_JWT_SECRET; a secret is never taken on the
    /// command line, where every user of the machine can read it.
    #[arg(long, value_name = "PATH")]
    jwt_secret_file: Option<std::path::PathBuf>,
    /// Engine.IO maxPayload in bytes (1 KiB to 64 MiB).
    #[arg(long, default_value_t = Config::default().max_payload_bytes,
          value_parser = clap::value_parser!(u64).range(1_024..=64 << 20))]
    max_payload_bytes: u64,
    /// Where Socket.IO is mounted (the contract's /socket.io, or a
    /// deployment's own, as behind a path-routing proxy).
    #[arg(long = "path", value_name = "PATH", default_value = "/socket.io",
          value_parser = parse_path)]
    socketio_path: String,
    /// Run as one node of a deployment of several sharing this Redis
    /// (redis://HOST:PORT[/DB]): presence, ids, mailboxes and retries live
    /// there, and pushes cross nodes through socketioxide's Redis adapter
    /// (contract N1-N4). Without it, one process as before.
    #[arg(long, value_name = "URL", requires = "node_id")]
    redis: Option<String>,
    /// This node's id in the deployment (with --redis), unique per node.
    #[arg(long, value_name = "ID", requires = "redis", value_parser = parse_node_id)]
    node_id: Option<String>,
}

fn parse_node_id(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text.len() > 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "'{text}' is not a node id: 1 to 64 of [A-Za-z0-9_.-]"
        ));
    }
    Ok(text.to_owned())
}

fn parse_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        return Err(format!("'{path}' is not an absolute URL path"));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    /// Contract v1.
    Header,
    /// Contract v2.
    Jwt,
}

/// The environment variable that may hold the v2 secret.
const SECRET_ENV: &str = "CHAT_JWT_SECRET";

/// The v2 key from `--jwt-secret-file` or [`SECRET_ENV`], or `None` for v1.
fn token_key(args: &Args) -> anyhow::Result<Option<server_under_test::TokenKey>> {
    if args.auth == AuthMode::Header {
        if args.jwt_secret_file.is_some() {
            anyhow::bail!("--jwt-secret-file is for --auth jwt");
        }
        return Ok(None);
    }
    let secret = match (&args.jwt_secret_file, std::env::var(SECRET_ENV)) {
        (Some(path), _) => std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("cannot read --jwt-secret-file {}: {e}", path.display())
        })?,
        (None, Ok(secret)) => secret.into_bytes(),
        (None, Err(_)) => {
            anyhow::bail!("--auth jwt needs a secret: --jwt-secret-file PATH or {SECRET_ENV}")
        }
    };
    let secret = secret.strip_suffix(b"\n").unwrap_or(&secret).to_vec();
    server_under_test::TokenKey::new(secret)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn parse_origin(text: &str) -> Result<String, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("'{text}' is not an origin: {e}"))?;
    match (uri.scheme_str(), uri.host(), uri.path()) {
        (Some("http" | "https"), Some(_), "" | "/") if uri.query().is_none() => {
            Ok(text.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "'{text}' is not an origin: expected scheme://host[:port], e.g. http://localhost:5173"
        )),
    }
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    Bug::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug '{name}'; known: {}", known.join(", "))
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "server_under_test=info".into()),
        )
        .with_target(false)
        .init();

    let config = Config {
        ping_interval_ms: args.ping_interval_ms,
        ping_timeout_ms: args.ping_timeout_ms,
        ack_timeout_ms: args.ack_timeout_ms,
        max_payload_bytes: args.max_payload_bytes,
        // The only wall-clock read: message `ts` counts from here.
        epoch_unix_ms: u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?,
        auth: token_key(&args)?,
        bugs: args.bugs.into_iter().collect(),
        cors_origins: args.cors_origins,
        socketio_path: args.socketio_path,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    let bugs: Vec<&str> = config.bugs.0.iter().map(|b| b.name()).collect();
    let contract = match config.auth {
        None => "",
        Some(_) => " (contract v2, jwt-hs256)",
    };
    let limits = server_under_test::Limits {
        header_read_timeout: std::time::Duration::from_millis(args.header_read_timeout_ms),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    let node = match (&args.redis, &args.node_id) {
        (Some(redis), Some(node)) => {
            let (router, _chat) =
                server_under_test::cluster_app(config.clone(), redis, node).await?;
            Some((
                router,
                format!(" as node {node} of a deployment sharing Redis"),
            ))
        }
        _ => None,
    };
    let cluster = node.as_ref().map_or("", |(_, said)| said.as_str());
    if bugs.is_empty() {
        println!("listening on http://{addr}{contract}{cluster}");
    } else {
        println!(
            "listening on http://{addr}{contract}{cluster} with bugs: {}",
            bugs.join(", ")
        );
    }
    match node {
        Some((router, _)) => server_under_test::serve_router_tcp(listener, router, limits).await?,
        None => {
            let (router, _chat) = server_under_test::app(config);
            server_under_test::serve_router_tcp(listener, router, limits).await?
        }
    }
    Ok(())
}

//! A seeded TCP fault proxy for real networks: the toxiproxy idea, driven by the
//! scenario's fault plan instead of an HTTP API. Clients connect to the proxy,
//! the proxy connects to the server, and each direction of each connection is
//! pumped through the proxy's current [`Mode`]:
//! - latency and jitter: every chunk waits a seeded random delay (order kept);
//! - a black hole ([`Flow::Drop`]): bytes are read and thrown away, and closes
//!   are not passed on, so both ends keep a half-open connection until their own
//!   timers (the Engine.IO ping timeout) notice;
//! - a hold ([`Flow::Hold`]): nothing moves until the hold ends, then all of it;
//! - backpressure ([`Flow::Stop`]): the proxy stops reading, so with its small
//!   receive window the sender's writes block (the server's, for
//!   [`FaultKind::Backpressure`]) until the flow resumes;
//! - a reset: every open connection is aborted with an RST on both sides;
//! - a stall: every open connection becomes a black hole for good, while new
//!   ones pass — a client that switched networks and reconnected at once,
//!   leaving its old connection half-open at the server;
//! - a lost poll response: a `GET /api/messages` goes through, but its response
//!   is swallowed and the client's connection reset;
//! - an idle timeout: a connection with no bytes either way for a while is
//!   closed with a FIN both ways, as load balancers close idle connections;
//! - a stripped upgrade: a request's `Upgrade` header is removed and its
//!   `Connection` made `close`, as a proxy without WebSocket support forwards
//!   it (hop-by-hop headers are not passed on), so the server refuses the
//!   websocket and the session must carry on over long-polling.
//!
//! Nothing here knows about Socket.IO beyond the request-line and header checks
//! (plain HTTP only: through TLS the proxy sees ciphertext, and those two
//! faults cannot apply).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::faults::FaultKind;

/// What happens to the bytes of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flow {
    /// Delivered after the mode's latency.
    #[default]
    Pass,
    /// Read and discarded; closes are held back.
    Drop,
    /// Kept until the flow changes.
    Hold,
    /// Not read at all until the flow changes: the bytes stay in the kernel,
    /// and once the windows are full the sender's writes block.
    Stop,
}

/// The receive buffer of the proxy's socket towards the server: small, so a
/// stopped reader pushes back on the server after a few KiB, as a phone's or
/// a middlebox's would, instead of after the several MiB Linux autotunes to.
const SERVER_SIDE_RCVBUF: u32 = 16 * 1024;

/// The proxy's behaviour right now, for every connection through it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// Client → server.
    pub to_server: Flow,
    /// Server → client.
    pub from_server: Flow,
    /// Added one-way delay per chunk, drawn uniformly from this range.
    pub latency_ms: (u64, u64),
    /// Swallow the responses of mailbox polls and reset their connections.
    pub lose_poll_responses: bool,
    /// Bumped to abort every connection open at that moment.
    pub resets: u64,
    /// Bumped to black-hole every connection open at that moment, for good.
    pub stalls: u64,
    /// Strip `Upgrade` from the requests of connections opened meanwhile.
    pub strip_upgrade: bool,
    /// Close connections quiet for this long (both ways), ms.
    pub idle_timeout_ms: Option<u64>,
}

impl Mode {
    /// The healthy mode with `latency_ms` and the given faults in force.
    /// `resets` and `stalls` count the instants so far (see the fields).
    pub fn with_faults(
        latency_ms: (u64, u64),
        faults: &[FaultKind],
        (resets, stalls): (u64, u64),
    ) -> Self {
        let mut mode = Mode {
            latency_ms,
            resets,
            stalls,
            ..Mode::default()
        };
        for kind in faults {
            match kind {
                FaultKind::Partition => {
                    mode.to_server = Flow::Drop;
                    mode.from_server = Flow::Drop;
                }
                FaultKind::PartitionToServer => mode.to_server = Flow::Drop,
                FaultKind::PartitionFromServer => mode.from_server = Flow::Drop,
                FaultKind::Hold => {
                    for flow in [&mut mode.to_server, &mut mode.from_server] {
                        if *flow == Flow::Pass {
                            *flow = Flow::Hold;
                        }
                    }
                }
                FaultKind::LosePollResponse => mode.lose_poll_responses = true,
                FaultKind::Backpressure => {
                    if mode.from_server == Flow::Pass {
                        mode.from_server = Flow::Stop;
                    }
                }
                FaultKind::StripUpgrade => mode.strip_upgrade = true,
                FaultKind::IdleTimeout { after_ms } => {
                    mode.idle_timeout_ms = Some(
                        mode.idle_timeout_ms
                            .map_or(*after_ms, |ms| ms.min(*after_ms)),
                    )
                }
                FaultKind::Reset | FaultKind::Stall => {} // instants, counted
                FaultKind::Restart { .. } => {}           // the server's own: `--restart-cmd`
            }
        }
        mode
    }
}

/// A running proxy. Dropping it stops accepting; open connections end with it.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: tokio::task::JoinHandle<()>,
    relays: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a relay while it lives (its two sockets with it).
struct Live(Arc<std::sync::atomic::AtomicUsize>);

impl Live {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`; `seed` drives jitter.
    pub async fn start(target: SocketAddr, seed: u64) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, watcher) = watch::channel(Mode::default());
        let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
        let relays = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&relays);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let live = Live::new(&counted);
                let relay = relay(client, target, watcher.clone(), Arc::clone(&rng));
                tokio::spawn(async move {
                    relay.await;
                    drop(live);
                });
            }
        });
        Ok(Self {
            addr,
            mode,
            accept,
            relays,
        })
    }

    /// Connections being relayed now (each holds two sockets until it ends).
    pub fn open_connections(&self) -> usize {
        self.relays.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        self.mode.borrow().clone()
    }

    /// Switches every connection, open or future, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// How a pump ended.
enum End {
    /// Its source closed and the close was passed on.
    Eof,
    /// The connection must be aborted (a reset, a swallowed poll response, an error).
    Abort,
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    mode: watch::Receiver<Mode>,
    rng: Arc<Mutex<SmallRng>>,
) {
    let (generation, stall) = {
        let now = mode.borrow();
        (now.resets, now.stalls)
    };
    let Ok(server) = connect_with_small_window(target).await else {
        abort(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let conn = ConnState {
        is_poll: AtomicBool::new(false),
        quiet_since: Mutex::new(tokio::time::Instant::now()),
    };
    let (mut client, mut server) = (client, server);
    let ended = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let up = pump(
            &mut client_read,
            &mut server_write,
            Direction::ToServer,
            mode.clone(),
            &rng,
            (generation, stall),
            &conn,
        );
        let down = pump(
            &mut server_read,
            &mut client_write,
            Direction::FromServer,
            mode.clone(),
            &rng,
            (generation, stall),
            &conn,
        );
        let idle = idle_close(mode.clone(), &conn);
        let gone = proxy_gone(mode.clone());
        tokio::pin!(up, down, idle, gone);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            // Both ways closed: the relay is over. (Waiting on `idle` here
            // held both sockets for ever: a live hunt ran out of file
            // descriptors after some 250 plays.)
            if up_done && down_done {
                break None;
            }
            tokio::select! {
                () = &mut gone => break Some(End::Abort),
                end = &mut up, if !up_done => match end {
                    End::Eof => up_done = true,
                    End::Abort => break Some(End::Abort),
                },
                end = &mut down, if !down_done => match end {
                    End::Eof => down_done = true,
                    End::Abort => break Some(End::Abort),
                },
                () = &mut idle => break Some(End::Eof),
                else => break None,
            }
        }
    };
    match ended {
        Some(End::Abort) => {
            abort(&client);
            abort(&server);
        }
        // Closed for being quiet: a FIN each way, as a load balancer does.
        Some(End::Eof) => {
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
        }
        None => {}
    }
}

/// Resolves when the proxy is dropped: its open connections end with it.
async fn proxy_gone(mut mode: watch::Receiver<Mode>) {
    while mode.changed().await.is_ok() {}
}

/// One proxied connection's state, shared by its two pumps.
struct ConnState {
    /// Its first request is a mailbox poll.
    is_poll: AtomicBool,
    /// When a byte last crossed it, either way.
    quiet_since: Mutex<tokio::time::Instant>,
}

/// Resolves once the connection has been quiet for the mode's idle timeout.
async fn idle_close(mut mode: watch::Receiver<Mode>, conn: &ConnState) {
    loop {
        let limit = mode.borrow_and_update().idle_timeout_ms;
        let Some(ms) = limit else {
            if mode.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        };
        let deadline = *conn.quiet_since.lock().unwrap() + Duration::from_millis(ms);
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            changed = mode.changed() => if changed.is_err() {
                std::future::pending::<()>().await;
            },
        }
    }
}

/// Connects to `target` with a [`SERVER_SIDE_RCVBUF`] receive buffer (set
/// before connecting, so the window scale is agreed with it).
async fn connect_with_small_window(target: SocketAddr) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_recv_buffer_size(SERVER_SIDE_RCVBUF)?;
    socket.connect(target).await
}

/// Closes with an RST instead of a FIN.
fn abort(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    FromServer,
}

impl Direction {
    /// This direction's flow for a connection opened at stall count `stall`.
    fn flow(self, mode: &Mode, stall: u64) -> Flow {
        if mode.stalls != stall {
            return Flow::Drop;
        }
        match self {
            Direction::ToServer => mode.to_server,
            Direction::FromServer => mode.from_server,
        }
    }
}

async fn pump<R, W>(
    src: &mut R,
    dst: &mut W,
    direction: Direction,
    mut mode: watch::Receiver<Mode>,
    rng: &Mutex<SmallRng>,
    (generation, stall): (u64, u64),
    conn: &ConnState,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut first = true;
    loop {
        // Backpressure: leave the bytes unread until the flow changes.
        if wait_out(&mut mode, Flow::Stop, direction, (generation, stall))
            .await
            .is_none()
        {
            return End::Abort;
        }
        let read = tokio::select! {
            read = src.read(&mut buf) => read,
            () = reset(&mut mode, generation) => return End::Abort,
        };
        let n = match read {
            Ok(n) => n,
            Err(_) => return End::Abort,
        };
        if n > 0 {
            *conn.quiet_since.lock().unwrap() = tokio::time::Instant::now();
        }
        let mut stripped = None;
        if first && direction == Direction::ToServer {
            conn.is_poll
                .store(buf[..n].starts_with(b"GET /api/messages"), Ordering::SeqCst);
            if mode.borrow().strip_upgrade {
                stripped = strip_upgrade(&buf[..n]);
            }
        }
        first = false;
        // Wait out holds; learn whether these bytes fall into a black hole.
        let Some(current) = wait_out(&mut mode, Flow::Hold, direction, (generation, stall)).await
        else {
            return End::Abort;
        };
        if n == 0 {
            // Hold a close back while this direction is a black hole.
            if wait_out(&mut mode, Flow::Drop, direction, (generation, stall))
                .await
                .is_none()
            {
                return End::Abort;
            }
            let _ = dst.shutdown().await;
            return End::Eof;
        }
        if direction == Direction::FromServer
            && current.lose_poll_responses
            && conn.is_poll.load(Ordering::SeqCst)
        {
            return End::Abort;
        }
        if direction.flow(&current, stall) == Flow::Drop {
            continue;
        }
        let (low, high) = current.latency_ms;
        if high > 0 {
            let delay = rng.lock().unwrap().random_range(low..=high.max(low));
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let bytes = stripped.as_deref().unwrap_or(&buf[..n]);
        if dst.write_all(bytes).await.is_err() {
            return End::Abort;
        }
    }
}

/// `chunk` with its request head forwarded by a proxy that does not support
/// WebSocket: no `Upgrade` header, `Connection: close`; `None` when the head
/// asks for no upgrade (or is not all in this chunk: the first read of a
/// fresh connection holds a whole request head in practice).
fn strip_upgrade(chunk: &[u8]) -> Option<Vec<u8>> {
    let end = chunk.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&chunk[..end]).ok()?;
    let is = |line: &str, name: &str| {
        line.len() > name.len()
            && line.as_bytes()[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name)
    };
    if !head.split("\r\n").any(|line| is(line, "upgrade")) {
        return None;
    }
    let mut out = String::with_capacity(end + 4);
    for line in head.split("\r\n") {
        if is(line, "upgrade") {
            continue;
        }
        out.push_str(if is(line, "connection") {
            "Connection: close"
        } else {
            line
        });
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&chunk[end + 4..]);
    Some(bytes)
}

/// Waits while `direction` flows as `flow`; the mode then in force, or
/// `None` when the connection must be aborted (a reset, the proxy gone).
async fn wait_out(
    mode: &mut watch::Receiver<Mode>,
    flow: Flow,
    direction: Direction,
    (generation, stall): (u64, u64),
) -> Option<Mode> {
    loop {
        let current = mode.borrow_and_update().clone();
        if current.resets != generation {
            return None;
        }
        if direction.flow(&current, stall) != flow {
            return Some(current);
        }
        mode.changed().await.ok()?;
    }
}

/// Resolves when the proxy's reset counter moves past `generation`.
async fn reset(mode: &mut watch::Receiver<Mode>, generation: u64) {
    loop {
        if mode.borrow_and_update().resets != generation {
            return;
        }
        if mode.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripped_upgrade_loses_its_hop_by_hop_headers_and_nothing_else() {
        let request = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUPGRADE: websocket\r\nconnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\nbody";
        let out = strip_upgrade(request).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nConnection: close\r\nSec-WebSocket-Key: k\r\n\r\nbody"
        );
        // No upgrade asked, or a header merely starting with the name: untouched.
        assert_eq!(strip_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(
            strip_upgrade(b"GET / HTTP/1.1\r\nUpgrade-Insecure-Requests: 1\r\n\r\n"),
            None
        );
        assert_eq!(
            strip_upgrade(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n"),
            None
        );
    }

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text).await?;
        let mut got = vec![0u8; text.len()];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut got))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no echo"))??;
        Ok(got)
    }

    #[tokio::test]
    async fn an_idle_timeout_closes_quiet_connections_with_a_fin_and_spares_busy_ones() {
        let proxy = FaultProxy::start(echo_server().await, 1).await.unwrap();
        let idle = FaultKind::IdleTimeout { after_ms: 1_500 };
        proxy.set(Mode::with_faults((0, 0), &[idle], (0, 0)));
        let mut busy = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut quiet = TcpStream::connect(proxy.addr()).await.unwrap();
        // Ten exchanges 200 ms apart: 2 s in all, longer than the timeout,
        // but never quiet for long.
        for _ in 0..10 {
            assert_eq!(round_trip(&mut busy, b"hi").await.unwrap(), b"hi");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The quiet one was closed cleanly: end of stream, not a reset.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), quiet.read_to_end(&mut rest))
            .await
            .expect("the quiet connection is closed");
        assert_eq!(read.unwrap(), 0);
        assert_eq!(round_trip(&mut busy, b"on").await.unwrap(), b"on");
    }

    /// Waits up to 2 s for `proxy` to relay no connection.
    async fn drained(proxy: &FaultProxy) -> bool {
        for _ in 0..200 {
            if proxy.open_connections() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_closed_connection_releases_its_sockets_and_a_dropped_proxy_ends_its_own() {
        let proxy = FaultProxy::start(echo_server().await, 1).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hi").await.unwrap(), b"hi");
        assert_eq!(proxy.open_connections(), 1);
        // The client closes; the echo server closes back: both ways done.
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
        drop(stream);
        assert!(drained(&proxy).await, "a closed connection still relayed");
        // One left open when the proxy goes: it ends too.
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut open, b"on").await.unwrap(), b"on");
        let relays = Arc::clone(&proxy.relays);
        drop(proxy);
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(2), open.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the connection outlived its proxy");
        for _ in 0..200 {
            if relays.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the relay outlived its proxy");
    }

    #[tokio::test]
    async fn passes_drops_holds_and_resets() {
        let proxy = FaultProxy::start(echo_server().await, 1).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"one").await.unwrap(), b"one");

        // A black hole: the echo is lost, the connection stays open.
        proxy.set(Mode::with_faults((0, 0), &[FaultKind::Partition], (0, 0)));
        assert!(round_trip(&mut stream, b"two").await.is_err());
        proxy.set(Mode::default());
        assert_eq!(round_trip(&mut stream, b"six").await.unwrap(), b"six");

        // A hold delivers late, in order.
        proxy.set(Mode::with_faults((0, 0), &[FaultKind::Hold], (0, 0)));
        assert!(round_trip(&mut stream, b"ten").await.is_err());
        proxy.set(Mode::default());
        let mut late = [0u8; 3];
        stream.read_exact(&mut late).await.unwrap();
        assert_eq!(&late, b"ten");

        // A reset aborts what is open, not what comes after.
        proxy.set(Mode::with_faults((0, 0), &[], (1, 0)));
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest))
            .await
            .expect("the reset ends the connection");
        assert!(read.is_err() || rest.is_empty(), "{read:?}");
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"new").await.unwrap(), b"new");
    }

    #[tokio::test]
    async fn a_stall_silences_open_connections_for_good_not_new_ones() {
        let proxy = FaultProxy::start(echo_server().await, 1).await.unwrap();
        let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut old, b"one").await.unwrap(), b"one");
        proxy.set(Mode::with_faults((0, 0), &[], (0, 1)));
        assert!(round_trip(&mut old, b"two").await.is_err());
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut new, b"new").await.unwrap(), b"new");
        assert!(round_trip(&mut old, b"six").await.is_err(), "still silent");
    }

    #[tokio::test]
    async fn backpressure_blocks_the_servers_writes_until_it_ends() {
        // Above what Linux lets a loopback sender buffer (its send buffer
        // autotunes to a few MiB): the writer must block before the end.
        const TOTAL: usize = 32 << 20;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let server = listener.local_addr().unwrap();
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&written);
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            while counter.load(Ordering::SeqCst) < TOTAL {
                s.write_all(&chunk).await.unwrap();
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        });
        let proxy = FaultProxy::start(server, 1).await.unwrap();
        proxy.set(Mode::with_faults(
            (0, 0),
            &[FaultKind::Backpressure],
            (0, 0),
        ));
        // The client reads eagerly throughout: whatever blocks the server is
        // the proxy's, not a slow client's.
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&received);
        let reader = tokio::spawn(async move {
            let mut got = Vec::with_capacity(TOTAL);
            let mut buf = vec![0u8; 64 * 1024];
            while got.len() < TOTAL {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
                count.store(got.len(), Ordering::SeqCst);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let blocked_at = written.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            written.load(Ordering::SeqCst),
            blocked_at,
            "the server's writes went on into a reader that stopped"
        );
        assert!(blocked_at < TOTAL / 4, "{blocked_at} bytes buffered");
        assert_eq!(
            received.load(Ordering::SeqCst),
            0,
            "nothing passes while stopped"
        );
        proxy.set(Mode::default());
        let got = tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("everything is delivered once the reader resumes")
            .unwrap();
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, b)| *b == ((i % (64 * 1024)) % 251) as u8));
    }

    #[tokio::test]
    async fn a_lost_poll_response_resets_only_polls() {
        let proxy = FaultProxy::start(echo_server().await, 1).await.unwrap();
        proxy.set(Mode::with_faults(
            (0, 0),
            &[FaultKind::LosePollResponse],
            (0, 0),
        ));
        let mut poll = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut poll, b"GET /api/messages?after=0")
            .await
            .is_err());
        let mut other = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            round_trip(&mut other, b"GET /health").await.unwrap(),
            b"GET /health"
        );
    }
}

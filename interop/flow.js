// The seed's front-end flows, written once for socket.io-client in Node and in
// a browser page: alice and bob connect with the `username` header
// (extraHeaders) and the seed's options, see each other come and go, send with
// acks, and a message to an offline user is fetched from /api/messages.
// With `tokens` (name → JWT, contract v2) identity is socket.io's `auth`
// option and a Bearer token on the poll; no header is sent.
// Returns plain data; the Rust driver judges it.

export async function chatFlow({ io, url, transports, tag, fetchImpl, tokens }) {
  const alice = `alice.${tag}`;
  const bob = `bob.${tag}`;
  const carol = `carol.${tag}`;
  const checks = [];
  const check = (clause, name, ok, detail) =>
    checks.push({ clause, name, ok: Boolean(ok), detail: JSON.stringify(detail ?? null) });

  const open = (name) =>
    new Promise((resolve) => {
      const identity = tokens
        ? { auth: { token: tokens[name] } }
        : { extraHeaders: { username: name } };
      const socket = io(url, {
        transports,
        ...identity,
        reconnection: true,
        reconnectionDelay: 1000,
        reconnectionAttempts: 5,
        timeout: 5000,
        forceNew: true,
      });
      const events = [];
      socket.onAny((event, data) => events.push([event, data]));
      // The server asks for an ack on every push (M5): answer it.
      socket.on('new_message', (_message, ack) => typeof ack === 'function' && ack());
      const done = (registered, error) => {
        clearTimeout(timer);
        resolve({ socket, events, registered, error });
      };
      const timer = setTimeout(() => done(false, 'no connect or connect_error within 8 s'), 8000);
      socket.once('connect', () => done(true));
      socket.once('connect_error', (err) => {
        socket.disconnect();
        done(false, err.data ?? err.message);
      });
    });

  const waitFor = async (peer, event, matches, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const hit = peer.events.find(([e, data]) => e === event && matches(data));
      if (hit) return hit[1];
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  };
  const send = (peer, to, content, n) =>
    peer.socket
      .timeout(5000)
      .emitWithAck('send_message', { to, content, client_id: `${tag}-${n}` })
      .catch((e) => ({ error: String(e) }));

  const a = await open(alice);
  const result = {
    registered: a.registered,
    connect_error: a.error ?? null,
    transport: a.registered ? a.socket.io.engine.transport.name : null,
    checks,
  };
  if (!a.registered) return result;

  const b = await open(bob);
  check('P1', 'bob registers too', b.registered, b.error);
  const online = await waitFor(a, 'user_online', (d) => d?.username === bob);
  check('P1', 'alice hears user_online for bob', online, online);

  const ack = await send(a, bob, 'hello from socket.io-client ✓', 1);
  check('M2', 'the ack is {id, delivery}', typeof ack?.id === 'number', ack);
  check('M3', 'an online recipient is acked websocket', ack?.delivery === 'websocket', ack);
  const push = await waitFor(b, 'new_message', (m) => m?.id === ack?.id);
  check('M3', 'bob receives the push, from alice', push?.from === alice, push);

  const ack2 = await send(a, carol, 'for later', 2);
  check('M4', 'an offline recipient is acked polling', ack2?.delivery === 'polling', ack2);
  const headers = tokens ? { authorization: `Bearer ${tokens[carol]}` } : { username: carol };
  const response = await fetchImpl(`${url}/api/messages?after=0`, { headers });
  const mailbox = await response.json().catch(() => null);
  const stored = mailbox?.messages?.find((m) => m.id === ack2?.id);
  check('L1', 'carol fetches it from /api/messages', response.status === 200 && stored?.from === alice, mailbox);

  b.socket.disconnect();
  const offline = await waitFor(a, 'user_offline', (d) => d?.username === bob);
  check('P3', 'alice hears user_offline for bob', offline, offline);
  a.socket.disconnect();
  result.transport = a.socket.io.engine?.transport?.name ?? result.transport;
  return result;
}

// The faulted timeline, written once for socket.io-client in Node
// (faulted.mjs) and in a browser page (faulted.html):
// alice connects through the harness's fault proxy (`aliceUrl`), bob straight
// to the server. Once both are connected `ready()` is told; the Rust driver
// then black-holes the proxy from 2 s to 6 s and resets its connections at
// 12 s, on the same clock. bob sends to alice before, during and after. At
// the end alice reads her mailbox. Returns plain data; the driver judges it.

export async function faultedFlow({ io, aliceUrl, serverUrl, tag, transports, fetchImpl, ready }) {
  const alice = `alice.${tag}`;
  const bob = `bob.${tag}`;
  const log = [];
  let t0 = Date.now();
  const at = () => Date.now() - t0;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const open = (url, name) => {
    const socket = io(url, {
      transports,
      extraHeaders: { username: name },
      reconnection: true,
      reconnectionDelay: 250,
      reconnectionDelayMax: 1000,
      timeout: 2000,
      forceNew: true,
    });
    socket.onAny((event, data) => log.push({ at: at(), who: name, event, data }));
    // The server asks for an ack on every push (M5): answer it.
    socket.on('new_message', (_message, ack) => typeof ack === 'function' && ack());
    socket.on('connect', () => log.push({ at: at(), who: name, event: 'connect' }));
    socket.on('disconnect', (reason) => log.push({ at: at(), who: name, event: 'disconnect', data: reason }));
    return socket;
  };

  const a = open(aliceUrl, alice);
  const b = open(serverUrl, bob);
  const deadline = Date.now() + 8000;
  while (!(a.connected && b.connected) && Date.now() < deadline) await sleep(20);
  t0 = Date.now();
  await ready(a.connected && b.connected);

  const sends = [];
  const send = async (n, content) => {
    const ack = await b
      .timeout(3000)
      .emitWithAck('send_message', { to: alice, content, client_id: `${tag}-${n}` })
      .catch((e) => ({ error: String(e) }));
    sends.push({ at: at(), n, ack });
  };
  const until = (ms) => sleep(Math.max(0, ms - at()));
  await until(1000);
  await send(1, 'before the black hole');
  // Before the server can have noticed (its ping timeout is 1 s + 1 s): the
  // push goes into the hole unacknowledged, and must reach the mailbox (M5).
  await until(2300);
  await send(2, 'into the black hole');
  await until(13000);
  await send(3, 'after the reset');
  await until(16000);
  const mail = await fetchImpl(`${serverUrl}/api/messages?after=0`, { headers: { username: alice } })
    .then((r) => r.json())
    .catch((e) => ({ error: String(e) }));
  const online = await fetchImpl(`${serverUrl}/api/online`)
    .then((r) => r.json())
    .catch((e) => ({ error: String(e) }));
  const result = { transports: transports.join(','), log, sends, mail, online, alice_connected: a.connected };
  a.disconnect();
  b.disconnect();
  return result;
}

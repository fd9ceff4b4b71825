// The chat contract (v1) on Node's socket.io 4, an independent server for
// `harness check` beside python_server.py and the Rust reference: its own
// wording, its own choices where the contract leaves room (a connection
// without a valid username is refused with CONNECT_ERROR from a middleware,
// polled entries are discarded up to the cursor, L2's MAY).
//
//   node node_server.mjs [--port 0] [--ping-interval 25] [--ping-timeout 20]
//                        [--ack-timeout 5] [--defect NAME]
//
// --defect plants one bug, to prove the check catches it on every seed:
//   one_sid_per_user  presence keyed by user (the seed's online_users dict)
//   accept_extra_args send_message with extra arguments is accepted (M1)
import http from 'node:http';
import { Server } from 'socket.io';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const port = Number(args.port ?? 0);
const pingInterval = Number(args['ping-interval'] ?? 25) * 1000;
const pingTimeout = Number(args['ping-timeout'] ?? 20) * 1000;
const ackTimeout = Number(args['ack-timeout'] ?? 5) * 1000;
const defect = args.defect ?? 'none';
if (!['none', 'one_sid_per_user', 'accept_extra_args'].includes(defect)) {
  console.error(`unknown --defect ${defect}`);
  process.exit(2);
}

const VALID = /^[A-Za-z0-9_.-]{1,32}$/;
const valid = (name) => typeof name === 'string' && VALID.test(name);

const sids = new Map(); // username -> Set of socket ids
const userOf = new Map(); // socket id -> username
const mailboxes = new Map(); // username -> { nextSeq, entries }
const retries = new Map(); // sender \0 client_id -> { to, content, ack }
let nextId = 1;

const online = () => [...sids].filter(([, s]) => s.size > 0).map(([u]) => u).sort();

function store(message) {
  const box = mailboxes.get(message.to) ?? { nextSeq: 1, entries: [] };
  box.entries.push({ seq: box.nextSeq, ...message });
  box.nextSeq += 1;
  mailboxes.set(message.to, box);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const json = (status, body) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method !== 'GET') return json(405, { error: 'GET only' });
  if (url.pathname === '/health') return json(200, { status: 'ok' });
  if (url.pathname === '/api/online') return json(200, { users: online() });
  if (url.pathname === '/api/messages') {
    const username = req.headers.username;
    if (!valid(username)) return json(401, { error: 'who are you? (username header)' });
    const afters = url.searchParams.getAll('after');
    if (afters.length > 1) return json(400, { error: 'one after, please' });
    const after = afters[0] ?? '0';
    if (!/^[0-9]+$/.test(after) || BigInt(after) >= 2n ** 64n) {
      return json(400, { error: 'after must be a base-10 u64' });
    }
    const box = mailboxes.get(username) ?? { nextSeq: 1, entries: [] };
    if (BigInt(after) > BigInt(box.nextSeq - 1)) {
      return json(409, { error: 'cursor ahead of the mailbox', latest: box.nextSeq - 1 });
    }
    // L2 (MAY): a poll acknowledges everything up to its cursor.
    box.entries = box.entries.filter((e) => BigInt(e.seq) > BigInt(after));
    return json(200, { messages: box.entries });
  }
  return json(404, { error: 'no such path' });
});

const io = new Server(server, { pingInterval, pingTimeout, cors: { origin: '*' } });

io.use((socket, next) => {
  const username = socket.handshake.headers.username;
  if (!valid(username)) return next(new Error('a valid username header is required'));
  socket.data.username = username;
  next();
});

function tellOthers(username, event) {
  for (const [other, set] of sids) {
    if (other === username) continue;
    for (const sid of set) io.to(sid).emit(event, { username });
  }
}

io.on('connection', (socket) => {
  const username = socket.data.username;
  const mine = sids.get(username) ?? new Set();
  const cameOnline = mine.size === 0;
  if (defect === 'one_sid_per_user') mine.clear();
  mine.add(socket.id);
  sids.set(username, mine);
  userOf.set(socket.id, username);
  if (cameOnline) tellOthers(username, 'user_online');

  socket.on('disconnect', () => {
    userOf.delete(socket.id);
    const set = sids.get(username) ?? new Set();
    if (defect === 'one_sid_per_user') set.clear();
    else set.delete(socket.id);
    if (set.size === 0) tellOthers(username, 'user_offline');
  });

  socket.on('send_message', (...all) => {
    const ack = all.length > 0 && typeof all[all.length - 1] === 'function' ? all.pop() : null;
    const answer = (body) => ack && ack(body);
    if (all.length !== 1 && defect !== 'accept_extra_args') {
      return answer({ error: 'send_message takes one object' });
    }
    const data = all[0];
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      return answer({ error: 'send_message takes one object' });
    }
    const { to, content, client_id: clientId } = data;
    if (!valid(to)) return answer({ error: 'bad recipient' });
    if (typeof content !== 'string' || [...content].length < 1 || [...content].length > 4096) {
      return answer({ error: 'content must be 1 to 4096 characters' });
    }
    if (typeof clientId !== 'string' || clientId.length < 1 || clientId.length > 64) {
      return answer({ error: 'client_id must be 1 to 64 characters' });
    }
    const key = `${username}\0${clientId}`;
    const before = retries.get(key);
    if (before) {
      if (before.to === to && before.content === content) return answer(before.ack);
      return answer({ error: 'client_id reused for another message' });
    }
    const message = { id: nextId++, from: username, to, content, ts: Date.now() };
    const targets = [...(sids.get(to) ?? [])];
    let result;
    if (targets.length > 0) {
      // M5: the first ack from any connection settles it; none in time, or
      // every connection closing first, stores it.
      let settled = false;
      const fallBack = () => {
        if (!settled) {
          settled = true;
          store(message);
        }
      };
      const timer = setTimeout(fallBack, ackTimeout);
      let open = targets.length;
      for (const sid of targets) {
        const target = io.sockets.sockets.get(sid);
        if (!target) {
          open -= 1;
          continue;
        }
        target.timeout(ackTimeout).emit('new_message', message, (err) => {
          if (!err && !settled) {
            settled = true;
            clearTimeout(timer);
          }
        });
        target.once('disconnect', () => {
          open -= 1;
          if (open === 0) {
            clearTimeout(timer);
            fallBack();
          }
        });
      }
      if (open === 0) {
        clearTimeout(timer);
        fallBack();
      }
      result = { id: message.id, delivery: 'websocket' };
    } else {
      store(message);
      result = { id: message.id, delivery: 'polling' };
    }
    retries.set(key, { to, content, ack: result });
    return answer(result);
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

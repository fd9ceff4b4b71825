"""The chat contract on python-socketio, the seed's own stack (minus FastAPI and
Redis: aiohttp and memory), to show `harness check` is not tuned to our Rust
reference server.

    python3 python_server.py [--port 0] [--ping-interval 25] [--ping-timeout 20]
                             [--ack-timeout 5] [--seed] [--jwt-secret-file PATH]

It differs from the reference server where the contract leaves room: a
connection without a valid username is kept, unregistered (the seed's
behaviour), not refused; errors are worded its own way; polled entries are
kept. `--seed` turns it back into the seed's backend as the seed document
describes it: `online_users[username] = sid` (the last connection wins, any
disconnect takes the user offline) and pushes without acknowledgement.

`--jwt-secret-file PATH` makes it a contract v2 server (H2, A1-A6): identity is
an HS256 token checked by PyJWT, in the CONNECT auth payload and as a Bearer
token on polls; the `username` header is ignored. It words its refusals its
own way ("authentication failed"), again to keep the check honest.
"""
import argparse
import asyncio
import itertools
import json
import logging
import re
import time

import jwt
import socketio
from aiohttp import web

VALID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
log = logging.getLogger("seed")


def valid(name):
    return isinstance(name, str) and VALID.match(name) is not None


class Chat:
    def __init__(self, sio, ack_timeout, seed):
        self.sio = sio
        self.ack_timeout = ack_timeout
        self.seed = seed
        self.user_of = {}  # sid -> username, registered connections only
        self.sids = {}  # username -> [sid, ...] (the seed: exactly one)
        self.ids = itertools.count(1)
        self.mailboxes = {}  # username -> (next_seq, [entry, ...])
        self.retries = {}  # (sender, client_id) -> (to, content, ack)
        self.unacked = {}  # message id -> (message, {sid, ...})

    def online(self):
        return sorted(u for u, sids in self.sids.items() if sids)

    async def tell_others(self, username, event):
        for other, sids in list(self.sids.items()):
            if other != username:
                for sid in list(sids):
                    await self.sio.emit(event, {"username": username}, to=sid)

    async def connect(self, sid, username):
        came_online = not self.sids.get(username)
        if self.seed:
            self.sids[username] = [sid]  # online_users[username] = sid
        else:
            self.sids.setdefault(username, []).append(sid)
        self.user_of[sid] = username
        log.info("🟢 User '%s' connected (sid: %s)", username, sid)
        if came_online:
            await self.tell_others(username, "user_online")

    async def disconnect(self, sid):
        username = self.user_of.pop(sid, None)
        if username is None:
            return
        sids = self.sids.get(username, [])
        if self.seed:
            sids.clear()  # del online_users[username], whichever sid left
        elif sid in sids:
            sids.remove(sid)
        for message_id, (message, waiting) in list(self.unacked.items()):
            if sid in waiting:  # M5: unacknowledged when its connection closed
                self.store(message)
                del self.unacked[message_id]
        if not sids:
            log.info("⚪ User %s went offline", username)
            await self.tell_others(username, "user_offline")

    def store(self, message):
        next_seq, entries = self.mailboxes.setdefault(message["to"], (1, []))
        entries.append({"seq": next_seq, **message})
        self.mailboxes[message["to"]] = (next_seq + 1, entries)

    async def send(self, sid, data):
        sender = self.user_of.get(sid)
        if sender is None:
            return {"error": "not registered: connect with a valid username header"}
        if not isinstance(data, dict):
            return {"error": "send_message takes one object"}
        to, content, client_id = data.get("to"), data.get("content"), data.get("client_id")
        if not valid(to):
            return {"error": "'to' is not a valid username"}
        if not isinstance(content, str) or not 1 <= len(content) <= 4096:
            return {"error": "'content' must be 1 to 4096 characters"}
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            return {"error": "'client_id' must be 1 to 64 characters"}
        if (sender, client_id) in self.retries:
            # M1: only the same message again is a retry.
            old_to, old_content, old_ack = self.retries[(sender, client_id)]
            if (old_to, old_content) == (to, content):
                return old_ack
            return {"error": "client_id already used for a different message"}
        message = {"id": next(self.ids), "from": sender, "to": to,
                   "content": content, "ts": int(time.time() * 1000)}
        sids = list(self.sids.get(to, []))
        if sids:
            log.info("💬 Real-time message: %s → %s", sender, to)
            if self.seed:
                for target in sids:
                    await self.sio.emit("new_message", message, to=target)
            else:
                self.unacked[message["id"]] = (message, set(sids))
                for target in sids:
                    await self.sio.emit("new_message", message, to=target,
                                        callback=lambda *_: self.unacked.pop(message["id"], None))
                asyncio.get_running_loop().call_later(
                    self.ack_timeout, self.fall_back, message["id"])
            ack = {"id": message["id"], "delivery": "websocket"}
        else:
            self.store(message)
            ack = {"id": message["id"], "delivery": "polling"}
        self.retries[(sender, client_id)] = (to, content, ack)
        return ack

    def fall_back(self, message_id):
        pending = self.unacked.pop(message_id, None)
        if pending is not None:
            self.store(pending[0])


class Tokens:
    """Contract v2 identity: an HS256 JWT with `sub` and `exp` (A1)."""

    def __init__(self, secret):
        self.secret = secret

    def user(self, token):
        if not isinstance(token, str):
            return None
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"],
                                options={"require": ["exp", "sub"]})
        except jwt.PyJWTError as e:
            log.warning("🚫 token refused: %s", type(e).__name__)  # never the token (A6)
            return None
        sub = claims.get("sub")
        return sub if valid(sub) else None


def build(args):
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*",
                               ping_interval=args.ping_interval, ping_timeout=args.ping_timeout)
    chat = Chat(sio, args.ack_timeout, args.seed)
    app = web.Application()
    sio.attach(app)

    tokens = Tokens(args.jwt_secret) if args.jwt_secret else None

    @sio.event
    async def connect(sid, environ, auth=None):
        if tokens is not None:  # v2: the token, never the header (A2)
            username = tokens.user((auth or {}).get("token") if isinstance(auth, dict) else None)
            if username is None:
                raise socketio.exceptions.ConnectionRefusedError("authentication failed")
            await chat.connect(sid, username)
            return
        username = environ.get("HTTP_USERNAME")
        if not valid(username):
            log.warning("⚠️ Connection without username")  # kept, never registered
            return
        await chat.connect(sid, username)

    @sio.event
    async def disconnect(sid, *reason):
        await chat.disconnect(sid)

    @sio.event
    async def send_message(sid, data=None, *extra):
        if extra:  # M1: one argument
            return {"error": "send_message takes exactly one argument"}
        return await chat.send(sid, data)

    async def health(_):
        if tokens is not None:
            return web.json_response({"status": "ok", "contract": "v2", "auth": "jwt-hs256"})
        return web.json_response({"status": "ok"})

    async def online(_):
        return web.json_response({"users": chat.online()})

    async def messages(request):
        if tokens is not None:  # v2: Bearer only (A3)
            bearer = request.headers.get("Authorization", "")
            username = tokens.user(bearer[len("Bearer "):]) if bearer.startswith("Bearer ") else None
            if username is None:
                return error(401, "authentication failed")
        else:
            username = request.headers.get("username")
        if not valid(username):
            return error(401, "a valid username header is required")
        after, refused = cursor(request)
        if refused is not None:
            return refused
        next_seq, entries = chat.mailboxes.get(username, (1, []))
        if after > next_seq - 1:  # L4: a stale cursor discards nothing
            return web.json_response(
                {"error": "cursor above the latest seq", "latest": next_seq - 1}, status=409)
        return web.json_response({"messages": [e for e in entries if e["seq"] > after]})

    app.router.add_get("/health", health)
    app.router.add_get("/api/online", online)
    app.router.add_get("/api/messages", messages)
    return app


def error(status, reason):
    return web.json_response({"error": reason}, status=status)


def cursor(request):
    """A poll's `after` (L1) as an int, or the 400 answer for a bad one."""
    afters = request.query.getall("after", [])
    if len(afters) > 1:
        return None, error(400, "'after' given more than once")
    after = afters[0] if afters else "0"
    if not re.fullmatch(r"[0-9]+", after) or int(after) >= 2 ** 64:
        return None, error(400, "'after' must be a base-10 u64")
    return int(after), None


async def serve(app, port):
    """Serves `app` on 127.0.0.1:`port` (0: a free one), printed first."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


async def main(args):
    await serve(build(args), args.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=25)
    parser.add_argument("--ping-timeout", type=float, default=20)
    parser.add_argument("--ack-timeout", type=float, default=5)
    parser.add_argument("--seed", action="store_true", help="behave like the seed's backend")
    parser.add_argument("--jwt-secret-file", help="contract v2: the HS256 secret, in a file")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parser.parse_args()
    args.jwt_secret = None
    if args.jwt_secret_file:
        with open(args.jwt_secret_file, "rb") as f:
            args.jwt_secret = f.read().rstrip(b"\n")
    asyncio.run(main(args))

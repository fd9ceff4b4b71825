"""One node of a chat deployment of several nodes (contract N1-N4), the seed's
stack as it runs in production: python-socketio with AsyncRedisManager (the
nodes' emits, acks included, cross through Redis pub/sub) and every piece of
shared state in Redis: presence per node with an expiry (N3), the id counter,
the mailboxes with their seq, the retry memory. Start one per port, all with
the same --redis, behind a load balancer:

    python3 python_cluster.py --redis redis://127.0.0.1:6379/0 --node-id a --port 0
    python3 python_cluster.py --redis redis://127.0.0.1:6379/0 --node-id b --port 0

--defect plants a classic cluster bug:
  presence_per_process  online users kept in the node's memory (the seed's
                        dict): a user on another node is "not online", so its
                        messages go to the mailbox and /api/online differs by node
  presence_without_expiry
                        a node's presence entries count after it died: its
                        users stay "online" for good (N3)
  ack_when_cut          a node cut off from Redis acks sends as pushed anyway,
                        and they are lost (N4)
"""
import argparse
import asyncio
import json
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError
import socketio
from aiohttp import web

from python_server import cursor, error, serve, valid

log = logging.getLogger("cluster")


class Cluster:
    def __init__(self, sio, r, node, ack_timeout, ttl, defect):
        self.sio, self.r, self.node = sio, r, node
        self.ack_timeout, self.ttl, self.defect = ack_timeout, ttl, defect
        self.user_of = {}  # sid -> username: this node's registered connections
        self.local = {}  # username -> count on this node (the defect's only truth)
        self.unacked = {}  # message id -> (message, {sid, ...}) pushed from here

    def presence_key(self, node=None):
        return f"chat:presence:{node or self.node}"

    async def refresh(self):
        """N3: a node is alive while it refreshes its key (ttl ms); the
        presence entries of a node whose key expired no longer count, and
        every live node tells its own connections that those users left."""
        mourned = set()
        while True:
            try:
                await self.sweep(mourned)
            except RedisError:
                pass  # cut off from the shared state (N4): again next round
            await asyncio.sleep(self.ttl / 3000)

    async def sweep(self, mourned):
        await self.r.set(f"chat:alive:{self.node}", "1", px=self.ttl)
        await self.r.pexpire(self.presence_key(), 10 * self.ttl)
        if self.defect == "presence_without_expiry":
            return
        for node, users in (await self.presence()).items():
            alive = await self.r.exists(f"chat:alive:{node}")
            if alive:
                mourned.discard(node)
            if alive or node in mourned:
                continue
            mourned.add(node)
            online = await self.online()
            for user in users - set(online):
                await self.tell_local(user, "user_offline")

    async def presence(self):
        """Users per node, as the nodes wrote them."""
        nodes = {}
        async for key in self.r.scan_iter(match="chat:presence:*"):
            node = key.split(":", 2)[2]
            nodes[node] = {u for u, n in (await self.r.hgetall(key)).items() if int(n) > 0}
        return nodes

    async def online(self):
        if self.defect == "presence_per_process":
            return sorted(u for u, n in self.local.items() if n > 0)
        users = set()
        for node, on_node in (await self.presence()).items():
            alive = node == self.node or await self.r.exists(f"chat:alive:{node}")
            if alive or self.defect == "presence_without_expiry":
                users |= on_node
        return sorted(users)

    async def tell_local(self, username, event):
        for sid, user in list(self.user_of.items()):
            if user != username:
                await self.sio.emit(event, {"username": username}, to=sid)

    async def is_online(self, username):
        return username in await self.online()

    async def tell_others(self, username, event):
        for other in await self.online():
            if other != username:
                await self.sio.emit(event, {"username": username}, room=f"user:{other}")

    async def connect(self, sid, username):
        came_online = not await self.is_online(username)
        self.local[username] = self.local.get(username, 0) + 1
        await self.r.hincrby(self.presence_key(), username, 1)
        await self.r.sadd(f"chat:sids:{username}", sid)
        self.user_of[sid] = username
        await self.sio.enter_room(sid, f"user:{username}")
        if came_online:
            await self.tell_others(username, "user_online")

    async def disconnect(self, sid):
        username = self.user_of.pop(sid, None)
        if username is None:
            return
        self.local[username] = max(0, self.local.get(username, 0) - 1)
        left = await self.r.hincrby(self.presence_key(), username, -1)
        if left <= 0:
            await self.r.hdel(self.presence_key(), username)
        await self.r.srem(f"chat:sids:{username}", sid)
        for message_id, (message, waiting) in list(self.unacked.items()):
            waiting.discard(sid)
            if not waiting:  # M5: every connection it went to closed unacked
                del self.unacked[message_id]
                await self.store(message)
        if not await self.is_online(username):
            await self.tell_others(username, "user_offline")

    async def store(self, message):
        seq = await self.r.incr(f"chat:seq:{message['to']}")
        await self.r.rpush(f"chat:mail:{message['to']}", json.dumps({"seq": seq, **message}))

    async def send(self, sid, data):
        try:
            return await self.accept(sid, data)
        except RedisError:
            if self.defect == "ack_when_cut":
                # The classic "don't let Redis slow sends down": pretend.
                return {"id": int(time.time() * 1000), "delivery": "websocket"}
            # N4: nothing is acked that was not stored or handed on.
            return {"error": "the shared state is unreachable; try again"}

    async def accept(self, sid, data):
        sender = self.user_of.get(sid)
        if sender is None:
            return {"error": "not registered"}
        if not isinstance(data, dict):
            return {"error": "send_message takes one object"}
        to, content, client_id = data.get("to"), data.get("content"), data.get("client_id")
        if not valid(to):
            return {"error": "'to' is not a valid username"}
        if not isinstance(content, str) or not 1 <= len(content) <= 4096:
            return {"error": "'content' must be 1 to 4096 characters"}
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            return {"error": "'client_id' must be 1 to 64 characters"}
        retry = await self.r.hget(f"chat:retry:{sender}", client_id)
        if retry is not None:  # M1, on whichever node the retry lands
            old = json.loads(retry)
            if (old["to"], old["content"]) == (to, content):
                return old["ack"]
            return {"error": "client_id already used for a different message"}
        message = {"id": await self.r.incr("chat:next_id"), "from": sender, "to": to,
                   "content": content, "ts": int(time.time() * 1000)}
        sids = set() if not await self.is_online(to) else await self.r.smembers(f"chat:sids:{to}")
        if sids:
            self.unacked[message["id"]] = (message, set(sids))

            def acked(*_):
                self.unacked.pop(message["id"], None)

            for target in sids:  # across nodes: the ack comes back through Redis
                await self.sio.emit("new_message", message, room=target, callback=acked)
            asyncio.get_running_loop().call_later(
                self.ack_timeout, lambda: asyncio.ensure_future(self.fall_back(message["id"])))
            ack = {"id": message["id"], "delivery": "websocket"}
        else:
            await self.store(message)
            ack = {"id": message["id"], "delivery": "polling"}
        await self.r.hset(f"chat:retry:{sender}", client_id,
                          json.dumps({"to": to, "content": content, "ack": ack}))
        return ack

    async def fall_back(self, message_id):
        pending = self.unacked.pop(message_id, None)
        if pending is not None:
            await self.store(pending[0])


def build(args):
    r = aioredis.from_url(args.redis, decode_responses=True)
    manager = socketio.AsyncRedisManager(args.redis)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager,
                               cors_allowed_origins="*",
                               ping_interval=args.ping_interval, ping_timeout=args.ping_timeout)
    # N3: a dead node's users are offline within 2 x (pingInterval +
    # pingTimeout); its key outlives it by at most one of those.
    ttl = max(500, int(1000 * (args.ping_interval + args.ping_timeout)))
    chat = Cluster(sio, r, args.node_id, args.ack_timeout, ttl, args.defect)
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def connect(sid, environ, auth=None):
        username = environ.get("HTTP_USERNAME")
        if not valid(username):
            raise socketio.exceptions.ConnectionRefusedError("missing or invalid username")
        await chat.connect(sid, username)

    @sio.event
    async def disconnect(sid, *reason):
        await chat.disconnect(sid)

    @sio.event
    async def send_message(sid, data=None, *extra):
        if extra:
            return {"error": "send_message takes exactly one argument"}
        return await chat.send(sid, data)

    async def health(_):
        return web.json_response({"status": "ok"})

    async def online(_):
        return web.json_response({"users": await chat.online()})

    async def messages(request):
        username = request.headers.get("username")
        if not valid(username):
            return error(401, "a valid username header is required")
        after, refused = cursor(request)
        if refused is not None:
            return refused
        latest = int(await r.get(f"chat:seq:{username}") or 0)
        if after > latest:
            return web.json_response(
                {"error": "cursor above the latest seq", "latest": latest}, status=409)
        entries = [json.loads(e) for e in await r.lrange(f"chat:mail:{username}", 0, -1)]
        return web.json_response({"messages": [e for e in entries if e["seq"] > after]})

    app.router.add_get("/health", health)
    app.router.add_get("/api/online", online)
    app.router.add_get("/api/messages", messages)

    async def start_refresh(_):
        app["refresh"] = asyncio.create_task(chat.refresh())

    app.on_startup.append(start_refresh)
    return app


async def main(args):
    await serve(build(args), args.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=25)
    parser.add_argument("--ping-timeout", type=float, default=20)
    parser.add_argument("--ack-timeout", type=float, default=5)
    parser.add_argument("--defect", default="none",
                        choices=["none", "presence_per_process", "presence_without_expiry",
                                 "ack_when_cut"])
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    asyncio.run(main(parser.parse_args()))

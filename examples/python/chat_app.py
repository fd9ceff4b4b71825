"""A FastAPI + python-socketio chat, the seed's stack, as a team would write it
against the contract (v1): presence per connection, acks with fallback to the
mailbox, a polling endpoint with a seq cursor. In memory, one process.

    uvicorn chat_app:app --port 8000

CHAT_DEFECT=presence_by_user plants the seed's own bug (`online_users[username]
= sid`: the last connection wins, any disconnect takes the user offline), so
the contract test beside it has something to catch.
"""
import asyncio
import itertools
import os
import re
import time

import socketio
from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse

VALID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
PRESENCE_BY_USER = os.environ.get("CHAT_DEFECT") == "presence_by_user"
ACK_TIMEOUT = float(os.environ.get("CHAT_ACK_TIMEOUT", "5"))


def valid(name):
    return isinstance(name, str) and VALID.match(name) is not None


sio = socketio.AsyncServer(
    async_mode="asgi",
    cors_allowed_origins="*",
    ping_interval=float(os.environ.get("CHAT_PING_INTERVAL", "25")),
    ping_timeout=float(os.environ.get("CHAT_PING_TIMEOUT", "20")),
)
api = FastAPI()
app = socketio.ASGIApp(sio, other_asgi_app=api)

sids = {}  # username -> set of sids
user_of = {}  # sid -> username
mailboxes = {}  # username -> list of entries, seq = index + 1
retries = {}  # (sender, client_id) -> (to, content, ack)
ids = itertools.count(1)


def store(message):
    box = mailboxes.setdefault(message["to"], [])
    box.append({"seq": len(box) + 1, **message})


async def tell_others(username, event):
    for other, theirs in list(sids.items()):
        if other != username:
            for sid in list(theirs):
                await sio.emit(event, {"username": username}, to=sid)


@sio.event
async def connect(sid, environ, auth=None):
    username = environ.get("HTTP_USERNAME")
    if not valid(username):
        raise socketio.exceptions.ConnectionRefusedError("missing or invalid username")
    came_online = not sids.get(username)
    if PRESENCE_BY_USER:
        sids[username] = {sid}
    else:
        sids.setdefault(username, set()).add(sid)
    user_of[sid] = username
    if came_online:
        await tell_others(username, "user_online")


@sio.event
async def disconnect(sid, *reason):
    username = user_of.pop(sid, None)
    if username is None:
        return
    mine = sids.get(username, set())
    if PRESENCE_BY_USER:
        mine.clear()
    else:
        mine.discard(sid)
    if not mine:
        await tell_others(username, "user_offline")


@sio.event
async def send_message(sid, data=None, *extra):
    sender = user_of.get(sid)
    if sender is None:
        return {"error": "not registered"}
    if extra or not isinstance(data, dict):
        return {"error": "send_message takes one object"}
    to, content, client_id = data.get("to"), data.get("content"), data.get("client_id")
    if not valid(to):
        return {"error": "invalid recipient"}
    if not isinstance(content, str) or not 1 <= len(content) <= 4096:
        return {"error": "content must be 1 to 4096 characters"}
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        return {"error": "client_id must be 1 to 64 characters"}
    if (sender, client_id) in retries:
        old_to, old_content, old_ack = retries[(sender, client_id)]
        if (old_to, old_content) == (to, content):
            return old_ack
        return {"error": "client_id already used for another message"}
    message = {"id": next(ids), "from": sender, "to": to, "content": content,
               "ts": int(time.time() * 1000)}
    targets = list(sids.get(to, ()))
    if targets:
        acked = asyncio.Event()
        for target in targets:
            await sio.emit("new_message", message, to=target, callback=lambda *_: acked.set())

        async def fall_back():
            try:
                await asyncio.wait_for(acked.wait(), ACK_TIMEOUT)
            except asyncio.TimeoutError:
                store(message)

        asyncio.get_running_loop().create_task(fall_back())
        ack = {"id": message["id"], "delivery": "websocket"}
    else:
        store(message)
        ack = {"id": message["id"], "delivery": "polling"}
    retries[(sender, client_id)] = (to, content, ack)
    return ack


def error(status, reason):
    return JSONResponse({"error": reason}, status_code=status)


@api.get("/health")
async def health():
    return {"status": "ok"}


@api.get("/api/online")
async def online():
    return {"users": sorted(u for u, s in sids.items() if s)}


@api.get("/api/messages")
async def messages(username: str | None = Header(default=None),
                   after: list[str] = Query(default=["0"])):
    if not valid(username):
        return error(401, "a valid username header is required")
    if len(after) != 1 or not re.fullmatch(r"[0-9]+", after[0]) or int(after[0]) >= 2**64:
        return error(400, "after must be one base-10 u64")
    box = mailboxes.get(username, [])
    if int(after[0]) > len(box):
        return JSONResponse({"error": "cursor above the latest seq", "latest": len(box)},
                            status_code=409)
    return {"messages": box[int(after[0]):]}

"""python-socketio's AsyncClient against the server: the same flows as flow.js.

    python3 python_flow.py URL TAG [websocket,polling]

INTEROP_TOKENS (a JSON object name -> JWT) makes it a contract v2 client:
identity is `connect(auth=...)` and a Bearer token on the poll, no header.

Prints one JSON object; the Rust driver (harness/tests/interop) judges it.
"""
import asyncio
import json
import os
import sys

import aiohttp
import socketio


async def main(url, tag, transports):
    alice, bob, carol = f"alice.{tag}", f"bob.{tag}", f"carol.{tag}"
    tokens = json.loads(os.environ["INTEROP_TOKENS"]) if os.environ.get("INTEROP_TOKENS") else None
    checks = []

    def check(clause, name, ok, detail=None):
        checks.append({"clause": clause, "name": name, "ok": bool(ok), "detail": json.dumps(detail)})

    async def open_(name):
        sio = socketio.AsyncClient(reconnection=True, reconnection_delay=1, reconnection_attempts=5)
        events, refused = [], []

        @sio.on("*")
        async def any_event(event, data=None):
            events.append((event, data))

        @sio.on("new_message")
        async def on_message(data):
            events.append(("new_message", data))
            return None  # answers the server's ack request (M5)

        @sio.on("connect_error")
        async def on_connect_error(data=None):
            refused.append(data)

        try:
            if tokens:
                await sio.connect(url, auth={"token": tokens[name]}, transports=transports, wait_timeout=5)
            else:
                await sio.connect(url, headers={"username": name}, transports=transports, wait_timeout=5)
            return sio, events, None
        except socketio.exceptions.ConnectionError as e:
            await asyncio.sleep(0.1)
            return sio, events, refused[0] if refused else str(e)

    async def wait_for(events, name, matches, timeout=5.0):
        for _ in range(int(timeout / 0.02)):
            for event, data in events:
                if event == name and matches(data):
                    return data
            await asyncio.sleep(0.02)
        return None

    a, a_events, error = await open_(alice)
    result = {"client": "python", "transports": ",".join(transports), "registered": error is None,
              "connect_error": error, "transport": a.transport() if error is None else None, "checks": checks}
    if error is not None:
        return result
    b, b_events, b_error = await open_(bob)
    check("P1", "bob registers too", b_error is None, b_error)
    online = await wait_for(a_events, "user_online", lambda d: (d or {}).get("username") == bob)
    check("P1", "alice hears user_online for bob", online, online)

    async def send(to, content, n):
        try:
            return await a.call("send_message", {"to": to, "content": content, "client_id": f"{tag}-{n}"}, timeout=5)
        except Exception as e:  # a timeout is a finding, not a crash
            return {"error": repr(e)}

    ack = await send(bob, "hello from python-socketio ✓", 1)
    check("M2", "the ack is {id, delivery}", isinstance((ack or {}).get("id"), int), ack)
    check("M3", "an online recipient is acked websocket", (ack or {}).get("delivery") == "websocket", ack)
    push = await wait_for(b_events, "new_message", lambda m: (m or {}).get("id") == (ack or {}).get("id"))
    check("M3", "bob receives the push, from alice", (push or {}).get("from") == alice, push)

    ack2 = await send(carol, "for later", 2)
    check("M4", "an offline recipient is acked polling", (ack2 or {}).get("delivery") == "polling", ack2)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {tokens[carol]}"} if tokens else {"username": carol}
        async with http.get(f"{url}/api/messages?after=0", headers=headers) as response:
            mailbox = await response.json(content_type=None)
            status = response.status
    stored = [m for m in (mailbox or {}).get("messages", []) if m.get("id") == (ack2 or {}).get("id")]
    check("L1", "carol fetches it from /api/messages", status == 200 and stored and stored[0]["from"] == alice, mailbox)

    await b.disconnect()
    offline = await wait_for(a_events, "user_offline", lambda d: (d or {}).get("username") == bob)
    check("P3", "alice hears user_offline for bob", offline, offline)
    await a.disconnect()
    return result


if __name__ == "__main__":
    url, tag = sys.argv[1], sys.argv[2]
    transports = (sys.argv[3] if len(sys.argv) > 3 else "websocket,polling").split(",")
    print(json.dumps(asyncio.run(main(url, tag, transports))))

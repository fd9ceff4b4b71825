"""python-socketio's AsyncClient through the harness's fault proxy: the same
timeline as faulted.mjs.

    python3 python_faulted.py PROXY_URL SERVER_URL TAG [websocket,polling]

alice connects through the proxy, bob straight to the server. Once both are
connected this prints {"ready": true}; the Rust driver then black-holes the
proxy from 2 s to 6 s and resets its connections at 12 s. bob sends to alice
before, during and after; at the end alice reads her mailbox and one JSON line
says what everyone saw. The Rust driver (harness/tests/interop) judges it.
"""
import asyncio
import json
import sys
import time

import aiohttp
import socketio


async def main(proxy_url, server_url, tag, transports):
    alice, bob = f"alice.{tag}", f"bob.{tag}"
    log = []
    t0 = [time.monotonic()]

    def at():
        return int((time.monotonic() - t0[0]) * 1000)

    def open_(name):
        sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.25, reconnection_delay_max=1
        )

        @sio.on("*")
        async def any_event(event, data=None):
            log.append({"at": at(), "who": name, "event": event, "data": data})

        @sio.on("new_message")
        async def on_message(data):
            log.append({"at": at(), "who": name, "event": "new_message", "data": data})
            return None  # answers the server's ack request (M5)

        @sio.event
        async def connect():
            log.append({"at": at(), "who": name, "event": "connect"})

        @sio.event
        async def disconnect(reason=None):
            log.append({"at": at(), "who": name, "event": "disconnect", "data": str(reason)})

        return sio

    a, b = open_(alice), open_(bob)
    await a.connect(proxy_url, headers={"username": alice}, transports=transports, wait_timeout=5)
    await b.connect(server_url, headers={"username": bob}, transports=transports, wait_timeout=5)
    t0[0] = time.monotonic()
    print(json.dumps({"ready": a.connected and b.connected}), flush=True)

    sends = []

    async def send(n, content):
        try:
            ack = await b.call(
                "send_message", {"to": alice, "content": content, "client_id": f"{tag}-{n}"}, timeout=3
            )
        except Exception as e:  # a timeout: the send was not acknowledged
            ack = {"error": str(e)}
        sends.append({"at": at(), "n": n, "ack": ack})

    async def until(ms):
        await asyncio.sleep(max(0, ms - at()) / 1000)

    await until(1000)
    await send(1, "before the black hole")
    # Before the server can have noticed (its ping timeout is 1 s + 1 s): the
    # push goes into the hole unacknowledged, and must reach the mailbox (M5).
    await until(2300)
    await send(2, "into the black hole")
    await until(13000)
    await send(3, "after the reset")
    await until(16000)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server_url}/api/messages?after=0", headers={"username": alice}) as r:
            mail = await r.json()
        async with http.get(f"{server_url}/api/online") as r:
            online = await r.json()
    print(json.dumps({"client": "python", "transports": ",".join(transports), "log": log,
                      "sends": sends, "mail": mail, "online": online, "alice_connected": a.connected}),
          flush=True)
    await a.disconnect()
    await b.disconnect()


if __name__ == "__main__":
    proxy, server, tag = sys.argv[1:4]
    transports = (sys.argv[4] if len(sys.argv) > 4 else "websocket,polling").split(",")
    asyncio.run(main(proxy, server, tag, transports))

"""A TCP relay on loopback: 127.0.0.1:LISTEN -> 127.0.0.1:TARGET. One node's
Redis connections go through it (interop/cluster.sh), so the node can be cut
off from the shared state and healed while it keeps serving:

    kill -USR1 <pid>   cut: every connection through it is reset, new ones refused
    kill -USR2 <pid>   heal: connections are relayed again

    python3 tcp_relay.py LISTEN_PORT TARGET_PORT
"""
import asyncio
import signal
import sys


class Relay:
    def __init__(self, target):
        self.target = target
        self.cut = False
        self.open = set()

    def sever(self):
        self.cut = True
        for writer in list(self.open):
            writer.transport.abort()
        self.open.clear()

    def heal(self):
        self.cut = False

    async def pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def relay(self, client_reader, client_writer):
        if self.cut:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.open |= {client_writer, server_writer}
        await asyncio.gather(self.pipe(client_reader, server_writer),
                             self.pipe(server_reader, client_writer))
        self.open -= {client_writer, server_writer}


async def main(listen, target):
    relay = Relay(target)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, relay.sever)
    loop.add_signal_handler(signal.SIGUSR2, relay.heal)
    server = await asyncio.start_server(relay.relay, "127.0.0.1", listen)
    print(f"relay 127.0.0.1:{listen} -> 127.0.0.1:{target}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))

"""TCP relay for the pod simulation: LISTEN_IP:PORT -> 127.0.0.1:PORT, for each PORT given.

The test services (scripts/services) listen on 127.0.0.1 of the host; the simulated pods live
in their own network namespaces and reach the host only through the simulation's bridge. This
relay listens on the bridge address, so the traffic never leaves the host's private bridge.

    python3 relay.py LISTEN_IP PORT [PORT...]
"""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listen_ip, port):
    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, listen_ip, port)
    async with server:
        await server.serve_forever()


async def main():
    listen_ip = sys.argv[1]
    await asyncio.gather(*(serve(listen_ip, int(p)) for p in sys.argv[2:]))


if __name__ == "__main__":
    asyncio.run(main())

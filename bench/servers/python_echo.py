"""The `python-websockets` echo server of bench-suite: Python `websockets`'
asyncio server with its default settings (permessage-deflate on, with the
library's own parameters; keepalive pings every 20 s; 1 MiB message limit),
echoing every message as it comes, the library's idiomatic loop.

  python_echo.py --addr 127.0.0.1:PORT

Prints "listening on ADDR (websockets X, Python Y)" once it accepts
connections, then serves until killed.
"""

import asyncio
import platform
import sys

import websockets
from websockets.asyncio.server import serve


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        # The load generator ends its connections without a close frame.
        pass


async def main(host: str, port: int) -> None:
    # Defaults only: `compression="deflate"` is serve's default.
    async with serve(echo, host, port) as server:
        print(
            f"listening on {host}:{port} (websockets {websockets.version.version}, "
            f"Python {platform.python_version()})",
            flush=True,
        )
        await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--addr":
        sys.exit(__doc__)
    host, _, port = args[1].rpartition(":")
    asyncio.run(main(host, int(port)))

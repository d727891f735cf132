"""An SMTP server in Python around the smtpcell protocol component: one
component instance per connection, accepted mail stored in a Maildir.

    python tests/hosts/python/server.py --listen 127.0.0.1:2525 --maildir ./mail \\
        --component target/guest/wasm32-wasip2/guest/smtp_component.wasm

Prints `listening on ADDR` on stdout once it accepts connections (port 0
picks a free port; ADDR is the real one). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import re
import sys

from smtphost.component import GuestConfig, LoadedComponent
from smtphost.connection import ServerContext, serve_connection
from smtphost.maildir import Maildir


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:2525` or `[::1]:2525`."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"want HOST:PORT or [V6]:PORT, not {text!r}")
    return (m[1], int(m[2])) if m[1] else (m[3], int(m[4]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 2525), metavar="ADDR")
    parser.add_argument("--maildir", default="./mail", metavar="DIR")
    parser.add_argument("--component", required=True, metavar="FILE.wasm")
    parser.add_argument("--hostname", default="localhost", metavar="NAME")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

    component = LoadedComponent(args.component)
    logging.getLogger("smtpcell-python").info("component loaded: %s (%s)", component.label, component.contract)
    ctx = ServerContext(
        component=component,
        # Same policy as smtpcell's defaults (host/src/server/config.rs).
        guest_config=GuestConfig(args.hostname, 10_240_000, 100, 1000),
        maildir=Maildir(args.maildir, args.hostname),
        hostname=args.hostname,
    )
    host, port = args.listen
    server = await asyncio.start_server(functools.partial(serve_connection, ctx), host, port)
    addr = server.sockets[0].getsockname()
    print(f"listening on {'[' + addr[0] + ']' if ':' in addr[0] else addr[0]}:{addr[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

"""A local Stripe-compatible sandbox (localstripe) for the demo and the tests.

localstripe binds every interface and keeps its state in ``/tmp``; this wrapper
binds loopback only and keeps the state in a file of our choosing (or nowhere).
Run as ``python -m dunning.sandbox --port 8420 [--state FILE]``.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import socket
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", type=Path, default=None, help="pickle file; none: in memory")
    args = parser.parse_args()

    from aiohttp import web
    from localstripe import resources, server

    state: Path | None = args.state

    def load() -> None:
        if state is not None and state.exists():
            with state.open("rb") as f:
                resources.store.update(pickle.load(f))

    def dump() -> None:
        if state is not None:
            tmp = state.with_suffix(".tmp")
            with tmp.open("wb") as f:
                pickle.dump(dict(resources.store), f, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(state)

    resources.Store.try_load_from_disk = lambda self: load()
    resources.Store.dump_to_disk = lambda self: dump()
    load()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, sock=sock, print=None)


if __name__ == "__main__":
    main()

"""Ports and in-process servers on the loopback interface, for tests that talk real HTTP."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator

from werkzeug.serving import make_server


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; bind it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(app, threaded: bool = False) -> Iterator[str]:
    """Serve ``app`` with werkzeug on a free port of 127.0.0.1 in a thread; yield its base URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=threaded)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)

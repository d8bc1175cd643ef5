"""A web worker of `analytics serve` and `analytics web`: the WSGI app behind the RSGI bridge
(``rsgi_app``), in a process group of its own and bound to the life of the server that started
it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time

from analytics.embedded import die_with_parent

ORPHAN_GRACE_SECONDS = 10.0
"""How long a worker whose server died may take to stop by itself before it is ended."""

# The server as the spawn recorded it: by the time this runs, the server may have died already
# and os.getppid() say 1.
_parent = multiprocessing.parent_process()
server = _parent.pid if _parent is not None and _parent.pid is not None else os.getppid()


def watch_server() -> None:
    """Ends this worker once its server has gone: SIGTERM first (a stop on the way in may have
    come before the worker could act on it), then, past the grace, at once."""
    while os.getppid() == server:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_GRACE_SECONDS)
    os._exit(1)


# The terminal sends Ctrl-C's SIGINT to its whole foreground group; a worker that got it too,
# beside the server's own stop, could hang in its shutdown and keep the server from exiting.
os.setpgid(0, 0)
# Out of the terminal's group, a worker must still end with its server, however that ends
# (SIGKILL included): an orphan would go on answering on the server's port.
die_with_parent()
if os.getppid() != server:  # the server died before the line above
    sys.exit(0)
threading.Thread(target=watch_server, name="watch-server", daemon=True).start()

from analytics.rsgi import WSGIBridge  # noqa: E402  (once bound to the server)
from analytics.wsgi import app, settings  # noqa: E402

rsgi_app = WSGIBridge(app, threads=settings.threads, body_timeout=settings.body_timeout_seconds)

__all__ = ["app", "rsgi_app"]

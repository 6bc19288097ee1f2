"""Serve a :class:`~recon.viewer.ViewerScene` to a browser through trame (the ``[web]`` extra).

The scene renders on the server (VTK offscreen) and the page shows the image stream, so the
browser needs no WebGL. The server binds only to ``host`` (127.0.0.1 unless told otherwise).
"""

from __future__ import annotations

import logging
import signal
import typing

from recon.errors import InputError

WEB_EXTRA_HINT = "pip install 'recon[web]' (trame, trame-vuetify, trame-vtk, trame-pyvista)"


def _trame():
    try:
        from trame.app import get_server
        from trame.ui.vuetify3 import SinglePageLayout
        from trame_pyvista.ui import plotter_ui
    except ImportError as exc:
        raise InputError(f"the web view needs the [web] extra ({exc.name} is missing): {WEB_EXTRA_HINT}") from None
    return get_server, SinglePageLayout, plotter_ui


def serve(scene, *, host: str = "127.0.0.1", port: int = 8080,
          announce: typing.Callable[[str], None] | None = print) -> None:
    """Serve ``scene`` at http://host:port/ until interrupted (Ctrl-C). Blocks.

    scene    : a ViewerScene built with ``off_screen=True``
    announce : called once with the address line before serving (None: silent)
    """
    if not (0 <= int(port) <= 65535):
        raise InputError(f"--port must be in 0..65535, got {port}")
    get_server, SinglePageLayout, plotter_ui = _trame()
    server = get_server("recon-view", client_type="vue3")
    with SinglePageLayout(server) as layout:
        layout.title.set_text("recon view")
        with layout.content:
            plotter_ui(scene.plotter, mode="server", server=server, add_menu=True, collapse_menu=True)
    if announce is not None:
        # Said once the socket is bound, so the line means the address answers.
        server.controller.on_server_ready.add(
            lambda **_: announce(f"recon view: serving on http://{host}:{port}/ (Ctrl-C to stop)"))
    # A browser tab closing mid-message is normal: keep its tracebacks off the terminal.
    for name in ("asyncio", "aiohttp", "wslink", "trame", "trame_server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Stop on SIGTERM as on Ctrl-C (service managers, `timeout`, test harnesses).
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.start(host=host, port=int(port), open_browser=False, show_connection_info=False, timeout=0)
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, the host is not an address of this machine
        raise InputError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt

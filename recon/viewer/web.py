"""Serve a :class:`~recon.viewer.ViewerScene` to a browser through trame (the ``[web]`` extra).

The scene renders on the server (VTK offscreen) and the page shows the image stream, so the
browser needs no WebGL. The server binds only to ``host`` (127.0.0.1 unless told otherwise);
bound beyond this machine it warns, and every request must carry a token, printed in the URL
(the page's first request trades it for a cookie that the later ones carry).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import signal
import typing

from recon.errors import InputError, ReconError

WEB_EXTRA_HINT = "pip install 'recon[web]' (trame, trame-vuetify, trame-vtk, trame-pyvista)"
TOKEN_PARAM = "token"
TOKEN_COOKIE = "recon_view_token"
_SIGNAL_CODES = {signal.SIGINT: (130, "interrupted (Ctrl-C)"), signal.SIGTERM: (143, "terminated (SIGTERM)")}


class Stopped(ReconError):
    """The server was stopped by a signal: exit 130 for SIGINT, 143 for SIGTERM."""

    def __init__(self, signum: int):
        self.exit_code, message = _SIGNAL_CODES[signum]
        super().__init__(message)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_middleware(token: str):
    """An aiohttp middleware answering 403 to any request without ``token`` (query or cookie)."""
    import hmac

    from aiohttp import web

    @web.middleware
    async def check(request, handler):
        given = request.query.get(TOKEN_PARAM)
        if given is not None and hmac.compare_digest(given, token):
            response = await handler(request)
            if isinstance(response, web.StreamResponse) and not response.prepared:
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            return response
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie is not None and hmac.compare_digest(cookie, token):
            return await handler(request)
        return web.Response(status=403, text="recon view: this address needs the token printed by the server\n")

    return check


def _trame():
    try:
        from trame.app import get_server
        from trame.ui.vuetify3 import SinglePageLayout
        from trame_pyvista.ui import plotter_ui
    except ImportError as exc:
        raise InputError(f"the web view needs the [web] extra ({exc.name} is missing): {WEB_EXTRA_HINT}") from None
    return get_server, SinglePageLayout, plotter_ui


def serve(scene, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          announce: typing.Callable[[str], None] | None = print,
          warn: typing.Callable[[str], None] | None = print) -> None:
    """Serve ``scene`` at http://host:port/ until interrupted (Ctrl-C or SIGTERM). Blocks.

    scene    : a ViewerScene built with ``off_screen=True``
    token    : the access token required beyond loopback; None: a fresh random one
    announce : called once with the address line (the URL, with the token) before serving
    warn     : called with the warning when ``host`` is not a loopback address
    Raises :class:`Stopped` (exit 130 or 143) when a signal ends it.
    """
    if not (0 <= int(port) <= 65535):
        raise InputError(f"--port must be in 0..65535, got {port}")
    get_server, SinglePageLayout, plotter_ui = _trame()
    from recon.viewer.browser import build_page

    server = get_server("recon-view", client_type="vue3")
    build_page(server, scene, SinglePageLayout, plotter_ui)
    query = ""
    if not is_loopback(host):
        token = token or secrets.token_urlsafe(18)
        query = f"?{TOKEN_PARAM}={token}"
        if warn is not None:
            warn(f"recon view: warning: serving on {host}, beyond this machine: anyone who can reach it "
                 f"with the token in the URL sees the scene")
        server.controller.on_server_bind.add(lambda ws: ws.app.middlewares.append(token_middleware(token)))
    if announce is not None:
        # Said once the socket is bound, so the line means the address answers.
        shown = f"[{host}]" if ":" in host else host
        server.controller.on_server_ready.add(
            lambda **_: announce(f"recon view: serving on http://{shown}:{port}/{query} (Ctrl-C to stop)"))
    # A browser tab closing mid-message is normal: keep its tracebacks off the terminal.
    for name in ("asyncio", "aiohttp", "wslink", "trame", "trame_server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    received = []

    def stop(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in _SIGNAL_CODES}
    try:
        # thread=True keeps wslink's own signal handlers off, so ours say which signal it was
        server.start(host=host, port=int(port), open_browser=False, show_connection_info=False, timeout=0,
                     backend="aiohttp", thread=True)
    except KeyboardInterrupt:
        received.append(received[-1] if received else signal.SIGINT)
    except OSError as exc:  # the port is taken, the host is not an address of this machine
        raise InputError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    raise Stopped(received[0] if received else signal.SIGINT)

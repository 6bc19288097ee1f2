"""Drive a real headless Chromium (Debian's ``chromium``) over the DevTools protocol.

Small on purpose: open a page, wait until a condition on its screenshot holds, return the
PNG. Uses aiohttp's websocket client (aiohttp comes with the [web] extra's trame).

    png = screenshot_when("http://127.0.0.1:8080/", ready=lambda img: ..., timeout=60)
    result = in_chromium("http://127.0.0.1:8080/", steps)  # async def steps(page): ... page.click(x, y)
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _decode_png(data: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class Page:
    """One tab over the DevTools protocol: screenshots, mouse events, JavaScript."""

    def __init__(self, call):
        self.call = call

    async def image(self):
        """(H, W, 3) uint8 screenshot of the page."""
        shot = await self.call("Page.captureScreenshot", format="png")
        return _decode_png(base64.b64decode(shot["data"]))

    async def wait_for(self, ready, timeout: float = 30.0, every: float = 0.5):
        """The first screenshot for which ``ready(image)`` holds, or None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            img = await self.image()
            if ready(img):
                return img
            await asyncio.sleep(every)
        return None

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression (awaited when it is a promise)."""
        out = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return out.get("result", {}).get("value")

    async def mouse(self, kind: str, x: float, y: float, buttons: int = 1, count: int = 1):
        await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left" if buttons else "none",
                        buttons=buttons, clickCount=count)

    async def click(self, x: float, y: float, count: int = 1):
        """A click (``count`` 2: a double click) at page pixel (x, y)."""
        await self.mouse("mouseMoved", x, y, buttons=0)
        for n in range(1, count + 1):
            await self.mouse("mousePressed", x, y, count=n)
            await self.mouse("mouseReleased", x, y, count=n)

    async def key(self, key: str):
        """A press of the one-character ``key`` (down, then up) on the page."""
        code = {"code": f"Key{key.upper()}", "windowsVirtualKeyCode": ord(key.upper())}
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key, **code)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key, **code)

    async def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 8):
        await self.mouse("mouseMoved", x0, y0, buttons=0)
        await self.mouse("mousePressed", x0, y0)
        for i in range(1, steps + 1):
            await self.mouse("mouseMoved", x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
            await asyncio.sleep(0.05)
        await self.mouse("mouseReleased", x1, y1)


async def _drive(port: int, url: str, ready, timeout: float, width: int, height: int, steps=None):
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as resp:
            target = json.loads(await resp.text())
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            counter = 0

            async def call(method, **params):
                nonlocal counter
                counter += 1
                my_id = counter
                await ws.send_json({"id": my_id, "method": method, "params": params})
                while True:
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("id") == my_id:
                        if "error" in msg:
                            raise RuntimeError(f"{method}: {msg['error']}")
                        return msg.get("result", {})

            await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                       mobile=False)
            await call("Page.enable")
            await call("Page.navigate", url=url)
            if steps is not None:
                return await steps(Page(call))
            deadline = time.monotonic() + timeout
            last = None
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                shot = await call("Page.captureScreenshot", format="png")
                last = base64.b64decode(shot["data"])
                if ready(_decode_png(last)):
                    return last, True
            return last, False


def screenshot_when(url: str, *, ready, timeout: float = 60.0, width: int = 1024, height: int = 768):
    """(PNG bytes, whether ``ready(image (H, W, 3) uint8)`` became true before ``timeout`` s)."""
    return _with_chromium(url, ready=ready, timeout=timeout, width=width, height=height)


def in_chromium(url: str, steps, *, width: int = 1024, height: int = 768):
    """Open ``url`` in headless Chromium and return ``await steps(page)`` (a :class:`Page`)."""
    return _with_chromium(url, ready=None, timeout=0, width=width, height=height, steps=steps)


def _with_chromium(url, *, ready, timeout, width, height, steps=None):
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH")
    # chromium's helper processes (zygote, crash handler) may still write to the profile for
    # a moment after the main process exits: the whole process group is stopped, and a
    # straggling file does not fail the cleanup
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            port = None
            start = time.monotonic()
            while port is None and time.monotonic() - start < 30:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}")
                m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
                if m:
                    port = int(m.group(1))
            if port is None:
                raise RuntimeError("chromium did not report its DevTools port")
            return asyncio.run(_drive(port, url, ready, timeout, width, height, steps))
        finally:
            _stop_group(proc)


def _stop_group(proc) -> None:
    """Terminate a process started with start_new_session=True and everything it spawned."""
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue

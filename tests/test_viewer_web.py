"""The web view: bound to loopback by default, a token beyond it, exit codes on signals, and the
page in headless Chromium (load, double click, iso slider, layer boxes, keys) against the offscreen render."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from test_viewer import changed, field, files, ink, mesh, offscreen_ok  # noqa: F401 - fixtures and helpers
from test_viewer_hands import sphere_points

from recon import Cloud

pytest.importorskip("pyvista")


# ---------------------------------------------------------------------- web view in a real browser


def _listeners(port: int) -> set[str]:
    """Local addresses listening on TCP ``port`` (IPv4 and IPv6), from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            addr, p = cols[1].split(":")
            if int(p, 16) == port and cols[3] == "0A":  # LISTEN
                found.add(addr)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_web_view(*args):
    """``recon view ARGS --web`` on a free port, with no display; skips without trame or
    Chromium. Returns (port, process)."""
    pytest.importorskip("trame", reason="the [web] extra is not installed")
    pytest.importorskip("trame_pyvista", reason="the [web] extra is not installed")
    from headless_browser import find_chromium

    if find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "recon.cli.main", "view", *args, "--web", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return port, proc


def test_web_view_in_headless_chromium(offscreen_ok, files):  # noqa: F811 - fixtures from test_viewer
    from headless_browser import screenshot_when

    port, proc = _start_web_view(str(files / "s.mesh.ply"), "--size", "640x480")
    try:
        line = proc.stdout.readline()  # printed once the socket is bound
        assert f"http://127.0.0.1:{port}/" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        assert _listeners(port) == {"0100007F"}  # 127.0.0.1 only: not 0.0.0.0, not IPv6

        def shows_mesh(img):
            h, w, _ = img.shape
            centre = img[h // 3: 2 * h // 3, w // 3: 2 * w // 3].astype(int)
            return (np.abs(centre - 255).sum(-1) > 60).mean() > 0.5

        _, ok = screenshot_when(f"http://127.0.0.1:{port}/", ready=shows_mesh, timeout=60)
        assert ok, "the page never showed the mesh"
        proc.send_signal(2)  # Ctrl-C
        assert proc.wait(timeout=20) == 130
        err = proc.stderr.read()
        assert err.strip() == "recon: error: interrupted (Ctrl-C)", err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


VIEW_RECT_JS = """JSON.stringify([...document.querySelectorAll('img, canvas')].map(e => {
    const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })
    .sort((a, b) => b[2] * b[3] - a[2] * a[3])[0] || null)"""


def _rect_js(selector: str) -> str:
    return (f"(() => {{ const e = document.querySelector('{selector}'); if (!e) return null; "
            "const r = e.getBoundingClientRect(); return JSON.stringify([r.x, r.y, r.width, r.height]); })()")


def test_web_view_click_slider_and_toggle_in_headless_chromium(offscreen_ok, files):  # noqa: F811
    """In the browser: a click reads the values under it, the iso slider re-meshes, a layer box hides
    it, and the window's keys work on the page."""
    import asyncio
    import json

    from headless_browser import in_chromium

    port, proc = _start_web_view(str(files / "s.field.npz"), "--cloud", str(files / "s.ply"), "--slices", "")

    async def steps(page):
        found = {}
        deadline = asyncio.get_event_loop().time() + 60
        rect = None
        while asyncio.get_event_loop().time() < deadline:
            rect = json.loads(await page.evaluate(VIEW_RECT_JS) or "null")
            if rect and rect[2] > 100 and ink((await page.image())[int(rect[1]): int(rect[1] + rect[3]),
                                                                    int(rect[0]): int(rect[0] + rect[2])]) > 0.05:
                break
            await asyncio.sleep(1)
        assert rect, "the page never showed the view"
        x, y, w, h = rect

        def view_of(img):
            return img[int(y): int(y + h), int(x): int(x + w)]

        found["first"] = view_of(await page.image())
        await page.click(x + w / 2, y + h / 2, count=2)  # the sphere's centre: its near surface
        for _ in range(30):
            text = await page.evaluate("document.querySelector('.recon-picked').innerText")
            if text and "picked (" in text:
                break
            await asyncio.sleep(0.5)
        found["picked"] = text
        slider = json.loads(await page.evaluate(_rect_js(".recon-level .v-slider-thumb")) or "null")
        track = json.loads(await page.evaluate(_rect_js(".recon-level .v-slider-track")) or "null")
        assert slider and track, "no iso-level slider on the page"
        sx, sy = slider[0] + slider[2] / 2, slider[1] + slider[3] / 2
        await page.drag(sx, sy, track[0] + track[2] - 2, sy)
        grown = await page.wait_for(lambda img: ink(view_of(img)) > 1.3 * ink(found["first"]), timeout=30)
        found["grown"] = grown is not None
        found["after_slider"] = await page.image()
        keys = json.loads(await page.evaluate(_rect_js(".recon-help")) or "null")
        before = ink(view_of(found["after_slider"])[int(h * 0.6):, : int(w * 0.4)])
        await page.click(keys[0] + keys[2] / 2, keys[1] + keys[3] / 2)
        found["help"] = await page.wait_for(
            lambda img: ink(view_of(img)[int(h * 0.6):, : int(w * 0.4)]) > before + 0.01, timeout=20) is not None
        await page.click(keys[0] + keys[2] / 2, keys[1] + keys[3] / 2)
        plain = view_of(await page.wait_for(lambda img: True))
        for box_name, key in (("errors", "errors"), ("clip", "clip")):
            box = json.loads(await page.evaluate(_rect_js(f".recon-{box_name} input")) or "null")
            shown = view_of(await page.wait_for(lambda img: True))
            await page.click(box[0] + box[2] / 2, box[1] + box[3] / 2)
            found[key] = await page.wait_for(lambda img, shown=shown: changed(view_of(img), shown) > 0.05,
                                             timeout=20) is not None
            await page.click(box[0] + box[2] / 2, box[1] + box[3] / 2)  # and back
        back = await page.wait_for(lambda img: changed(view_of(img), plain) < 0.02, timeout=20)
        found["back"] = changed(view_of(back if back is not None else await page.image()), plain)
        for layer in ("mesh", "cloud"):
            box = json.loads(await page.evaluate(_rect_js(f".recon-show-{layer} input")) or "null")
            await page.click(box[0] + box[2] / 2, box[1] + box[3] / 2)
        hidden = await page.wait_for(lambda img: ink(view_of(img)) < 0.3 * ink(found["first"]), timeout=30)
        found["hidden"] = hidden is not None
        for key in ("m", "c"):  # the window's keys, pressed on the page: both layers back, their boxes ticked
            await page.key(key)
        back = await page.wait_for(lambda img: ink(view_of(img)) > 0.7 * ink(found["first"]), timeout=30)
        found["keys"] = back is not None
        found["boxes"] = await page.evaluate("[...document.querySelectorAll('.recon-show-mesh input, "
                                             ".recon-show-cloud input')].map((e) => e.checked).join(',')")
        return found

    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        found = in_chromium(f"http://127.0.0.1:{port}/", steps, width=1024, height=768)
        if os.environ.get("RECON_VIEWER_SHOTS"):  # a folder to keep the browser's views in, to look at
            from PIL import Image

            Image.fromarray(found["after_slider"]).save(Path(os.environ["RECON_VIEWER_SHOTS"]) / "web_picked.png")
        # the page shows what the window renders offscreen for the same files and view size
        from recon.viewer.load import build_scene, load_inputs

        first = found["first"]
        h, w = first.shape[:2]
        local = build_scene(load_inputs([files / "s.field.npz"], cloud=files / "s.ply"), off_screen=True,
                            window_size=(w, h), slices=())
        offscreen = local.image()
        local.close()
        assert ink(first) == pytest.approx(ink(offscreen), rel=0.15)
        if os.environ.get("RECON_VIEWER_SHOTS"):
            from PIL import Image

            Image.fromarray(first).save(Path(os.environ["RECON_VIEWER_SHOTS"]) / "web_first.png")
            Image.fromarray(offscreen).save(Path(os.environ["RECON_VIEWER_SHOTS"]) / "web_offscreen.png")
        below_text = slice(h // 4, None)  # the object, clear of the overlay text
        cols_page = np.nonzero(np.abs(first[below_text].astype(int) - 255).sum(-1) > 30)[1]
        cols_local = np.nonzero(np.abs(offscreen[below_text].astype(int) - 255).sum(-1) > 30)[1]
        assert abs(cols_page.mean() - cols_local.mean()) < 0.03 * w
        assert changed(first, offscreen) < 0.05
        assert "picked (" in found["picked"] and "field value" in found["picked"], found["picked"]
        assert "distance to the input points" in found["picked"]
        assert found["grown"], "moving the iso-level slider to its top did not grow the surface"
        assert found["help"], "the 'keys' button did not show the key list"
        assert found["errors"], "ticking 'error colours' did not colour the mesh"
        assert found["clip"], "ticking 'clip' did not cut the scene"
        assert found["back"] < 0.02, f"unticking them did not bring the plain view back ({found['back']:.3f} changed)"
        assert found["hidden"], "unticking 'mesh' did not hide the mesh"
        assert found["keys"], "keys m and c pressed on the page did not show the mesh and the cloud again"
        assert found["boxes"] == "true,true", f"the layer boxes did not follow the keys: {found['boxes']}"
        proc.send_signal(15)
        assert proc.wait(timeout=20) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- the web view's access and exit


def test_loopback_addresses():
    from recon.viewer.web import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.4")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_web_view_beyond_loopback_warns_needs_the_token_and_exits_143_on_sigterm(tmp_path):
    pytest.importorskip("trame", reason="the [web] extra is not installed")
    pytest.importorskip("trame_pyvista", reason="the [web] extra is not installed")
    from recon.io import write_cloud

    write_cloud(Cloud(sphere_points(500)), tmp_path / "s.ply")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "recon.cli.main", "view", str(tmp_path / "s.ply"), "--web",
                             "--host", "0.0.0.0", "--port", str(port), "--size", "320x240"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert f"http://0.0.0.0:{port}/?token=" in line, line
        token = line.split("?token=")[1].split()[0]
        assert len(token) >= 20
        base = f"http://127.0.0.1:{port}/"
        assert _status(base) == 403
        assert _status(base + "?token=wrong") == 403
        assert _status(base + f"?token={token}") == 200
        browser = pytest.importorskip("headless_browser")
        if browser.find_chromium() is not None:  # the page with the token works: its later requests carry the cookie
            _, shown = browser.screenshot_when(base + f"?token={token}", ready=lambda img: ink(img[100:]) > 0.02,
                                               timeout=60, width=640, height=480)
            assert shown, "the page opened with the token never showed the scene"
            _, bare = browser.screenshot_when(base, ready=lambda img: ink(img[100:]) > 0.02, timeout=5,
                                              width=640, height=480)
            assert not bare
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 143
        err = proc.stderr.read()
        lines = err.strip().splitlines()
        assert lines[0].startswith("recon view: warning: serving on 0.0.0.0, beyond this machine")
        assert lines[-1] == "recon: error: terminated (SIGTERM)" and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

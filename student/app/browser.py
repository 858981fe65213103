"""Drive Debian's headless chromium over the DevTools protocol (a websocket), as a person uses a page.

Playwright is not available here; the protocol needs only a websocket client (`websocket-client`). WebGL
runs on SwiftShader (software), so the page's 3D viewer draws without a GPU.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = [
    "--headless=new",
    "--no-sandbox",  # tests run as root in a container
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--window-size=1280,1100",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless chromium with one page; `evaluate` runs JavaScript, `screenshot` returns PNG bytes."""

    def __init__(self, url: str, executable: str):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="et3d-chromium-")
        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = self._devtools_port()
        pages = []
        deadline = time.monotonic() + 30
        while not pages and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                pages = [t for t in json.load(response) if t["type"] == "page"]
            time.sleep(0.2)
        if not pages:
            self.close()
            raise RuntimeError("chromium opened no page")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)

    def _devtools_port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def send(self, method: str, **params):
        call = next(self.ids)
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type, as a keyboard would (the page sees input events)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, clip: dict | None = None) -> bytes:
        params = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])

    def close(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def generate_in_page(browser: Browser, prompt: str, timeout_s: float = 90.0) -> dict:
    """Type ``prompt`` into the et3d-app page, click Generate and wait for the result and the 3D viewer's canvas.

    Returns the canvas's bounding box {x, y, width, height} in page pixels (a screenshot clip).
    """
    browser.wait_for(
        "!!document.querySelector('#prompt textarea') && !!document.querySelector('#generate')", 60, "the page"
    )
    time.sleep(1.0)  # let the page attach its event handlers
    browser.type_text("#prompt textarea", prompt)
    browser.click("#generate")
    browser.wait_for(
        "document.querySelector('#timing').innerText.includes('text to shown mesh')", timeout_s, "a result"
    )
    canvas = "document.querySelector('#viewer canvas')"
    browser.wait_for(f"!!{canvas}", 30, "the 3D viewer")
    return browser.evaluate(
        f"(() => {{ const r = {canvas}.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
    )

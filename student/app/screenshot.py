"""`python -m student.app.screenshot`: the README's picture of the app (docs/app.png), taken as a person sees it.

Serves the page in this process on a free local port, opens it in headless chromium, types a prompt, clicks
Generate, waits until the viewer has drawn the object (its pixels stop changing) and saves the page.
"""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help="Screenshot et3d-app after generating a prompt (default: docs/app.png, newest checkpoint).")
def screenshot(
    ckpt: Path | None = typer.Option(None, help="Checkpoint or run folder. [default: the newest under runs/train]"),
    prompt: str = typer.Option("a red cube", help="What to type into the page."),
    out: Path = typer.Option(Path("docs/app.png"), help="PNG to write."),
) -> None:
    import numpy as np
    from PIL import Image

    from pipeline.atomic import atomic_write_bytes
    from student.app.browser import Browser, find_chromium, generate_in_page
    from student.app.page import build_page, theme
    from student.app.session import Session

    executable = find_chromium()
    if executable is None:
        typer.echo("error: chromium is not installed (apt-get install chromium)", err=True)
        raise typer.Exit(2)
    session = Session.load(ckpt)
    if session.model is None:
        typer.echo(f"error: {session.load_error}", err=True)
        raise typer.Exit(3)
    session.warm_up()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page = build_page(session)
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, theme=theme())
    browser = Browser(f"http://127.0.0.1:{port}/", executable)
    try:
        rect = generate_in_page(browser, prompt)
        previous, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline:  # SwiftShader draws a while after the GLB arrives
            time.sleep(1.5)
            view = np.asarray(Image.open(io.BytesIO(browser.screenshot(rect))).convert("RGB"))
            if previous is not None and (view.min(-1) < 235).mean() > 0.01 and np.array_equal(view, previous):
                break
            previous = view
        atomic_write_bytes(out, browser.screenshot())
    finally:
        browser.close()
        page.close()
    typer.echo(f"{out}: {prompt!r} on {session.description}")


if __name__ == "__main__":
    app()

"""`et3d-app` as a person uses it: its own process on a free local port, driven by gradio_client and by a
headless chromium that types a prompt, clicks Generate and looks at the 3D viewer."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from support.app_server import free_port, running_app
from support.generation import save_tiny_generator

from student.app.browser import Browser, find_chromium, generate_in_page

pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e '.[app]'")

# A random tiny generator tinted red (decoder colour biases), meshed where its fog is dense enough.
APP_FLAGS = ("--grid", "32", "--level", "0.1")


def _red(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool: clearly red pixels (shaded red surface, not the orange page accents)."""
    r, g, b = (image[..., c].astype(int) for c in range(3))
    return (r > 120) & (g < 0.35 * r) & (b < 0.35 * r)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    ckpt = save_tiny_generator(folder / "red", rgb_logits=(3.0, -3.0, -3.0))
    with running_app("--ckpt", str(ckpt), "--out", str(folder / "files"), *APP_FLAGS, log=folder / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=False)


def test_generate_and_interpolate_through_the_api(client):
    import trimesh

    glb, turntable, gallery, downloads, timing = client.predict("a red cube", 0, 2, 1.0, 0, 0, api_name="/generate")
    mesh = trimesh.load(_path(glb), force="mesh")
    assert len(mesh.faces) > 100
    assert mesh.visual.vertex_colors[:, 0].mean() > 200  # red, as the tinted decoder
    assert _path(turntable).endswith("_turntable.gif") and len(gallery) == 2
    assert sorted(_path(d).rsplit("/", 1)[1] for d in downloads) == [
        f"sample_{i}_seed_{i}.{ext}" for i in range(2) for ext in ("glb", "obj", "ply")
    ]
    assert f"{len(mesh.faces)} faces." in timing and "text to shown mesh" in timing
    glb_i, views_i, timing_i = client.predict("a red cube", "a blue sphere", 0.5, 0, 1.0, api_name="/interpolate")
    assert len(trimesh.load(_path(glb_i), force="mesh").faces) > 100 and "ms" in timing_i


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "The prompt is empty"), ("a " * 150, "is 299 characters long; at most 200")],
    ids=["empty", "over-long"],
)
def test_a_bad_prompt_is_a_message_on_the_page(client, prompt, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict(prompt, 0, 1, 1.0, 0, 0, api_name="/generate")
    assert message in str(caught.value) and "Traceback" not in str(caught.value)


def test_an_unloadable_checkpoint_is_a_message_on_the_page(tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from student.app.page import build_page, theme
    from student.app.session import Session

    page = build_page(Session.load(tmp_path / "no-such-checkpoint", tmp_path / "files"))
    port = free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, theme=theme())
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        with pytest.raises(AppError, match="The checkpoint could not be loaded: checkpoint .* does not exist"):
            client.predict("a red cube", 0, 1, 1.0, 0, 0, api_name="/generate")
    finally:
        page.close()


def test_a_browser_sees_the_red_object_in_the_viewer(app_url, tmp_path):
    from PIL import Image

    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium is not installed and .ci/run could not install it (apt-get install chromium)")
    browser = Browser(app_url, executable)
    try:
        rect = generate_in_page(browser, "a red cube")
        deadline, red = time.monotonic() + 60, 0.0
        while red < 0.02 and time.monotonic() < deadline:  # SwiftShader draws the mesh after it has loaded
            time.sleep(1.0)
            view = np.asarray(Image.open(io.BytesIO(browser.screenshot(rect))).convert("RGB"))
            red = float(_red(view).mean())
        page = browser.screenshot()
    finally:
        browser.close()
    (tmp_path / "app.png").write_bytes(page)
    print(f"red pixels in the viewer: {100 * red:.1f} %, screenshot {tmp_path / 'app.png'}")
    assert red >= 0.02, f"the viewer shows no red object (red pixels {100 * red:.2f} %); see {tmp_path / 'app.png'}"
    assert view.shape[1] >= 300 and (view.min(-1) > 240).mean() > 0.3  # a white stage around the object


def _path(value) -> str:
    """gradio_client returns a path, or a dict / FileData-like object holding one."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("path") or value.get("value") or value.get("image") or json.dumps(value)
    return str(value)

"""What the web page does, without the web: generate or interpolate, write the files a viewer shows, time it.

Every failure a person can cause (an empty or over-long prompt, a checkpoint that does not load, a
sample with no surface) becomes an `AppError` whose text is one line for the page; anything else is a bug
and keeps its traceback in the server log.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from student.generate.errors import GenerationError

MAX_PROMPT_CHARS = 200
MAX_SAMPLES = 8
TEXTURE_SIZES = (0, 256, 512, 1024)  # 0 = vertex colours only
TURNTABLE_FRAMES = 24
MIN_IMAGE_SIDE = 256  # renders of small presets (16-64 px) are enlarged to this for the page


class AppError(Exception):
    """A one-line message for the page."""


@dataclass(frozen=True)
class Timings:
    """Seconds of each stage of one request (first sample's mesh and files; all samples' forward pass)."""

    encode: float
    forward: float  # all samples
    mesh: float  # first sample: marching cubes, decimation, texture
    export: float  # first sample: GLB + OBJ + PLY
    turntable: float

    @property
    def to_shown_mesh(self) -> float:
        """Text to the GLB the viewer loads: encoding, forward pass, meshing and the GLB."""
        return self.encode + self.forward + self.mesh + self.export

    def markdown(self, samples: int) -> str:
        return (
            f"**{1e3 * self.to_shown_mesh:.0f} ms** text to shown mesh: text encoding {1e3 * self.encode:.0f} ms, "
            f"forward pass {1e3 * self.forward / samples:.0f} ms per sample, meshing {1e3 * self.mesh:.0f} ms, "
            f"files {1e3 * self.export:.0f} ms; turntable {1e3 * self.turntable:.0f} ms"
        )


@dataclass(frozen=True)
class Result:
    glb: Path  # first sample, for the 3D viewer
    turntable: Path  # first sample's GIF
    previews: list[Path]  # one image per sample
    downloads: list[Path]  # GLB, OBJ (+ MTL, PNG when textured), PLY per sample
    faces: int
    timings: Timings
    warnings: list[str] = field(default_factory=list)


def check_prompt(prompt: str | None, what: str = "prompt") -> str:
    """The prompt with whitespace normalised, or AppError saying what is wrong with it."""
    text = " ".join((prompt or "").split())
    if not text:
        raise AppError(f"The {what} is empty: describe an object, e.g. 'a red cube'.")
    if len(text) > MAX_PROMPT_CHARS:
        raise AppError(
            f"The {what} is {len(text)} characters long; at most {MAX_PROMPT_CHARS} (a short description works best)."
        )
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "asset"


class Session:
    """A loaded model (or the one-line reason it could not load) and a folder for the files it serves."""

    def __init__(self, model=None, load_error: str | None = None, out_dir: str | Path | None = None):
        assert (model is None) != (load_error is None), "give a model or the reason there is none"
        self.model = model
        self.load_error = load_error
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="et3d-app-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._requests = 0

    @classmethod
    def load(cls, ckpt: str | Path | None, out_dir: str | Path | None = None, **kwargs) -> Session:
        """Load ``ckpt`` (None: the newest under runs/train); a failure is kept to be shown on the page."""
        from student.generate.api import ET3D

        try:
            return cls(ET3D.from_pretrained(ckpt, **kwargs), out_dir=out_dir)
        except GenerationError as e:
            return cls(load_error=f"The checkpoint could not be loaded: {e}", out_dir=out_dir)

    def warm_up(self) -> None:
        """One small request, so the first person's request does not pay for imports and first calls."""
        if self.model is not None:
            # A checkpoint with no surface for this prompt has still warmed the imports.
            with contextlib.suppress(AppError):
                self.generate("a red cube")

    @property
    def description(self) -> str:
        if self.model is None:
            return f"**No model:** {self.load_error}"
        g = self.model.generator.config
        return (
            f"Generator `{g.text_encoder}`-conditioned, tri-planes {g.synthesis.plane_resolution}px, "
            f"text encoder {self.model.text_encoder.name} ({self.model.text_encoder.precision}), "
            f"meshing grid {self.model.mesh_config.grid}, on {self.model.device}."
        )

    def _model(self):
        if self.model is None:
            raise AppError(self.load_error)
        return self.model

    def _request_dir(self, label: str) -> Path:
        self._requests += 1
        folder = self.out_dir / f"{self._requests:05d}-{_slug(label)}"
        folder.mkdir(parents=True)
        return folder

    def _encode(self, prompts: list[str]):
        model = self._model()
        for p in prompts:
            for message in model.text_encoder.check_prompts([p]):
                raise AppError(f"The prompt is too long for the text encoder: {message}.")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return model.encode(prompts)  # (P, D)

    def generate(
        self,
        prompt: str,
        seed: int = 0,
        samples: int = 1,
        truncation: float = 1.0,
        max_faces: int = 0,
        texture: int = 0,
    ) -> Result:
        """``samples`` assets of ``prompt`` (seeds seed, seed + 1, ...); files for all, the viewer's for the first."""
        prompt = check_prompt(prompt)
        seed, samples = _int(seed, "seed", 0, 2**31 - 1), _int(samples, "number of samples", 1, MAX_SAMPLES)
        truncation = _float(truncation, "truncation", 0.0, 1.0)
        max_faces, texture = _int(max_faces, "max faces", 0, 10**7), _texture(texture)
        t0 = time.perf_counter()
        embedding = self._encode([prompt])  # (1, D)
        t_encode = time.perf_counter() - t0
        t0 = time.perf_counter()
        generations = self._model().synthesize(
            embedding.repeat(samples, 1), [prompt] * samples, [seed + i for i in range(samples)], truncation
        )
        self._model().synchronize()
        t_forward = time.perf_counter() - t0
        return self._files(generations, self._request_dir(prompt), t_encode, t_forward, max_faces, texture)

    def interpolate(self, prompt_a: str, prompt_b: str, t: float, seed: int = 0, truncation: float = 1.0) -> Result:
        """The asset at fraction ``t`` of the way from prompt A to prompt B, with one z (seed)."""
        from student.generate.api import interpolate_embeddings

        a, b = check_prompt(prompt_a, "first prompt"), check_prompt(prompt_b, "second prompt")
        t, seed = _float(t, "interpolation position", 0.0, 1.0), _int(seed, "seed", 0, 2**31 - 1)
        truncation = _float(truncation, "truncation", 0.0, 1.0)
        t0 = time.perf_counter()
        ea, eb = self._encode([a, b])  # (D,), (D,)
        t_encode = time.perf_counter() - t0
        t0 = time.perf_counter()
        label = f"{a} -> {b} @ {t:.2f}"
        generations = self._model().synthesize(interpolate_embeddings(ea, eb, t)[None], [label], [seed], truncation)
        t_forward = time.perf_counter() - t0
        return self._files(generations, self._request_dir(f"{a}_to_{b}_{t:.2f}"), t_encode, t_forward, 0, 0)

    def _files(self, generations, folder: Path, t_encode, t_forward, max_faces: int, texture: int) -> Result:
        from student.generate.errors import EmptyMeshError
        from student.generate.preview import image_grid, save_gif, save_image
        from student.mesh.export import save_mesh

        downloads, previews = [], []
        t_mesh = t_export = t_turn = 0.0
        faces = 0
        for i, gen in enumerate(generations):
            name = f"sample_{i}_seed_{gen.seed}"
            t0 = time.perf_counter()
            try:
                mesh = gen.extract_mesh(max_faces or None, texture or None)
            except EmptyMeshError:
                raise AppError(
                    f"Sample {i} (seed {gen.seed}) has no surface at this density level; try another seed."
                ) from None
            t1 = time.perf_counter()
            glb = save_mesh(mesh, folder / f"{name}.glb")
            t2 = time.perf_counter()
            save_mesh(mesh, folder / f"{name}.obj")
            save_mesh(mesh, folder / f"{name}.ply")
            downloads += sorted(p for p in folder.glob(f"{name}*") if p.suffix != ".glb") + [glb]
            previews.append(save_image(enlarged(image_grid(gen.views())[None])[0], folder / f"{name}_views.png"))
            if i == 0:
                first_glb, faces = glb, mesh.num_faces
                t_mesh, t_export = t1 - t0, t2 - t1
                t0 = time.perf_counter()
                frames = enlarged(gen.views(TURNTABLE_FRAMES))  # (F, H, W, 3)
                turntable = save_gif(frames, folder / f"{name}_turntable.gif")
                t_turn = time.perf_counter() - t0
        timings = Timings(t_encode, t_forward, t_mesh, t_export, t_turn)
        return Result(first_glb, turntable, previews, downloads, faces, timings)


def enlarged(images, min_side: int = MIN_IMAGE_SIDE):
    """(N, H, W, 3) uint8 -> repeated pixels (nearest) by the smallest whole factor reaching ``min_side``."""
    import numpy as np

    factor = max(1, -(-min_side // min(images.shape[1:3])))
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def _int(value, what: str, lo: int, hi: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppError(f"The {what} must be a whole number, got {value!r}.") from None
    if number != int(number) or not lo <= number <= hi:
        raise AppError(f"The {what} must be a whole number in [{lo}, {hi}], got {value!r}.")
    return int(number)


def _float(value, what: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppError(f"The {what} must be a number, got {value!r}.") from None
    if not lo <= number <= hi:
        raise AppError(f"The {what} must lie in [{lo}, {hi}], got {value!r}.")
    return number


def _texture(value) -> int:
    size = _int(value, "texture size", 0, max(TEXTURE_SIZES))
    if size not in TEXTURE_SIZES:
        raise AppError(f"The texture size must be one of {', '.join(map(str, TEXTURE_SIZES))}, got {size}.")
    return size

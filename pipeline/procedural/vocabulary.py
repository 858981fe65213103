"""The words the procedural teacher understands: shapes, colours and size words.

Colours are chosen far apart in chromaticity (the colour of a pixel divided by its largest channel),
the quantity `oracle.py` classifies on: the renderer's shading multiplies the albedo by one scalar,
which leaves chromaticity unchanged. None is white (the background) or close to grey, whose
chromaticity would be undefined under dim shading.
"""

from __future__ import annotations

from types import MappingProxyType

# Canonical geometry of each shape lives in `shapes.py`; this tuple fixes their order everywhere
# (oracle class indices, corpus generation).
SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid")

# Albedo in display RGB [0, 1]. Smallest pairwise distance in chromaticity is 0.36 (orange-yellow).
COLOURS: MappingProxyType[str, tuple[float, float, float]] = MappingProxyType(
    {
        "red": (0.85, 0.10, 0.10),
        "orange": (0.95, 0.50, 0.05),
        "yellow": (0.95, 0.85, 0.10),
        "green": (0.15, 0.70, 0.20),
        "cyan": (0.10, 0.75, 0.80),
        "blue": (0.15, 0.30, 0.90),
        "purple": (0.50, 0.15, 0.75),
        "pink": (0.95, 0.40, 0.70),
    }
)

# Size word -> scale factor of the canonical shape. A prompt without one uses 1.0. `large` times the
# largest per-seed jitter keeps every shape inside the radius-0.9 ball the cameras are framed for.
SIZES: MappingProxyType[str, float] = MappingProxyType({"small": 0.7, "large": 1.25})

# Words a prompt may carry that change nothing.
ARTICLES: frozenset[str] = frozenset({"a", "an", "the", "one"})

"""Procedural scenes: the embedded default teacher's world and the ground truth the student is judged on.

One coloured shape per prompt ("a large blue sphere"), with per-seed yaw, scale and shade. Files, one
concept each: `vocabulary` (words), `parser` (prompt -> SceneSpec), `shapes` (canonical SDFs),
`scene` (Scene, sample_scene), `tracer` (sphere tracing), `render` (shaded views), `mesh`
(ground-truth mesh), `oracle` (colour and shape of multi-view images).
"""

from pipeline.procedural.mesh import scene_mesh
from pipeline.procedural.oracle import UNKNOWN, AttributeOracle, OracleConfig, OracleScores, PoseFit
from pipeline.procedural.parser import PromptError, SceneSpec, UnknownWordsError, parse_prompt
from pipeline.procedural.render import render_scene
from pipeline.procedural.scene import Scene, SceneVariation, sample_scene
from pipeline.procedural.vocabulary import COLOURS, SHAPES, SIZES

__all__ = [
    "COLOURS",
    "SHAPES",
    "SIZES",
    "UNKNOWN",
    "AttributeOracle",
    "OracleConfig",
    "OracleScores",
    "PoseFit",
    "PromptError",
    "Scene",
    "SceneSpec",
    "SceneVariation",
    "UnknownWordsError",
    "parse_prompt",
    "render_scene",
    "sample_scene",
    "scene_mesh",
]

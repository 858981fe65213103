"""report.md, written from the metrics dictionary alone, so the report and metrics.json always agree."""

from __future__ import annotations

from pipeline.procedural import COLOURS, SHAPES

SET_NAMES = {"train": "train", "heldout": "held-out"}
WORST_PROMPTS = 5  # training prompts listed by lowest accuracy


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _attributes(sets: dict) -> list[str]:
    rows = [
        [SET_NAMES.get(name, name), str(r["prompts"]), str(r["count"]), _num(r["colour_accuracy"], 3),
         _num(r["shape_accuracy"], 3), _num(r["both_accuracy"], 3)]
        for name, r in sets.items()
    ]  # fmt: skip
    lines = [
        "## Oracle accuracy",
        "",
        "Colour and shape of the student's renders as judged by the attribute oracle "
        "(`pipeline/procedural/oracle.py`, 100% on the teacher's own renders). Held-out prompts are colour x shape "
        "pairs never dumped, so they measure generalisation.",
        "",
        *_table(["set", "prompts", "samples", "colour", "shape", "both"], rows),
        "",
        f"Chance: colour {1 / len(COLOURS):.3f}, shape {1 / len(SHAPES):.3f}.",
        "",
        "![colour confusion](confusion_colour.png)",
        "",
        "![shape confusion](confusion_shape.png)",
        "",
    ]
    for name, r in sets.items():
        per_prompt = sorted(r["per_prompt"].items(), key=lambda kv: (kv[1]["colour"] + kv[1]["shape"], kv[0]))
        if name != "heldout":
            per_prompt = per_prompt[:WORST_PROMPTS]
        title = (
            "Held-out prompts"
            if name == "heldout"
            else f"Weakest {len(per_prompt)} {SET_NAMES.get(name, name)} prompts"
        )
        rows = [[p, _num(v["colour"], 2), _num(v["shape"], 2), str(v["count"])] for p, v in per_prompt]
        lines += [f"{title}:", "", *_table(["prompt", "colour", "shape", "samples"], rows), ""]
    return lines


def _geometry(sets: dict) -> list[str]:
    rows = [
        [SET_NAMES.get(name, name), str(g["count"]), str(g["empty_meshes"]), _num(g["chamfer_mean"], 4),
         _num(g["chamfer_median"], 4), _num(g["gt_vs_gt_chamfer"], 4), _num(g["wrong_shape_chamfer"], 4)]
        for name, g in sets.items()
    ]  # fmt: skip
    return [
        "## Geometry",
        "",
        "Chamfer distance (world units, mean of both directed mean nearest-neighbour distances, best over yaw) "
        "of the student's meshes, extracted as `et3d-gen` does, against the prompt's true shape. Lower is better. "
        "Baselines from ground truth alone: *perfect* is the teacher's own samples (other yaw and scale) against "
        "the same reference, what a student drawing from the teacher's distribution scores; *wrong shape* is the "
        "other shapes against it. Empty meshes (no surface at the density level) are left out of the mean.",
        "",
        *_table(["set", "meshes", "empty", "student mean", "student median", "perfect", "wrong shape"], rows),
        "",
    ]


def _diversity(div: dict) -> list[str]:
    lines = [
        "## Diversity",
        "",
        f"The spread of each factor the teacher varies per seed across {div['seeds']} samples of a prompt at the "
        f"same {div['views']} cameras: the student's latents against the teacher's seeds, each factor fitted from "
        "the renders by the oracle (`student/eval/diversity.py`): yaw as circular variance modulo the shape's "
        "symmetry, scale and shade as standard deviations, and the mean pairwise image L1. Ratios student / "
        "teacher near 1 mean z varies a prompt as the teacher's seeds do, near 0 is mode collapse; only the "
        "factor ratios are immune to a student that adds noise.",
        "",
    ]
    header = ["generator", *(f"{f} ratio" for f in div["factors"]), "min factor ratio (per shape)"]
    rows = [
        [name, *(_num(g["ratios"][f], 2) for f in div["factors"]), _num(g["min_factor_ratio"], 2)]
        for name, g in div["generators"].items()
    ]
    lines += [*_table(header, rows), ""]
    for name, g in div["generators"].items():
        rows = [[shape, *(_num(v[f]["ratio"], 2) for f in div["factors"])] for shape, v in g["per_shape"].items()]
        lines += [f"Per shape, {name} (student / teacher):", "", *_table(["shape", *div["factors"]], rows), ""]
    first = next(iter(div["generators"].values()))
    rows = [
        [p, *(f"{_num(v[f]['student'], 3)} / {_num(v[f]['teacher'], 3)}" for f in div["factors"])]
        for p, v in first["per_prompt"].items()
    ]
    name = next(iter(div["generators"]))
    lines += [f"Per prompt, {name} spread / teacher spread:", "", *_table(["prompt", *div["factors"]], rows), ""]
    return lines


def _unseen(u: dict) -> list[str]:
    rows = [
        ["student (oracle)", _num(u["student"]["colour"], 3), _num(u["student"]["shape"], 3), _num(u["student"]["both"], 3)],
        ["nearest training prompt", _num(u["nearest_neighbour"]["colour"], 3), _num(u["nearest_neighbour"]["shape"], 3),
         _num(u["nearest_neighbour"]["both"], 3)],
    ]  # fmt: skip
    snap, snapping = u.get("student_nearest"), ""  # absent from metrics written before it was measured
    if snap is not None:
        rows.append([f"student, far prompts snapped ({snap['snapped']} of {u['prompts']})", _num(snap["colour"], 3),
                     _num(snap["shape"], 3), _num(snap["both"], 3)])  # fmt: skip
        snapping = (
            f" Snapped: the student with each prompt below the reach threshold ({_num(snap['threshold'], 2)}) "
            "generated from its nearest training prompt's embedding instead, on the same latents and cameras "
            "(`et3d-gen --far-prompts nearest`)."
        )
    per = [
        [p, f"{v['target'][0]} {v['target'][1]}", _num(v["colour"], 2), _num(v["shape"], 2), v["nearest"],
         _num(v["similarity"], 2)]
        for p, v in u["per_prompt"].items()
    ]  # fmt: skip
    return [
        "## Unseen wordings",
        "",
        f"{u['prompts']} prompts of `{u['file']}` whose colour and shape words occur in no training prompt "
        f'("a scarlet box" is a red cube), {u["seeds"]} latents each, judged by the oracle. Baseline: the labels of '
        f"the training prompt whose text embedding is nearest ({u['reference_prompts']} training prompts, from the "
        f"{u['reference']}); a student that uses what the text encoder knows beats it. Cosine similarity to the "
        f"nearest training prompt: {_num(u['similarity']['min'], 2)}-{_num(u['similarity']['max'], 2)}.{snapping}",
        "",
        *_table(["", "colour", "shape", "both"], rows),
        "",
        *_table(["prompt", "means", "colour", "shape", "nearest training prompt", "cosine"], per),
        "",
    ]


def _curves(curves: dict) -> list[str]:
    keys = ["train/colour", "train/shape", "heldout/colour", "heldout/shape", "diversity/yaw", "diversity/scale",
            "diversity/shade", "diversity/image_l1", "chamfer/train", "chamfer/heldout", "chamfer/perfect"]  # fmt: skip
    present = [k for k in keys if any(p.get(k) is not None for p in curves["points"])]
    rows = [
        [str(p["step"]), _num(p["minutes"], 1), *(_num(p.get(k), 4 if k.startswith("chamfer") else 2) for k in present)]
        for p in curves["points"]
    ]
    return [
        "## Curves",
        "",
        "The run's kept checkpoints, each measured with the same lighter settings (`student/eval/curves.py`): oracle "
        "accuracy, diversity ratios (G_ema) and Chamfer against training minutes. The oracle accuracy the trainer "
        "logged is in the training curve below.",
        "",
        f"![curves]({curves['figure']})",
        "",
        *_table(["step", "minutes", *present], rows),
        "",
    ]


def _frame(frame: dict) -> list[str]:
    rows = [["teacher", _num(frame["teacher"]["mean"], 4), _num(frame["teacher"]["max"], 3),
             _num(frame["teacher"]["visible_fraction"], 3), ""]]  # fmt: skip
    rows += [
        [name, _num(g["mean"], 4), _num(g["max"], 3), _num(g["visible_fraction"], 3), _num(g["excess_mean"], 4)]
        for name, g in frame["generators"].items()
    ]
    return [
        "## Frame",
        "",
        f"Deviation from the white background (largest channel distance from 255, in [0, 1]) of the outer "
        f"{frame['border_px']}-pixel border of the diversity renders. The teacher's border is background; a student "
        f"with frame artifacts shows coloured lines there. Visible: deviation above {frame['visible_threshold']}.",
        "",
        *_table(["renders", "mean", "max", "visible fraction", "excess mean over teacher"], rows),
        "",
    ]


def _clip(clip: dict) -> list[str]:
    return [
        "## CLIP",
        "",
        f"DF415 protocol (ATT3D, AToM, LATTE3D) with the CLIP model `{clip['model']}`: {clip['images']} renders of "
        f"{clip['prompts']} prompts. CLIP score = 100 x mean cosine of a render with its prompt; R-precision = "
        "fraction of renders whose prompt ranks first among all prompts.",
        "",
        *_table(
            ["CLIP score", "R-precision", "chance R-precision"],
            [[_num(clip["score_x100"], 2), _num(clip["r_precision"], 3), _num(clip["chance_r_precision"], 3)]],
        ),
        "",
    ]


def _training(training: dict) -> list[str]:
    lines = ["## Training", ""]
    last = training["last_eval"]
    if last is None:
        return [*lines, f"No oracle evaluations in the run's log ({training['stats'] or 'no stats.jsonl'}).", ""]
    scores = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.endswith(("/colour", "/shape")))
    return [
        *lines,
        f"{training['evals']} oracle evaluations logged during training; the last, at step {last['step']}: {scores}.",
        "",
        f"![training curve]({training['curve']})",
        "",
    ]


def render_report(metrics: dict) -> str:
    """The Markdown report of a metrics dictionary as `run_report` builds it."""
    minutes = metrics.get("train_seconds")
    trained = f", trained {minutes / 60:.1f} min" if minutes else ""
    lines = [
        f"# ET3D evaluation: {metrics['run']}, step {metrics['step']}",
        "",
        f"Checkpoint `{metrics['checkpoint']}`{trained}. Evaluated {metrics['created']} in "
        f"{metrics['timings_s']['total']:.1f} s; renders are {metrics['views']} views at {metrics['resolution']} px.",
        "",
        "![teacher and student samples](preview.png)" if metrics["diversity"] else "![student samples](preview.png)",
        "",
    ]
    if metrics["attributes"]:
        lines += _attributes(metrics["attributes"])
    if metrics["geometry"]:
        lines += _geometry(metrics["geometry"])
    if metrics["diversity"]:
        lines += _diversity(metrics["diversity"])
    if metrics.get("frame"):
        lines += _frame(metrics["frame"])
    if metrics.get("unseen"):
        lines += _unseen(metrics["unseen"])
    if metrics.get("curves"):
        lines += _curves(metrics["curves"])
    if metrics["clip"]:
        lines += _clip(metrics["clip"])
    lines += _training(metrics["training"])
    lines += ["## Settings", "", _settings(metrics), ""]
    return "\n".join(lines)


def _settings(metrics: dict) -> str:
    cfg, prompts = metrics["config"], metrics["prompts"]
    counts = f"Training prompts {len(prompts['train'])} of {prompts['train_total']}, held-out {len(prompts['heldout'])}"
    parts = []
    if metrics["procedural"]:
        geo = cfg["geometry"]
        parts.append(
            f"oracle {cfg['seeds']} seeds per training and {cfg['heldout_seeds']} per held-out prompt; "
            f"{geo['prompts']} prompts x {geo['seeds']} seeds per set meshed at grid {geo['mesh_grid']}, ground "
            f"truth at grid {geo['gt_grid']}"
        )
    if metrics["clip"]:
        parts.append(f"CLIP {cfg['clip']['seeds']} seeds x {cfg['clip']['views']} views per prompt")
    return f"{counts}; {'; '.join(parts)}. Every number is in `metrics.json`."

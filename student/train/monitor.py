"""What the main training worker records besides checkpoints: `stats.jsonl`, oracle evaluations, previews.

Records in `stats.jsonl` carry a `kind`: `train` (means of the losses since the last record, seconds per
step, images seen), `eval` (oracle colour / shape accuracy on fixed training and held-out prompts), `end`.
All carry `step`, `wall_s` (training wall-clock, summed over resumed sessions) and `cpu_s` (CPU seconds of
the training process, which on a shared machine measures the work done better than the wall-clock), so
accuracy against time can be read straight from the file.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from student.eval.oracle_accuracy import EvalSet, make_eval_set, oracle_accuracy, spread
from student.model.generator import TriplaneGenerator
from student.run_layout import RunDir
from student.train.plan import TrainPlan
from student.train.previews import render_preview, save_preview, write_preview_index
from student.train.state import Progress
from student.train.stats import RunningMeans, StatsWriter

PREVIEW_SEEDS = 2


def stamp(progress: Progress) -> dict[str, float]:
    """When a record was made: step, training wall-clock and training-process CPU seconds."""
    return {"step": progress.step, "wall_s": round(progress.elapsed_s, 2), "cpu_s": round(progress.cpu_s, 2)}


class Monitor:
    def __init__(self, plan: TrainPlan, G_ema: TriplaneGenerator) -> None:
        self.plan, self.cfg, self.G_ema = plan, plan.config, G_ema
        self.run = RunDir(plan.run_dir)
        self.stats = StatsWriter(self.run.stats)
        self.means = RunningMeans()
        self.step_seconds: list[float] = []
        self.last_eval_step = -1
        self.skipped_corrupt = 0
        self.heldout_note = ""
        info, ev = plan.dataset, self.cfg.eval
        heldout_prompts, heldout_emb = self._heldout()
        embedding = dict(zip(info.prompts, info.embeddings, strict=True)) | dict(
            zip(heldout_prompts, heldout_emb, strict=True)
        )
        train_prompts = spread(info.prompts, ev.train_prompts)
        train_emb = torch.stack([embedding[p] for p in train_prompts])
        self.preview_prompts = spread(train_prompts, ev.preview_prompts) + heldout_prompts[: ev.preview_prompts]
        self.preview_emb = torch.stack([embedding[p] for p in self.preview_prompts])
        self.eval_sets: list[EvalSet] = []
        self.eval_note = ""
        if self.cfg.schedule.eval_every <= 0:
            self.eval_note = "disabled (schedule.eval_every = 0)"
        elif info.teacher != "procedural":
            self.eval_note = (
                f"skipped: the oracle knows procedural scenes only, these shards come from {info.teacher!r}"
            )
        else:
            for name, prompts, emb in (("train", train_prompts, train_emb), ("heldout", heldout_prompts, heldout_emb)):
                if prompts:
                    self.eval_sets.append(self._eval_set(name, prompts, emb))
        self.oracle = None
        if self.eval_sets:
            from pipeline.procedural import AttributeOracle

            self.oracle = AttributeOracle()

    def _heldout(self) -> tuple[list[str], torch.Tensor]:
        """The held-out prompts, embedded by the shards' own encoder (its recorded path), or none with a reason.

        The held-out file lists procedural prompts scored by the procedural oracle: shards of another teacher
        skip it (the reason is logged and kept in the `end` record).
        """
        path, info = self.cfg.eval.heldout_file, self.plan.dataset
        none = [], torch.zeros(0, self.cfg.generator.text_dim)
        if not path:
            return none
        if info.teacher != "procedural":
            self.heldout_note = (
                f"held-out monitoring skipped: {path} holds procedural prompts for the procedural oracle, "
                f"these shards come from teacher {info.teacher!r}"
            )
            tqdm.write(self.heldout_note)
            return none
        if not Path(path).is_file():
            raise FileNotFoundError(f"eval.heldout_file {path!r} not found (set --eval.heldout_file= to skip it)")
        from pipeline.prompts import read_corpus
        from pipeline.text import load_text_encoder

        prompts = read_corpus(path).prompts
        encoder = load_text_encoder(info.text_encoder, info.text_encoder_path)
        return prompts, encoder.encode(prompts).pooled.float()

    def _eval_set(self, name: str, prompts: list[str], emb: torch.Tensor) -> EvalSet:
        gen = self.cfg.generator
        return make_eval_set(
            name, prompts, emb, seeds=self.cfg.eval.seeds, z_dim=gen.mapping.z_dim, camera=gen.camera,
            resolution=gen.superres.output_resolution,
        )  # fmt: skip

    def log(self, progress: Progress, values: dict[str, float], step_seconds: float) -> None:
        self.means.add(values)
        self.step_seconds.append(step_seconds)
        if progress.step % self.cfg.schedule.log_every == 0:
            seconds = sorted(self.step_seconds)
            record = {"kind": "train", **stamp(progress), "nimg": progress.nimg}
            record["s_per_step"] = round(seconds[len(seconds) // 2], 4)  # median: robust to checkpoint/eval stalls
            record.update({k: round(v, 5) for k, v in self.means.pop().items()})
            self.stats.write(record)
            self.step_seconds.clear()

    def evaluate(self, progress: Progress) -> dict[str, float]:
        if not self.eval_sets or self.last_eval_step == progress.step:
            return {}
        started = time.monotonic()
        record: dict = {"kind": "eval", **stamp(progress)}
        for eval_set in self.eval_sets:
            scores = oracle_accuracy(self.G_ema, eval_set, self.oracle)
            record.update({f"{eval_set.name}/colour": scores.colour, f"{eval_set.name}/shape": scores.shape})
            record[f"{eval_set.name}/count"] = scores.count
        record["eval_s"] = round(time.monotonic() - started, 2)
        self.stats.write(record)
        self.last_eval_step = progress.step
        summary = "  ".join(f"{k} {v:.2f}" for k, v in record.items() if k.endswith(("colour", "shape")))
        tqdm.write(f"step {progress.step} ({progress.elapsed_s / 60:.1f} min): {summary}")
        return record

    def preview(self, progress: Progress) -> Path:
        directory = self.run.previews
        directory.mkdir(exist_ok=True)
        if not self.run.preview_index.exists():
            write_preview_index(self.run.preview_index, self.preview_prompts, PREVIEW_SEEDS)
        grid = render_preview(self.G_ema, self.preview_emb, PREVIEW_SEEDS, self.cfg.generator.camera)
        return save_preview(self.run.preview(progress.step), grid)

    def skipped(self, progress: Progress, messages: tuple[str, ...]) -> None:
        """Samples the loader could not read, skipped (data.skip_corrupt): one `skipped` record, one line each."""
        self.skipped_corrupt += len(messages)
        self.stats.write({"kind": "skipped", **stamp(progress), "samples": list(messages)})
        for message in messages:
            tqdm.write(f"skipped an unreadable sample: {message}")

    def finish(self, progress: Progress, stopped_by: str | None, checkpoint: Path | None) -> None:
        self.evaluate(progress)
        if self.cfg.schedule.preview_every:
            self.preview(progress)
        record = {"kind": "end", **stamp(progress)}
        record["stopped_by"] = stopped_by or "budget"
        if self.eval_note:
            record["eval"] = self.eval_note
        if self.heldout_note:
            record["heldout"] = self.heldout_note
        if self.cfg.data.skip_corrupt:
            record["skipped_corrupt"] = self.skipped_corrupt
        self.stats.write(record)
        tqdm.write(f"stopped at step {progress.step} ({record['stopped_by']}); checkpoint: {checkpoint}")

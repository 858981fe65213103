"""`clip`: MVDream's text tower (transformers `CLIPTextModel` + `CLIPTokenizer`) from a local folder.

Token features are the penultimate hidden layer passed through the final layer norm, 77 tokens
(OpenCLIP "penultimate", docs/mvdream.md §Text encoder). The pooled vector is that feature at the
end-of-text token, CLIP's own pooling position. `path` is an MVDream folder (with `text_encoder/` and
`tokenizer/`) or a folder holding those two directly. Note that SD-2.x exports only 23 of OpenCLIP's 24
layers, so on such a folder "penultimate" is layer 22; MVDream's UNet conditions on the last hidden
state instead (the teacher does that itself), while this encoder serves the student's conditioning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.text.base import TextEmbedding, TextEncoder


def _find(folder: Path, name: str, files: list[str]) -> Path:
    for cand in (folder / name, folder):
        if all((cand / f).is_file() for f in files):
            return cand
    missing = [f"{name}/{f}" for f in files if not (folder / name / f).is_file()]
    raise FileNotFoundError(f"CLIP folder {folder} lacks {', '.join(missing)}")


class CLIPEncoder(TextEncoder):
    name = "clip"

    def __init__(self, path: str | None = None, device: str | torch.device = "cpu"):
        if not path:
            raise ValueError("the clip text encoder needs a local folder: pass path=<MVDream or CLIP folder>")
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"CLIP folder not found: {folder}")
        enc_dir = _find(folder, "text_encoder", ["config.json"])
        tok_dir = _find(folder, "tokenizer", ["vocab.json", "merges.txt"])
        from transformers import CLIPTextModel, CLIPTokenizer

        # from_pretrained(dir) reads vocab.json + merges.txt correctly; vocab_file=/merges_file= keyword
        # construction silently yields a broken tokenizer in transformers 5 (docs/design.md §Text encoders).
        self.tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
        self.model = CLIPTextModel.from_pretrained(str(enc_dir)).eval().to(device)
        self.device = torch.device(device)
        self.max_tokens = int(self.model.config.max_position_embeddings)
        self.dim = int(self.model.config.hidden_size)

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        batch = self.tokenizer(
            prompts, padding="max_length", max_length=self.max_tokens, truncation=True, return_tensors="pt"
        )
        ids = batch["input_ids"].to(self.device)  # (B, 77)
        out = self.model(input_ids=ids, output_hidden_states=True)
        final_ln = self.model.final_layer_norm  # transformers 5 flattened CLIPTextModel (no .text_model)
        tokens = final_ln(out.hidden_states[-2])  # (B, 77, D)
        eos = self.tokenizer.eos_token_id
        eot = (ids == eos).int().argmax(dim=1)  # first end-of-text token of each prompt
        pooled = tokens[torch.arange(len(prompts), device=ids.device), eot]  # (B, D)
        mask = batch["attention_mask"].bool()
        return TextEmbedding(pooled=pooled.float().cpu(), tokens=tokens.float().cpu(), mask=mask)

"""CLIP metrics with a tiny random CLIP saved to a local folder: loading, embedding and the report section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from student.eval.clip_metrics import ClipConfig, ClipModel, evaluate_clip, render_clip_views
from student.model.generator import TriplaneGenerator
from student.presets import get_preset

PROMPTS = ["a photo of a corgi", "a red sports car", "a wooden chair"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, golden_dir: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(golden_dir / "tiny_pipeline" / "tokenizer"))
    text = {"vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}  # fmt: skip
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(0)  # transformers initialises weights from the global generator
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=12))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    folder = tmp_path_factory.mktemp("tiny_clip")
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_tiny_clip_embeds_images_and_texts(tiny_clip: Path) -> None:
    clip = ClipModel(tiny_clip)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    image_emb = clip.embed_images(images)
    text_emb = clip.embed_texts(PROMPTS)
    assert image_emb.shape == (3, 12) and text_emb.shape == (3, 12)
    assert torch.isfinite(image_emb).all() and torch.isfinite(text_emb).all()
    assert not torch.allclose(text_emb[0], text_emb[1])  # the prompts are told apart
    # The same image twice gives the same embedding (no randomness in inference).
    assert torch.allclose(clip.embed_images(images[:1]), image_emb[:1], atol=1e-5)


def test_clip_metrics_of_a_tiny_generator(tiny_clip: Path) -> None:
    cfg = dataclasses.replace(get_preset("tiny").generator, text_encoder="clip", text_dim=8)
    G = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(0)).eval()
    emb = torch.randn(len(PROMPTS), 8, generator=torch.Generator().manual_seed(1))
    result = evaluate_clip(G, PROMPTS, emb, ClipModel(tiny_clip), ClipConfig(views=2, seeds=2))
    assert result.images == len(PROMPTS) * 2 * 2 and result.prompts == 3
    assert -1.0 <= result.score <= 1.0 and result.score != 0.0
    # R-precision is a fraction of the 12 renders.
    assert 0.0 <= result.r_precision <= 1.0 and (result.r_precision * 12) == pytest.approx(
        round(result.r_precision * 12)
    )
    assert set(result.per_prompt_score) == set(PROMPTS)
    assert result.to_json()["chance_r_precision"] == pytest.approx(1 / 3)
    # Independently: each prompt's own renders against its own text, one prompt at a time, so a mix-up of
    # images and labels in the batched path would show.
    clip, config = ClipModel(tiny_clip), ClipConfig(views=2, seeds=2)
    views = render_clip_views(G, emb, config)  # (P, S, V, H, W, 3)
    texts = torch.nn.functional.normalize(clip.embed_texts(PROMPTS), dim=-1)  # (P, E)
    for i, prompt in enumerate(PROMPTS):
        images = torch.nn.functional.normalize(clip.embed_images(views[i].reshape(-1, *views.shape[-3:])), dim=-1)
        assert result.per_prompt_score[prompt] == pytest.approx(float((images @ texts[i]).mean()), abs=1e-5)
    assert result.score == pytest.approx(sum(result.per_prompt_score.values()) / len(PROMPTS), abs=1e-6)


def test_missing_clip_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="processor_config.json"):
        ClipModel(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        ClipModel(tmp_path / "absent")

"""Text encoders: minilm offline (and equal to sentence-transformers), clip from the tiny MVDream folder."""

import shutil

import pytest
import torch

from pipeline.text import available_text_encoders, load_text_encoder


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


def test_minilm_dim_and_normalised(minilm):
    emb = minilm.encode(["a red cube", "a blue sphere"])
    assert minilm.dim == 384 and emb.pooled.shape == (2, 384) and emb.pooled.dtype == torch.float32
    assert torch.allclose(emb.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert emb.tokens.shape[0] == 2 and emb.mask.dtype == torch.bool


def test_minilm_related_prompts_are_closer(minilm):
    e = minilm.encode(["a red cube", "a crimson box", "a large red cube", "a recipe for lemon cake"]).pooled
    sim = e @ e.T
    assert sim[0, 2] > sim[0, 3] + 0.2
    assert sim[0, 1] > sim[0, 3]


def test_minilm_batch_independent(minilm):
    alone = minilm.encode(["a small green torus"]).pooled
    batched = minilm.encode(["a small green torus", "a much longer prompt about a purple pyramid on a table"]).pooled
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_minilm_matches_sentence_transformers(minilm):
    # The plain-PyTorch BERT is the fast path; sentence-transformers on the same files is its oracle.
    from sentence_transformers import SentenceTransformer

    from pipeline.text.minilm import bundled_minilm_dir

    ref = SentenceTransformer(str(bundled_minilm_dir()), device="cpu")
    prompts = ["a red cube", "A Large BLUE sphere, shiny!", "small green torus " * 3]
    expected = torch.from_numpy(ref.encode(prompts, normalize_embeddings=False))
    assert torch.allclose(minilm.encode(prompts).pooled, expected, atol=1e-5)


def test_minilm_truncation_warning(minilm):
    long = "red " * 300
    assert minilm.count_tokens(long) == 302
    assert minilm.check_prompts([long]) == [f"minilm takes 256 tokens; {long[:40]!r}... has 302 and is truncated"]
    assert not minilm.check_prompts(["a red cube"])
    # Truncation keeps [CLS] + the first 254 words + [SEP], as sentence-transformers does.
    torch.testing.assert_close(minilm.encode([long]).pooled, minilm.encode(["red " * 254]).pooled)
    assert not torch.allclose(minilm.encode([long]).pooled, minilm.encode(["red " * 200]).pooled, atol=1e-4)


def test_clip_tiny_folder(golden_dir):
    enc = load_text_encoder("clip", path=str(golden_dir / "tiny_pipeline"))
    assert enc.dim == 32 and enc.max_tokens == 77
    emb = enc.encode(["a cute owl", "a red cube"])
    assert emb.tokens.shape == (2, 77, 32) and emb.pooled.shape == (2, 32)
    assert not torch.allclose(emb.pooled[0], emb.pooled[1])
    # penultimate hidden layer through the final layer norm, computed independently
    from transformers import CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(golden_dir / "tiny_pipeline" / "tokenizer"))
    model = CLIPTextModel.from_pretrained(str(golden_dir / "tiny_pipeline" / "text_encoder"))
    ids = tok(["a cute owl"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
        ref = model.final_layer_norm(hs[-2])
    assert torch.allclose(emb.tokens[0], ref[0], atol=1e-6)
    # the golden pipeline's prompt ids, as the reference tokenizer produced them
    from safetensors.torch import load_file

    golden_ids = load_file(str(golden_dir / "tiny_pipeline_io.safetensors"))["prompt_input_ids"]
    assert torch.equal(ids, golden_ids.long())


def test_clip_missing_files_are_named(tmp_path, golden_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_text_encoder("clip", path=str(tmp_path / "nothing"))
    shutil.copytree(golden_dir / "tiny_pipeline" / "text_encoder", tmp_path / "m" / "text_encoder")
    (tmp_path / "m" / "tokenizer").mkdir()
    with pytest.raises(FileNotFoundError, match="tokenizer/vocab.json"):
        load_text_encoder("clip", path=str(tmp_path / "m"))
    with pytest.raises(ValueError, match="needs a local folder"):
        load_text_encoder("clip")


def test_unknown_encoder():
    assert available_text_encoders() == ["clip", "minilm"]
    with pytest.raises(ValueError, match="available: clip, minilm"):
        load_text_encoder("t5")


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 0.05)])
def test_packed_bert_matches_reference_bert(dtype, tol):
    # Random weights of a small BERT, a padded batch: the packing (fused QKV, weights in `dtype`) against
    # the plain encoder. In fp32 only the fusion differs, so the two agree to rounding.
    from pipeline.text.bert import BertConfig, BertEncoder

    cfg = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
    )
    torch.manual_seed(0)
    ref = BertEncoder(cfg).eval()
    for p in ref.parameters():  # nn.Linear's default init is small; make the layers matter
        p.data.normal_(0, 0.3)
    ids = torch.randint(0, 50, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    with torch.no_grad():
        expected = ref(ids, mask)
        got = ref.packed(dtype)(ids, mask)
    assert got.dtype == torch.float32 and got.shape == expected.shape == (3, 7, 32)
    real = mask[..., None].expand_as(got)  # padded positions are never pooled
    assert (got - expected)[real].abs().max() < tol * expected[real].abs().max()
    if dtype == torch.float32:
        assert torch.allclose(got[real], expected[real], atol=1e-5)
        x = torch.randn(3, 7, 32, generator=torch.Generator().manual_seed(1))  # one layer alone, too
        with torch.no_grad():
            torch.testing.assert_close(ref.layers[0].packed(dtype)(x, mask), ref.layers[0](x, mask))


def test_minilm_bf16_embeddings_match_fp32(minilm):
    # Generation encodes with bf16 weights; the student was trained on fp32 embeddings from the dump.
    fast = load_text_encoder("minilm", precision="auto")
    assert fast.precision == "bf16" and minilm.precision == "fp32"
    prompts = ["a red cube", "a large shiny blue sphere on a table", "small green torus " * 3]
    cos = torch.nn.functional.cosine_similarity(fast.encode(prompts).pooled, minilm.encode(prompts).pooled)
    assert cos.min() > 0.9999, cos
    alone = fast.encode(["a red cube"]).pooled[0]  # no padding: the unmasked attention kernel
    assert torch.nn.functional.cosine_similarity(alone, minilm.encode(["a red cube"]).pooled[0], dim=0) > 0.9999


def test_text_precision_is_validated(golden_dir):
    with pytest.raises(ValueError, match="runs in \\['fp32'\\], not 'bf16'"):
        load_text_encoder("clip", path=str(golden_dir / "tiny_pipeline"), precision="bf16")
    assert load_text_encoder("clip", path=str(golden_dir / "tiny_pipeline"), precision="auto").precision == "fp32"
    with pytest.raises(ValueError, match="runs in"):
        load_text_encoder("minilm", precision="fp16")

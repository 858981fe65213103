"""The generator's parts and its inference API on the tiny preset: shapes, conventions, persistence."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from support.student_data import one_torch_thread

from pipeline.cameras import BOX_HALF, orbit_cameras
from student.config import AGGREGATES, DecoderConfig
from student.model.decoder import TriplaneDecoder
from student.model.discriminator import Discriminator
from student.model.generator import TriplaneGenerator
from student.model.modulated_conv import modulated_conv2d
from student.presets import tiny
from student.render.triplane import PLANE_AXES, PLANE_NAMES, project_to_planes, sample_triplane, sample_triplane_planar
from student.run_layout import MODEL_CONFIG

TEXT_DIM = 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def tiny_generator(**mapping) -> TriplaneGenerator:
    cfg = tiny().generator
    cfg = dataclasses.replace(
        cfg, text_encoder="onehot-test", text_dim=TEXT_DIM, mapping=dataclasses.replace(cfg.mapping, **mapping)
    )
    return TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(0))


def cameras(b: int, v: int):
    cams = orbit_cameras(v, 15.0)
    return cams.c2w.expand(b, v, 4, 4), cams.fovy_deg.expand(b, v)


@pytest.fixture(scope="module")
def G() -> TriplaneGenerator:  # noqa: N802 - the GAN literature's name
    return tiny_generator()


def test_inference_api_shapes_dtypes_and_ranges(G):
    emb = torch.randn(2, TEXT_DIM)
    planes = G.planes(emb, rng=torch.Generator().manual_seed(1))
    cfg = G.config
    r, c = cfg.synthesis.plane_resolution, cfg.synthesis.plane_channels
    assert planes.shape == (2, 3, c, r, r) and planes.dtype == torch.float32
    sigma, rgb = G.query(planes, torch.rand(2, 50, 3) * 2 - 1)
    assert sigma.shape == (2, 50) and rgb.shape == (2, 50, 3)
    assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
    c2w, fovy = cameras(2, 3)
    images = G.render(planes, c2w, fovy)
    out = cfg.superres.output_resolution
    assert images.shape == (2, 3, 3, out, out) and images.min() >= 0 and images.max() <= 1
    assert G.render(planes, c2w, fovy, resolution=2 * out).shape == (2, 3, 3, 2 * out, 2 * out)
    with pytest.raises(ValueError, match="multiple of the super-resolution factor 2"):
        G.render(planes, c2w, fovy, resolution=out + 1)
    assert (G.text_encoder_name, G.text_dim) == ("onehot-test", TEXT_DIM)
    assert G.sample_z(3, torch.Generator().manual_seed(0)).shape == (3, cfg.mapping.z_dim)


def test_planes_depend_on_z_and_text_and_are_reproducible_from_a_generator(G):
    emb = torch.randn(1, TEXT_DIM)
    a = G.planes(emb, rng=torch.Generator().manual_seed(3))
    b = G.planes(emb, rng=torch.Generator().manual_seed(3))
    c = G.planes(emb, rng=torch.Generator().manual_seed(4))
    d = G.planes(torch.randn(1, TEXT_DIM), z=G.sample_z(1, torch.Generator().manual_seed(3)))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.05 * a.abs().mean()
    assert (a - d).abs().mean() > 0.05 * a.abs().mean()


def test_truncation_zero_collapses_z_and_one_is_identity(G):
    emb = torch.randn(1, TEXT_DIM).expand(2, -1)
    z = G.sample_z(2, torch.Generator().manual_seed(0))
    collapsed = G.planes(emb, z, truncation_psi=0.0)
    torch.testing.assert_close(collapsed[0], collapsed[1])
    with torch.no_grad():
        w = G.mapping_w(emb, z)  # (2, w_dim), untruncated
        assert torch.equal(G.latent_w(emb, z, 1.0), w)
        centre = G.latent_w(emb, z, 0.0)  # the prompt's mean w: the same for both latents
        torch.testing.assert_close(centre[0], centre[1])
        torch.testing.assert_close(G.latent_w(emb, z, 0.5), (centre + w) / 2)  # linear in psi


def test_render_is_deterministic_and_matches_batched_and_single_views(G):
    planes = G.planes(torch.randn(1, TEXT_DIM), rng=torch.Generator().manual_seed(0))
    c2w, fovy = cameras(1, 4)
    all_views = G.render(planes, c2w, fovy)
    torch.testing.assert_close(all_views, G.render(planes, c2w, fovy), rtol=0, atol=0)
    torch.testing.assert_close(all_views[:, 2:3], G.render(planes, c2w[:, 2:3], fovy[:, 2:3]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("plane", range(3))
def test_a_feature_in_one_plane_reaches_exactly_the_points_projecting_onto_it(plane):
    r = 8
    planes = torch.zeros(1, 3, 1, r, r)
    row, col = 5, 2  # texel centres at -1 + (2i + 1) / R
    planes[0, plane, 0, row, col] = 1.0
    u, v = -1 + (2 * col + 1) / r, -1 + (2 * row + 1) / r  # (width axis, height axis) coordinates
    free = torch.linspace(-0.9, 0.9, 7)
    axes = {"XY": (0, 1), "XZ": (0, 2), "YZ": (1, 2)}[PLANE_NAMES[plane]]
    other = ({0, 1, 2} - set(axes)).pop()
    hit = torch.zeros(7, 3)
    hit[:, axes[0]], hit[:, axes[1]], hit[:, other] = u, v, free
    miss = hit.clone()
    miss[:, axes[1]] = v + 2.0 / r  # one texel along the plane's second axis
    feats = sample_triplane(planes, torch.cat([hit, miss])[None])  # (1, 3, 14, 1)
    torch.testing.assert_close(feats[0, plane, :7, 0], torch.ones(7))
    assert feats[0, plane, 7:].abs().max() == 0
    others = [p for p in range(3) if p != plane]
    assert feats[0, others].abs().max() == 0, "the feature leaked into another plane"


def test_the_three_planes_see_three_different_pairs_of_axes():
    # A point moved along z changes what XZ and YZ read and leaves XY unchanged; likewise for x and y.
    planes = torch.randn(1, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    p = torch.tensor([[[0.1, -0.3, 0.4]]])
    base = sample_triplane(planes, p)[0, :, 0]  # (3, C)
    for axis, unchanged in ((0, 2), (1, 1), (2, 0)):  # x leaves YZ, y leaves XZ, z leaves XY
        q = p.clone()
        q[..., axis] += 0.5
        moved = sample_triplane(planes, q)[0, :, 0]
        changed = [(moved[k] - base[k]).abs().max() > 1e-4 for k in range(3)]
        assert changed == [k != unchanged for k in range(3)], (axis, changed)


def test_plane_coordinates_are_the_axis_pairs_of_each_plane_over_the_box_half_size():
    points = torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([points[..., list(axes)] for axes in PLANE_AXES], dim=1) / BOX_HALF  # (2, 3, 50, 2)
    assert torch.equal(project_to_planes(points), expected)


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_the_planar_field_path_computes_the_reference_field_bit_for_bit(aggregate):
    """The renderer's field reads (B, 3, C, P) features and combines the planes there (`decode_planar`); the
    reference is the (B, 3, P, C) layout and `forward`, written out below. Same sums in the same order: the
    values and every gradient are bit-identical, the planes' gradient arrives contiguous at grid_sample."""
    rng = torch.Generator().manual_seed(0)
    decoder = TriplaneDecoder(DecoderConfig(hidden=8, feature_channels=4, aggregate=aggregate), 5, rng=rng)
    planes = torch.randn(2, 3, 5, 8, 8, generator=rng)
    points = (torch.rand(2, 300, 3, generator=rng) * 2.4 - 1.2) * BOX_HALF  # some outside the box: zero features
    weigh_sigma, weigh_feats = torch.randn(2, 300, generator=rng), torch.randn(2, 300, 4, generator=rng)

    def reference(leaf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = sample_triplane(leaf, points)  # (2, 3, 300, 5)
        x = feats.mean(dim=1)
        if aggregate == "mean_product":
            x = torch.cat([x, feats[:, 0] * feats[:, 1] * feats[:, 2]], dim=-1)
        x = decoder.out(torch.nn.functional.softplus(decoder.hidden(x)))  # (2, 300, 5)
        cfg = decoder.cfg
        sigma = cfg.density_scale * torch.nn.functional.softplus(x[..., 0] + cfg.density_shift)
        return sigma, torch.sigmoid(x[..., 1:]) * (1 + 2 * cfg.colour_widen) - cfg.colour_widen

    contiguous = []

    def planar(leaf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = sample_triplane_planar(leaf, points)  # (2, 3, 5, 300)
        feats.register_hook(lambda grad: contiguous.append(grad.is_contiguous()))
        return decoder.decode_planar(feats)

    def run(field) -> list[torch.Tensor]:
        leaf = planes.clone().requires_grad_(True)
        decoder.zero_grad()
        sigma, feats = field(leaf)
        ((sigma * weigh_sigma).sum() + (feats * weigh_feats).sum()).backward()
        return [sigma, feats, leaf.grad, *(p.grad.clone() for p in decoder.parameters())]

    expected = run(reference)
    for path in (planar, lambda leaf: decoder(sample_triplane(leaf, points))):
        got = run(path)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert contiguous == [True]
    assert expected[2].abs().sum() > 0 and (expected[0] > 0).all()  # the gradient reached the planes


def test_the_generators_field_is_the_decoder_on_the_sampled_planes():
    G = tiny_generator()
    rng = torch.Generator().manual_seed(3)
    planes = torch.randn(2, 3, G.cfg.synthesis.plane_channels, 16, 16, generator=rng)
    points = (torch.rand(2, 40, 3, generator=rng) * 2 - 1) * BOX_HALF
    sigma, feats = G.field(planes, points)
    ref_sigma, ref_feats = G.decoder(sample_triplane(planes, points))
    assert torch.equal(sigma, ref_sigma) and torch.equal(feats, ref_feats)


def test_modulated_conv_demodulation_makes_output_invariant_to_style_scale():
    rng = torch.Generator().manual_seed(0)
    x, w, s = (
        torch.randn(2, 4, 6, 6, generator=rng),
        torch.randn(5, 4, 3, 3, generator=rng),
        torch.rand(2, 4, generator=rng) + 0.5,
    )
    a = modulated_conv2d(x, w, s)
    torch.testing.assert_close(modulated_conv2d(x, w, 3.0 * s), a, rtol=1e-4, atol=1e-5)
    # Against the per-sample kernel written out: W * s, normalised per output channel.
    ref = []
    for i in range(2):
        k = w * s[i].view(1, 4, 1, 1)
        k = k / k.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        ref.append(torch.nn.functional.conv2d(x[i : i + 1], k, padding=1))
    torch.testing.assert_close(a, torch.cat(ref), rtol=1e-4, atol=1e-5)


def test_save_and_load_give_identical_outputs(G, tmp_path):
    path = G.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((path / MODEL_CONFIG).read_text())
    assert meta["schema_version"] == 1 and meta["generator"]["text_encoder"] == "onehot-test"
    assert set(meta["generator"]["camera"]) == {"radius", "fovy_deg", "num_views", "resolution", "elevation_range"}
    loaded = TriplaneGenerator.from_pretrained(path)
    assert loaded.config == G.config
    emb, z = torch.randn(2, TEXT_DIM), G.sample_z(2, torch.Generator().manual_seed(0))
    c2w, fovy = cameras(2, 2)
    a, b = G.planes(emb, z), loaded.planes(emb, z)
    assert torch.equal(a, b)
    assert torch.equal(G.render(a, c2w, fovy), loaded.render(b, c2w, fovy))
    meta["schema_version"] = 99
    (path / MODEL_CONFIG).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="schema 99"):
        TriplaneGenerator.from_pretrained(path)


def test_camera_conditioned_mapping_uses_a_default_camera_at_inference():
    G = tiny_generator(camera_cond=True)
    emb, z = torch.randn(2, TEXT_DIM), torch.randn(2, G.config.mapping.z_dim)
    label = G.default_mapping_camera(2)
    assert label.shape == (2, 25)
    torch.testing.assert_close(G.planes(emb, z), G.synthesis(G.mapping(z, emb, label)))
    other = orbit_cameras(1, 0.0, 90.0).eg3d_label().expand(2, -1)
    assert not torch.allclose(G.synthesis(G.mapping(z, emb, other)), G.planes(emb, z))


def test_middle_orbit_is_the_teachers_mid_elevation_orbit():
    camera = dataclasses.replace(tiny().generator.camera, elevation_range=(4.0, 30.0), radius=2.5, fovy_deg=40.0)
    cams = camera.middle_orbit(3, 20.0, resolution=24)
    ref = orbit_cameras(3, 17.0, 20.0, radius=2.5, fovy_deg=40.0, resolution=24)
    assert torch.equal(cams.c2w, ref.c2w) and torch.equal(cams.fovy_deg, ref.fovy_deg) and cams.resolution == 24
    stepped = camera.middle_orbit(3, 20.0, azimuth_step_deg=50.0)
    for k in range(3):  # view k is the single-view orbit at azimuth 20 + 50 k
        assert torch.equal(stepped.c2w[k], orbit_cameras(1, 17.0, 20.0 + 50.0 * k, radius=2.5).c2w[0])


def test_to_uint8_clamps_and_rounds_half_to_even_like_numpy_rint():
    from student.render.pixels import to_uint8

    x = torch.tensor([-0.3, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 127.5 / 255, 254.5 / 255, 1.0, 1.7])
    expected = np.rint(np.clip(x.numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)
    assert to_uint8(x).tolist() == expected.tolist()
    assert to_uint8(x).tolist()[:5] == [0, 0, 0, 2, 128]  # 0.5 -> 0 and 1.5 -> 2: half to even, as np.rint
    rand = torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    assert np.array_equal(to_uint8(rand).numpy(), np.rint(np.clip(rand.numpy(), 0.0, 1.0) * 255.0).astype(np.uint8))


def test_render_uint8_is_render_as_pixels_for_shared_and_per_sample_views(G):
    planes = G.planes(torch.randn(2, TEXT_DIM), rng=torch.Generator().manual_seed(1))
    cams = G.config.camera.middle_orbit(5, 30.0)
    views = G.render_uint8(planes, cams.c2w, cams.fovy_deg)  # one orbit shared by both samples
    assert views.shape == (2, 5, 16, 16, 3) and views.dtype == torch.uint8 and views.device.type == "cpu"
    c2w, fovy = cams.c2w.expand(2, -1, -1, -1), cams.fovy_deg.expand(2, -1)
    images = G.render(planes, c2w, fovy).detach()  # (2, 5, 3, H, W) in [0, 1]
    expected = np.rint(images.permute(0, 1, 3, 4, 2).numpy() * 255.0).astype(np.uint8)
    assert np.array_equal(views.numpy(), expected)
    assert torch.equal(G.render_uint8(planes, c2w, fovy), views)  # per-sample cameras, the same views
    assert G.render_uint8(planes, cams.c2w, cams.fovy_deg, resolution=32).shape == (2, 5, 32, 32, 3)
    chunked = G.render_uint8(planes, cams.c2w, cams.fovy_deg, views_per_call=2)
    assert (chunked.int() - views.int()).abs().max() <= 1  # chunks may round a last bit differently, no more


def test_discriminator_scores_depend_on_image_text_and_camera():
    cfg = tiny()
    D = Discriminator(cfg.discriminator, 16, TEXT_DIM, rng=torch.Generator().manual_seed(0))
    rng = torch.Generator().manual_seed(1)
    img, raw, text = (
        torch.rand(4, 3, 16, 16, generator=rng),
        torch.rand(4, 3, 8, 8, generator=rng),
        torch.randn(4, TEXT_DIM, generator=rng),
    )
    cams = orbit_cameras(4, 10.0).eg3d_label()
    logits = D(img, raw, text, cams)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    assert not torch.allclose(D(img, raw, text.flip(0), cams), logits)
    assert not torch.allclose(D(img, raw, text, cams.flip(0)), logits)
    assert not torch.allclose(D(img, torch.rand(4, 3, 8, 8, generator=rng), text, cams), logits)  # dual input


@pytest.mark.parametrize("batch", [1, 3])
def test_packed_synthesis_matches_the_reference_synthesis(batch):
    # Generation runs the packed synthesis (folded gains, stacked affines, channels-last); the module it
    # was packed from is its oracle. Random biases so that the folding of the lrelu gain into them is seen.
    from student.model.packed_synthesis import PackedSynthesis

    G = tiny_generator()
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in G.synthesis.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=rng))
        w = G.latent_w(torch.randn(batch, TEXT_DIM, generator=rng), G.sample_z(batch, rng))  # (B, w_dim)
        expected = G.synthesis(w)  # (B, 3, C, R, R)
        got = PackedSynthesis(G.synthesis)(w)
    assert got.shape == expected.shape and got.is_contiguous()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


@pytest.mark.parametrize("kind", ["conv", "conv_up", "torgb"])
def test_each_layers_folded_form_computes_the_layer(kind):
    # The folding rules live with the layers: the folded tensors, applied as `FoldedModulatedConv` says, give
    # the layer's own output. Random biases and a non-unit lr multiplier so that every gain is exercised.
    from student.model.equalized import EqualizedLinear
    from student.model.modulated_conv import ModulatedConv, ToRGB
    from student.model.packed_synthesis import PackedLayer

    rng = torch.Generator().manual_seed(2)
    layer = ToRGB(6, 4, 8, rng=rng) if kind == "torgb" else ModulatedConv(6, 5, 8, up=kind == "conv_up", rng=rng)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=rng))
        x, w = torch.randn(2, 6, 4, 4, generator=rng), torch.randn(2, 8, generator=rng)
        expected = layer(x, w)
        folded = layer.folded()
        styles = w @ folded.style_weight.t() + folded.style_bias  # (2, 6)
        got = PackedLayer(folded)(x, styles)
    assert got.shape == expected.shape == ((2, 5, 8, 8) if kind == "conv_up" else (2, layer.bias.shape[0], 4, 4))
    assert (folded.norms is None) == (kind == "torgb") and folded.lrelu == (kind != "torgb")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    linear = EqualizedLinear(8, 3, bias_init=0.5, lr_multiplier=0.01, rng=rng)
    weight, bias = linear.folded(scale=0.25)
    torch.testing.assert_close(w @ weight.t() + bias, linear(w).detach() * 0.25, rtol=1e-6, atol=1e-6)

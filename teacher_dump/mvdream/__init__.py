"""MVDream, re-implemented on torch + diffusers/transformers building blocks.

| file | concept |
| --- | --- |
| `config.py` | `MultiViewUNetConfig`, MVDream/ldm key names |
| `resnet.py`, `attention.py`, `unet.py` | the multi-view UNet (cross-view attention, camera embedding) |
| `weights.py` | reading weight files, strict loading, the original checkpoint's key groups |
| `vae_convert.py` | ldm VAE keys -> diffusers `AutoencoderKL` keys |
| `original_config.py` | sizes of the published single-file checkpoint (it stores none) |
| `loading.py` | components from a diffusers-format folder or the single file |
| `pipeline.py` | `MVDreamPipeline`: DDIM + classifier-free guidance + decode |
| `parity.py` | adapters behind `tests/test_mvdream_parity.py` (golden data in `tests/golden/`) |

Conventions, key layouts, golden data and the parity test: docs/mvdream.md.
"""

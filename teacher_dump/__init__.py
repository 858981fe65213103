"""Stage 1: run a text-to-multi-view teacher over a prompt corpus and cache its views as shards."""

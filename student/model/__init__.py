"""The networks: mapping, tri-plane synthesis, decoder, super-resolution, discriminator, and the generator
that assembles them (`TriplaneGenerator`, the inference API)."""

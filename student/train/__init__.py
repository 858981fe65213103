"""The GAN trainer: data stream, losses, the training step and loop, checkpoints, stats, previews, Ray Train."""

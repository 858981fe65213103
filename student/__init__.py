"""Stage 2: the text-conditioned tri-plane GAN student, its trainer and one-pass generation."""

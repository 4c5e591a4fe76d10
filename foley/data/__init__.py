"""Caches the generators train on: codec latents, frames and captions, built once from the world or a user's videos."""

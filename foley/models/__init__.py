"""Neural models: the stereo codec (codec.py) and, later, the generators on its latents."""

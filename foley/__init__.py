"""foley: give silent video its sound — in sync, matching what is seen, from where it is."""

__version__ = "0.1.0"


def generate(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """Stereo audio for a video with the StereoFoley DiT: see foley.generate.generate."""
    from foley.generate import generate as _generate

    return _generate(*args, **kwargs)

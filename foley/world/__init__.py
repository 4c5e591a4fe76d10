"""Procedural Foley world: synthetic audio-visual clips with exact ground truth (MISSION part 3).

    from foley.world import PRESETS, render, sample_scene, synthesize
    scene = sample_scene(PRESETS["default"], seed=0, split="train", index=7)
    rendered = render(scene, with_masks=True)   # frames, exact tracks (foley.tracks.Track), masks
    audio = synthesize(scene, rendered)          # stems, ambience, mixes: objaware / dataset / mono

    from foley.world.shards import make_world   # sharded, deterministic, resumable, rank-aware
    make_world("out/", n=1000, split="train", seed=0, workers=2)
    from foley.world.dataset import WorldDataset  # torch IterableDataset (imports torch)
    ds = WorldDataset("out/", split="train", fps=25, size=(112, 112), sr=16000)

Modules: objects (class registry) = looks (drawing) + sounds (synthesis); motion; backgrounds;
scene; render; audio; record (one clip <-> bytes); shards; dataset; checks; stats; preview; cli.
"""
from foley.world.audio import MIXES, Audio, synthesize
from foley.world.objects import CLASSES
from foley.world.motion import MOTIONS
from foley.world.render import Rendered, render
from foley.world.scene import HELD_OUT, PRESETS, SPLITS, Scene, WorldConfig, WorldError, sample_scene

__all__ = ["MIXES", "Audio", "synthesize", "CLASSES", "MOTIONS", "Rendered", "render", "HELD_OUT", "PRESETS",
           "SPLITS", "Scene", "WorldConfig", "WorldError", "sample_scene"]

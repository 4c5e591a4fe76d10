"""Procedural Foley world: synthetic audio-visual clips with exact ground truth (MISSION part 3).

    scene = sample_scene(PRESETS["default"], seed=0, split="train", index=7)
    rendered = render(scene)                 # frames, exact tracks (foley.tracks.Track), masks
    audio = synthesize(scene, rendered)      # stems, ambience, mixes: objaware / dataset / mono
    make_world("out/", n=1000, split="train", seed=0, workers=2)   # sharded, resumable, rank-aware
    WorldDataset("out/", split="train", fps=25, size=(112, 112), sr=16000)  # torch IterableDataset
"""
from foley.world.audio import MIXES, Audio, synthesize
from foley.world.objects import CLASSES
from foley.world.motion import MOTIONS
from foley.world.render import Rendered, render
from foley.world.scene import HELD_OUT, PRESETS, SPLITS, Scene, WorldConfig, WorldError, sample_scene

__all__ = ["MIXES", "Audio", "synthesize", "CLASSES", "MOTIONS", "Rendered", "render", "HELD_OUT", "PRESETS",
           "SPLITS", "Scene", "WorldConfig", "WorldError", "sample_scene"]

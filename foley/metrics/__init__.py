"""Evaluation (MISSION part 5): stereo placement (`stereo`), what a listener hears (`listening`), codec figures (`codec`).

The stereo metrics are re-exported here: `from foley.metrics import evaluate, stereo_score`.
"""
from foley.metrics.stereo import (AudioPosition, StereoReport, audio_position, evaluate, frame_energies,  # noqa: F401
                                  position_bin, stereo_score)

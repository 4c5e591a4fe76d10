"""Trackers: model-free motion (`track_motion`), a user's box (`track_box`), audio-guided choice (`rank_by_audio`)."""
from foley.tracking.box import track_box
from foley.tracking.follow import FollowConfig
from foley.tracking.motion import MotionConfig, track_motion
from foley.tracking.onsets import onset_envelope
from foley.tracking.select import audio_score, motion_energy, rank_by_audio, rank_by_envelope

__all__ = ["FollowConfig", "MotionConfig", "audio_score", "motion_energy", "onset_envelope", "rank_by_audio",
           "rank_by_envelope", "track_box", "track_motion"]

"""`foley codec roundtrip IN OUT`: the codec's verbs (thin over foley.roundtrip)."""
from __future__ import annotations

import argparse


def _cmd_roundtrip(a: argparse.Namespace) -> None:
    from foley.roundtrip import roundtrip

    r = roundtrip(a.input, a.output, a.checkpoint)
    print(f"wrote {a.output}: {r.seconds:.2f} s through {r.floats_per_second} floats/s; "
          f"Stereo-Score {r.stereo_score_in:.3f} -> {r.stereo_score_out:.3f}, per-frame pan error {r.pan_error:.3f}")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `codec roundtrip` on the main CLI's sub-parsers."""
    c = subparsers.add_parser("codec", help="the stereo audio codec (48 kHz stereo <-> latents at the video rate)")
    csub = c.add_subparsers(dest="codec_verb", required=True, metavar="VERB")
    r = csub.add_parser("roundtrip", help="encode and decode an audio file (hear what the codec keeps)")
    r.add_argument("input", help="any audio or video file with sound; resampled/upmixed to 48 kHz stereo")
    r.add_argument("output", help="output .wav or .flac")
    r.add_argument("--checkpoint", help="codec checkpoint (default: the shipped v2 causal foley/checkpoints/codec_tiny.pt, "
                   "causal; offline checkpoints such as foley/checkpoints/codec_tiny_offline.pt run in overlapping chunks: memory "
                   "stays flat in the length either way)")
    r.set_defaults(func=_cmd_roundtrip, reads=("input", "checkpoint"), writes=("output",))

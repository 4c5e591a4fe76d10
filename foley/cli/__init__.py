"""`foley <verb>`: a thin command line over the library. User errors print one line and exit 1.

Verbs on files and video live here; `eval`, `world`, `codec` and `train` have a module each in this package.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from foley import interrupts
from foley.errors import FoleyError, Terminated
from foley.files import check_outputs, refuse_overwriting

EPILOG = "Docs and examples: README.md. Every verb has --help."
OBJECT_HELP = ("follow the track with this label (e.g. object1; `foley track` lists them) instead of the one "
               "whose motion events best meet the sound's onsets")
EVIDENCE_HELP = "also write why each track was (not) chosen as the sounding object (JSON, schema foley.choice/1)"


def _cmd_spatialize(a: argparse.Namespace) -> None:
    from foley import pipeline

    track, _ = pipeline.spatialize_video(a.video, a.output, pipeline.TrackSpec.parse(a.track), audio_path=a.audio,
                                         ambience_path=a.ambience, ambience_gain=a.ambience_gain,
                                         max_objects=a.max_objects, object_label=a.object, evidence_path=a.evidence,
                                         faces=a.faces)
    if a.save_track:
        from foley.tracks import save_tracks

        save_tracks(a.save_track, [track])
    if track.label == pipeline.CENTRE_LABEL:
        print(f"wrote {a.output} (centred: no convincing sounding object; see the evidence above)")
    else:
        print(f"wrote {a.output} (followed {track.label or 'track'}, "
              f"{int(track.reliable.sum())}/{len(track)} frames detected)")


def _cmd_track(a: argparse.Namespace) -> None:
    from foley import io, pipeline
    from foley.tracks import save_tracks

    audio = None
    if not a.no_audio and io.probe(a.video).has_audio:
        audio = io.iter_audio(a.video, sr=pipeline.SR, channels=1)  # streamed: read only if tracks need ranking
    strip: dict = {}
    tracks = pipeline.find_tracks(a.video, pipeline.TrackSpec.parse(a.track), audio=audio,
                                  max_objects=a.max_objects, strip=strip, object_label=a.object,
                                  evidence_path=a.evidence)
    save_tracks(a.output, tracks)
    if a.plot:
        from foley.plot import plot_tracks

        plot_tracks(a.plot, tracks, sorted(strip.items()), title=Path(a.video).name)
    for t in tracks:
        score = f", audio score {t.score:.2f}" if t.score is not None else ""
        print(f"{t.label}: {int(t.reliable.sum())}/{len(t)} frames detected{score}")
    print(f"wrote {a.output}" + (f" and {a.plot}" if a.plot else ""))


def _cmd_demo(a: argparse.Namespace) -> None:
    from foley import pipeline

    reports = pipeline.run_demo(a.out, width=a.width, height=a.height, seconds=a.seconds, generate=not a.no_generate)
    print(pipeline.report_table(reports))
    (Path(a.out) / "metrics.json").write_text(json.dumps({k: r.as_dict() for k, r in reports.items()}, indent=2))
    made = "" if a.no_generate else "demo_generated.mp4 (sound made from the pictures by the shipped DiT), "
    print(f"\nwrote {a.out}/: demo_stereo.mp4 (play it), {made}tracks.png (what was tracked), tracks.json, "
          "truth.json, demo_silent.mp4, demo_mono.wav, metrics.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="foley", description="Give silent video its sound: object-aware stereo.",
                                epilog=EPILOG)
    p.add_argument("-v", "--verbose", action="store_true", help="more messages")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("spatialize", help="turn a mono soundtrack into stereo that follows the object on screen")
    s.add_argument("video", help="input video")
    s.add_argument("--audio", help="mono sound to place (default: the video's own audio, downmixed)")
    s.add_argument("--track", default="motion",
                   help="motion (default) | box=x,y,w,h@frame | tracks.json | tracks.csv | masks/ | masks.npz")
    s.add_argument("--ambience", help="ambience bed, spread across both channels")
    s.add_argument("--ambience-gain", type=float, default=0.3, help="linear gain of the ambience (default 0.3)")
    s.add_argument("--max-objects", type=int, default=3, help="motion tracker: most objects followed (default 3)")
    s.add_argument("--object", metavar="NAME", help=OBJECT_HELP)
    s.add_argument("--faces", choices=("auto", "on", "off"), default="auto",
                   help="look for talking faces and follow the one speaking in each shot: auto (default: when the "
                        "sound looks like speech), on, off")
    s.add_argument("--save-track", metavar="JSON", help="also write the track that was followed")
    s.add_argument("--evidence", metavar="JSON", help=EVIDENCE_HELP)
    s.add_argument("-o", "--output", required=True, help="output .mp4/.mov/.mkv (video copied) or .wav/.flac")
    s.set_defaults(func=_cmd_spatialize, reads=("video", "audio", "ambience", "track"),
                   writes=("output", "save_track", "evidence"),
                   suffixes={"save_track": (".json",), "evidence": (".json",)})

    t = sub.add_parser("track", help="find the moving objects of a video and write their tracks")
    t.add_argument("video")
    t.add_argument("--track", default="motion", help="motion (default) | box=x,y,w,h@frame | masks/ | masks.npz")
    t.add_argument("--max-objects", type=int, default=3)
    t.add_argument("--no-audio", action="store_true", help="do not rank tracks by the video's audio")
    t.add_argument("--plot", metavar="PNG", help="picture of the tracks: frames with centroids, x and mass over time")
    t.add_argument("--object", metavar="NAME", help="put the track with this label first (e.g. object1)")
    t.add_argument("--evidence", metavar="JSON", help=EVIDENCE_HELP)
    t.add_argument("-o", "--output", required=True, help="tracks JSON (schema in foley/tracks.py)")
    t.set_defaults(func=_cmd_track, reads=("video", "track"), writes=("output", "plot", "evidence"),
                   suffixes={"plot": (".png",), "evidence": (".json",)})

    d = sub.add_parser("demo", help="make a clip from scratch, track it, spatialize it and score it")
    d.add_argument("--out", default="foley-demo", help="output folder (default ./foley-demo)")
    d.add_argument("--width", type=int, default=640)
    d.add_argument("--height", type=int, default=360)
    d.add_argument("--seconds", type=float, default=8.0)
    d.add_argument("--no-generate", action="store_true", help="skip generating the clip's sound with the DiT")
    d.set_defaults(func=_cmd_demo, reads=(), writes=(), folders=("out",))

    from foley.cli import codec, evaluate, generate, stream, train, world

    generate.add_parsers(sub)
    stream.add_parsers(sub)
    evaluate.add_parsers(sub)
    world.add_parsers(sub)
    codec.add_parsers(sub)
    train.add_parsers(sub)
    return p


def _check_paths(args: argparse.Namespace) -> None:
    """Before any work: no output replaces an input, and every output file or folder can be written.

    Each verb declares its paths with set_defaults: `reads` and `writes` (files), `folders` (output
    folders it fills) and `suffixes` ({option: allowed extensions}, for outputs of one fixed format);
    `paths(args)` may move an option from `writes` to `folders` when the inputs make it a folder.
    """
    def given(names) -> dict:
        return {k: getattr(args, k, None) for k in names}

    if getattr(args, "paths", None):  # a verb whose outputs depend on its inputs (a batch writes a folder)
        args.paths(args)

    refuse_overwriting(given(args.reads), given(args.writes))
    check_outputs(given(args.writes), given(getattr(args, "folders", ())), getattr(args, "suffixes", None))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous: dict[int, object] = {}  # the handlers we replaced: only the main thread installs any
    if main_thread:
        interrupts.clear()  # nothing from an earlier run in this process carries over
    try:
        # SIGINT stays ignored where it was (a background job's `foley ... &` is not for the terminal's Ctrl-C)
        for sig in (signal.SIGINT, signal.SIGTERM) if main_thread else ():
            if sig == signal.SIGTERM or signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, interrupts.handler)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="foley: %(levelname)s: %(message)s")
        logging.getLogger("foley.choice").setLevel(logging.INFO)  # which object sounds, and why: always shown
        _check_paths(args)
        args.func(args)
    except FoleyError as e:
        print(f"foley: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("foley: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("foley: terminated", file=sys.stderr)
        return 143
    finally:
        for sig, before in previous.items():  # the handlers first: a signal after this is no longer ours...
            signal.signal(sig, before)
        if previous:
            interrupts.clear()  # ...then what ours noted (another thread's call never touches it)
    return 0


if __name__ == "__main__":
    sys.exit(main())

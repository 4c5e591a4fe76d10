"""Frame-level online video-to-audio: one video frame in, that frame's 48 kHz stereo audio out (SoundReactor).

    from foley.stream import Reactor
    with Reactor(nfe=4) as r:              # the shipped model and the causal codec, streaming
        for frame in camera:               # (H, W, 3) uint8 RGB at the codec's frame rate (25 fps)
            play(r.push(frame))            # (2, 1920) float32: 40 ms of stereo audio

Nothing here looks at a future frame: the transformer keeps a KV cache, the head samples the frame's latent,
the causal codec decodes it with its own streaming state. Sources at another frame rate are retimed to the
codec's clock (`retime`: each 40 ms tick takes the newest frame that has arrived).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import torch

from foley.checkpoint import shipped
from foley.errors import FoleyError

DEFAULT_MODEL = shipped("reactor_tiny.pt")
MIRROR = 0.0  # mirror guidance (a stream of the mirrored frames rides along; foley.diffusion.guidance): off by default


class StreamError(FoleyError):
    """A stream's input went wrong (a frame of another size, a short raw frame, a camera that stopped)."""


class Reactor:
    """A live SoundReactor stream. `push(frame)` -> (2, hop) audio; `close()` (or `with`) ends the stream.

    `int8` quantises the network's linear layers dynamically (CPU): faster frames, slightly different audio.
    `mirror` > 0 adds mirror guidance: a third stream sees the frames mirrored left-right, and each frame's latent
    is pushed away from what that stream would make (placement), at the cost of one more row per step."""

    def __init__(self, model: str | Path | None = None, nfe: int = 4, cfg: float = 3.0, seed: int = 0,
                 mode: str | None = None, ntk: float = 1.0, threads: int | None = None, int8: bool = False,
                 device: str = "cpu", mirror: float = MIRROR) -> None:
        from foley.devices import compute_device
        from foley.models.codec import load_codec
        from foley.models.reactor import load_reactor

        if threads:
            torch.set_num_threads(threads)
        if not 1 <= nfe <= 100:
            raise FoleyError(f"--nfe must be 1..100 head evaluations per frame (1-4 after ECT), got {nfe}")
        if not cfg >= 1.0 or ntk < 1.0:
            raise FoleyError(f"cfg must be >= 1 and ntk >= 1 (got {cfg}, {ntk})")
        if not (mirror >= 0 and np.isfinite(mirror)):
            raise FoleyError(f"--mirror-guidance must be a number >= 0, got {mirror}")
        if device != "cpu" and int8:
            raise FoleyError(f"device {device!r}: --int8 runs on the CPU only")
        self.device = compute_device(device)
        self.codec = load_codec().eval().to(self.device)
        self.net, ckpt = load_reactor(model or DEFAULT_MODEL, self.codec, self.device)
        if int8:  # dynamic int8 linears: a quarter of the weight traffic that bounds a frame's time on a CPU
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice
                self.net = torch.ao.quantization.quantize_dynamic(self.net, {torch.nn.Linear}, dtype=torch.qint8)
        self.mode = mode or ("consistency" if ckpt.get("stage") == "ect" else "diffusion")
        self.nfe, self.ntk = nfe, ntk
        self.hop, self.fps, self.sr = self.codec.cfg.hop, self.codec.cfg.fps, self.codec.cfg.sr
        self.state = self.net.start(1, cfg, seed, mirror)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(self.codec.streaming())
        self.shape: tuple[int, ...] | None = None
        self.frames = 0

    def push(self, frame: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 RGB frame -> (2, hop) float32 audio of that frame (never waits for a later one)."""
        from foley.models.video import resize_frames

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or min(frame.shape[:2]) < 1:
            raise StreamError(f"frame {self.frames}: expected (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise StreamError(f"frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, but the stream started at "
                              f"{self.shape[1]}x{self.shape[0]}: a stream keeps one frame size")
        with torch.inference_mode():  # per call: a live Reactor leaves the caller's autograd state alone
            f = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None, None]  # (1, 1, 3, H, W)
            f = resize_frames(f, self.net.cfg.frame_size)[:, 0].to(self.device)
            x = self.net.step(self.state, f, self.nfe, self.mode, self.ntk)  # (1, C)
            self.frames += 1
            return self.codec.decode(self.codec.cap_loudness(x[:, :, None]))[0].cpu().numpy()  # (2, hop)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> "Reactor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- sources

def retime(frames: Iterable[np.ndarray], fps_in: float, fps_out: float) -> Iterator[np.ndarray]:
    """Frames at fps_in -> frames at fps_out: tick k takes the newest input frame whose time is <= k / fps_out
    (a frame held or dropped, never one from the future)."""
    if fps_in <= 0:
        raise FoleyError(f"frame rate must be > 0, got {fps_in}")
    tick = 0
    for i, f in enumerate(frames):  # frame i stands for [i / fps_in, (i + 1) / fps_in): its ticks go out now
        while tick / fps_out < (i + 1) / fps_in - 1e-9:
            yield f
            tick += 1


def parse_raw(spec: str) -> tuple[int, int, float]:
    """'640x480@30' -> (640, 480, 30.0)."""
    try:
        size, fps = spec.split("@")
        w, h = (int(v) for v in size.lower().split("x"))
        rate = float(fps)
    except ValueError:
        raise FoleyError(f"--raw must look like 640x480@30 (width x height @ fps), got {spec!r}") from None
    if w < 1 or h < 1 or not 0 < rate <= 1000:
        raise FoleyError(f"--raw {spec}: width, height and fps must be positive")
    return w, h, rate


def raw_frames(stream: BinaryIO, width: int, height: int, stall: float = 0.0) -> Iterator[np.ndarray]:
    """RGB24 frames from a byte stream; a stream that ends inside a frame is an error naming the byte count, and
    a pipe that delivers nothing for `stall` seconds (0: wait forever) is a StreamError."""
    need = width * height * 3
    read = _reader(stream, stall)
    k = 0
    while True:
        buf = b""
        while len(buf) < need:
            more = read(need - len(buf), k)
            if not more:
                break
            buf += more
        if not buf:
            return
        if len(buf) < need:
            raise StreamError(f"the raw input ended inside frame {k}: {len(buf)} of {need} bytes "
                              f"(is --raw {width}x{height} right? frames must be packed RGB24)")
        yield np.frombuffer(bytearray(buf), np.uint8).reshape(height, width, 3)  # writable, for torch
        k += 1


def _reader(stream: BinaryIO, stall: float):  # noqa: ANN202
    """read(n, frame) -> up to n bytes (b'' at the end): straight from the file descriptor when there is one, so a
    stall is seen (select) rather than blocked on inside a buffer."""
    import os
    import select

    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream never stalls
        return lambda n, k: stream.read(n)

    def read(n: int, k: int) -> bytes:
        if stall > 0 and not select.select([fd], [], [], stall)[0]:
            raise StreamError(f"the source stalled: no data for {stall:g} s after frame {k}")
        return os.read(fd, n)

    return read


def camera_frames(index: int) -> tuple[Iterator[np.ndarray], float]:
    """(RGB frames, fps) of camera `index` (OpenCV); a camera that stops delivering ends with a StreamError."""
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise FoleyError(f"cannot open camera {index}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

    def frames() -> Iterator[np.ndarray]:
        k = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    raise StreamError(f"camera {index} stopped delivering frames after {k}")
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                k += 1
        finally:
            cap.release()

    return frames(), float(fps)


def open_source(source: str, raw: str | None, fps_out: float, stall: float = 0.0) -> Iterator[np.ndarray]:
    """Frames at the codec's rate from a video file, raw RGB24 on stdin ('-' with --raw WxH@fps) or a camera index."""
    from foley import io

    if raw:
        w, h, fps = parse_raw(raw)
        if source != "-":
            raise FoleyError("--raw reads frames from stdin: give '-' as SOURCE")
        return retime(raw_frames(sys.stdin.buffer, w, h, stall), fps, fps_out)
    if source.isdigit():
        frames, fps = camera_frames(int(source))
        return retime(frames, fps, fps_out)
    if source == "-":
        raise FoleyError("reading stdin needs --raw WxH@fps (packed RGB24 frames)")
    if not Path(source).is_file():
        raise FoleyError(f"{source}: no such video (SOURCE is a video file, '-' with --raw, or a camera index)")
    return io.iter_frames(source, fps=fps_out)

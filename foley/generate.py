"""Offline video -> stereo audio with the StereoFoley DiT (`foley generate`, `foley.generate`).

    audio = foley.generate("clip.mp4", prompt="a dog barking")     # (2, N) float32 at 48 kHz
    Generator("obj").write("clip.mp4", "clip_foley.mp4", steps=25)

Frames are read at the codec's frame rate (one per latent frame), at the larger of the DiT's `read_size` and the
sounding detector's size, and box-averaged for the one that reads them smaller; a clip longer than
the training window is generated in overlapping windows whose decoded audio is crossfaded. The sampler runs
`steps` steps with classifier-free guidance `cfg_strength` (the paper's 6 and 100 by default) and, ours, mirror
guidance `mirror` (3 by default, 0 for the paper's sampling; `foley.diffusion.guidance`); the same seed gives the
same output. Ours too: each decoded window is steered (`foley.steer`) towards where the sounding detector
(`foley.models.sounding`) sees the object heard in each frame, a share `steer` of the way (1 by default for obj; 0
leaves the DiT's placement as it is, and is the default for base).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from foley.errors import FoleyError
from foley.models.dit import checkpoint_path  # noqa: F401  (base | obj -> the shipped file; also for scripts)

SR = 48000
WINDOW, OVERLAP = 100, 20  # latent frames (4 s and 0.8 s at 25 fps)
KNEE = 0.9  # output samples above this magnitude are bent smoothly towards full scale (`soft_limit`)
MIRROR = 3.0  # default mirror guidance: placement, FD and CLAP up on the world test split (docs/benchmarks.md)
STEER = 1.0  # default steering towards the object heard (docs/benchmarks.md)
log = logging.getLogger(__name__)


class GenerateError(FoleyError):
    """A generation request cannot be served."""


@dataclass(frozen=True)
class Settings:
    cfg_strength: float = 6.0
    steps: int = 100
    sampler: str = "ddim"
    seed: int = 0
    mirror: float = MIRROR  # mirror guidance (foley.diffusion.guidance); 0 samples as the paper does
    steer: float | None = None  # share of the way to the sounding detector's x (foley.steer); 0: as generated;
    # None: STEER, or 0 for a base-stage model (the paper's base: VGGSound-like stereo, not object-aware)

    def __post_init__(self) -> None:
        from foley.diffusion import SAMPLERS

        if self.steps < 1 or not np.isfinite(self.cfg_strength) or self.cfg_strength < 0:
            raise GenerateError("--num-steps must be >= 1 and --cfg-strength a number >= 0")
        if not (np.isfinite(self.mirror) and self.mirror >= 0):
            raise GenerateError(f"--mirror-guidance must be a number >= 0, got {self.mirror}")
        if self.steer is not None and not (np.isfinite(self.steer) and 0 <= self.steer <= 1):
            raise GenerateError(f"--steer must be a number in [0, 1], got {self.steer}")
        if self.sampler not in SAMPLERS:
            raise GenerateError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")


class Generator:
    """A DiT with its codec and joint embedding, ready to generate."""

    def __init__(self, model: str = "obj", device: str | torch.device = "cpu", sounding: str | None = None) -> None:
        from foley.models.clap import load_clap
        from foley.models.codec import load_codec
        from foley.models.dit import load_dit

        from foley.devices import compute_device

        self.device = compute_device(device)
        self.codec = load_codec().eval().to(self.device)  # the weights load on the CPU, then move (as in foley.stream)
        self.dit, ckpt = load_dit(checkpoint_path(model), self.codec, self.device)
        self.clap = load_clap(device=self.device)
        self.sounding_path, self._detector = sounding, None
        self.default_steer = default_steer(ckpt)

    def detector(self):  # noqa: ANN201
        """The sounding detector (`sounding` given at construction, else the shipped one), loaded when first asked."""
        from foley.models.sounding import load_sounding

        if self._detector is None:
            self._detector = load_sounding(self.sounding_path, self.device)
        return self._detector

    def condition(self, prompt: str | None = None, audio_prompt: str | os.PathLike | None = None) -> torch.Tensor | None:
        """(1, D) joint embedding of the text or audio prompt; None for neither."""
        from foley.models.clap import words

        if prompt and audio_prompt:
            raise GenerateError("give --prompt or --audio-prompt, not both")
        if prompt:
            if len(words(prompt)) > self.clap.cfg.max_words:
                log.warning("prompt has %d words; the text encoder reads the first %d", len(words(prompt)),
                            self.clap.cfg.max_words)
            with torch.no_grad():
                return self.clap.embed_text([prompt])
        if audio_prompt:
            from foley import io

            try:
                audio = io.read_audio(audio_prompt, sr=SR, channels=2)
            except FoleyError as e:
                raise GenerateError(f"audio prompt: {e}") from None
            if audio.shape[-1] < SR // 10 or not np.isfinite(audio).all():
                raise GenerateError(f"audio prompt {audio_prompt}: too short or not finite")
            with torch.no_grad():
                return self.clap.embed_audio(torch.from_numpy(audio[None]), SR)
        return None

    def frames(self, video: str | os.PathLike, duration: float | None = None, size: int | None = None
               ) -> Iterator[torch.Tensor]:
        """(3, S, S) uint8 frames at the codec's fps, read lazily: the whole video or its first `duration` s; S is
        the DiT's `read_size` unless `size` is given."""
        from foley import io

        info = io.probe(video)
        if duration is not None and (not np.isfinite(duration) or duration <= 0):
            raise GenerateError(f"--duration must be > 0 seconds, got {duration}")
        s, fps = size or self.dit.cfg.read_size, self.codec.cfg.fps
        limit = int(round((duration or info.duration) * fps))
        for k, f in enumerate(io.iter_frames(video, fps=fps, size=(s, s))):
            if k >= limit:
                return
            yield torch.from_numpy(f).permute(2, 0, 1).contiguous()

    @torch.no_grad()
    def latents(self, frames: torch.Tensor, cond: torch.Tensor | None, st: Settings, window: int) -> torch.Tensor:
        """(1, C, n) latents for n <= window frames (of any size: shrunk to the DiT's `read_size` if larger)."""
        from foley.diffusion import SAMPLERS, mirror_cfg
        from foley.models.video import resize_frames

        n, s = frames.shape[0], self.dit.cfg.read_size
        fr = frames[None].to(self.device)  # (1, n, 3, S, S)
        if fr.shape[-1] != s:
            fr = resize_frames(fr, s)
        cond_drop = torch.tensor([cond is None], device=self.device)
        c = cond if cond is not None else torch.zeros(1, self.dit.cfg.cond_dim, device=self.device)

        video = {False: self.dit.video(fr)}  # (1, n, W) per picture: once per window, not once per step

        def fn(x: torch.Tensor, t: torch.Tensor, drop: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
            k = x.shape[0]
            v = video[False].expand(k, -1, -1)
            if flip.any():  # the left-right mirrored picture where asked (mirror guidance)
                if True not in video:
                    video[True] = self.dit.video(fr.flip(-1))
                v = torch.where(flip[:, None, None], video[True].expand(k, -1, -1), v)
            return self.dit(x, t, None, c.expand(k, -1), drop, cond_drop.expand(k), video=v)

        g = torch.Generator(device="cpu").manual_seed(st.seed * 1_000_003 + window)
        noise = torch.randn((1, self.dit.channels, n), generator=g).to(self.device)
        return SAMPLERS[st.sampler](mirror_cfg(fn, st.cfg_strength, st.mirror), noise, st.steps)

    @torch.no_grad()
    def blocks(self, video: str | os.PathLike, prompt: str | None = None, audio_prompt: str | None = None,
               duration: float | None = None, settings: Settings = Settings()) -> Iterator[np.ndarray]:
        """(2, k) float32 blocks of stereo at 48 kHz for the video, window by window: memory flat in its length.

        Windows of WINDOW frames start every WINDOW - OVERLAP frames; each window's audio fades out over its
        last OVERLAP frames while the next one fades in, and the overlap is normalised by the summed weights.
        """
        from foley.steer import steer

        cond = self.condition(prompt, audio_prompt)
        hop, fps = self.codec.cfg.hop, self.codec.cfg.fps
        limiter = _Limiter()
        share = self.default_steer if settings.steer is None else settings.steer
        det = self.detector()  # its frame size decides the reading size, steered or not: the DiT sees the same
        it = self.frames(video, duration, max(self.dit.cfg.read_size, det.cfg.size))
        pending = next(it, None)
        if pending is None:
            raise GenerateError(f"{video}: no frames to generate for")
        buf: list[torch.Tensor] = []
        before: list[torch.Tensor] = []  # the frames just before the window (the detector's context)
        tail: tuple[np.ndarray, np.ndarray] | None = None  # the previous window's faded end and its weights
        i = 0
        while True:
            while len(buf) < WINDOW and pending is not None:
                buf.append(pending)
                pending = next(it, None)
            last, n = pending is None, len(buf)
            frames = torch.stack(before + buf)  # the window, after the frames the detector wants before it
            z = self.latents(frames[len(before):], cond, settings, i)
            ramp = _ramp(n, hop, fade_in=i > 0, fade_out=not last)
            y = self.codec.decode(self.codec.cap_loudness(z))[0].cpu().numpy()[:, : n * hop]  # (2, n * hop)
            if share > 0:  # towards the object heard in each frame
                x = det.locate(frames[None]).x[0, len(before):].numpy()
                y = steer(y, x, np.full(n, share), SR, fps)  # every frame: weighting by how likely one object
                # dominates steered too little (docs/benchmarks.md)
            y = y * ramp
            w = ramp.copy()
            if tail is not None:
                f = tail[1].size
                y[:, :f] += tail[0]
                w[:f] += tail[1]
            if last:
                yield limiter(y / np.maximum(w, 1e-6))
                limiter.report(video)
                return
            cut = (n - OVERLAP) * hop
            yield limiter(y[:, :cut] / np.maximum(w[:cut], 1e-6))
            before = (before + buf[: n - OVERLAP])[-det.cfg.context:]
            tail, buf, i = (y[:, cut:], w[cut:]), buf[n - OVERLAP:], i + 1

    def __call__(self, video: str | os.PathLike, prompt: str | None = None, audio_prompt: str | None = None,
                 duration: float | None = None, settings: Settings = Settings()) -> np.ndarray:
        """(2, N) float32 stereo at 48 kHz for the video (or its first `duration` seconds)."""
        return np.concatenate(list(self.blocks(video, prompt, audio_prompt, duration, settings)), axis=1)

    def write(self, video: str | os.PathLike, out: str | os.PathLike, **kw: object) -> None:
        """Generate and write: WAV/FLAC by extension, else muxed into a copy of the video (stream copied)."""
        from foley import io

        suffix = Path(out).suffix.lower()
        if suffix not in (".wav", ".flac", ".mp4", ".mov", ".mkv"):
            raise GenerateError(f"output {out}: use .wav, .flac, or a video .mp4/.mov/.mkv")
        audio = self.blocks(video, **kw)  # streamed into the writer: memory flat in the video's length
        if suffix in (".wav", ".flac"):
            io.write_audio(out, audio, SR)
        else:
            io.mux_audio(video, audio, SR, out)


def default_steer(ckpt: dict) -> float:
    """How far a DiT checkpoint's output is steered unless asked: STEER, or 0 for a base-stage model (the paper's
    base makes VGGSound-like stereo, not object-aware)."""
    return 0.0 if ckpt.get("stage") == "base" else STEER


def soft_limit(y: np.ndarray, knee: float = KNEE) -> np.ndarray:
    """Samples within +-knee unchanged; above it bent by a tanh knee towards, never past, full scale (continuous,
    with slope 1 at the knee), so a loud generated peak is rounded off instead of clipped flat by the writer."""
    a = np.abs(y)
    over = a > knee
    if not over.any():
        return y
    out = np.array(y, copy=True)
    head = 1.0 - knee
    out[over] = np.sign(y[over]) * (knee + head * np.tanh((a[over] - knee) / head))
    return out


class _Limiter:
    """`soft_limit` over a stream of blocks, counting what it touched (a generated clip can overshoot full scale
    where guidance extrapolates: ~1% of samples in 2 of 5 world test clips, peaks up to 11)."""

    def __init__(self) -> None:
        self.total = self.over = 0
        self.peak = 0.0

    def __call__(self, y: np.ndarray) -> np.ndarray:
        a = np.abs(y)
        self.total += a.size
        self.over += int((a > 1.0).sum())
        self.peak = max(self.peak, float(a.max(initial=0.0)))
        return soft_limit(y).astype(np.float32)

    def report(self, video: object) -> None:
        if self.over:
            log.warning("%s: %.2f%% of the generated samples were above full scale (peak %.1f): limited softly "
                        "(lower --cfg-strength or --mirror-guidance for less)", video, 100 * self.over / self.total,
                        self.peak)


def _ramp(n: int, hop: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """(n * hop,) crossfade weights: linear over OVERLAP frames at a faded edge, 1 elsewhere."""
    w = np.ones(n * hop, np.float32)
    f = min(OVERLAP * hop, n * hop)
    if fade_in:
        w[:f] = np.linspace(1e-3, 1, f)
    if fade_out:
        w[-f:] = np.minimum(w[-f:], np.linspace(1, 1e-3, f))
    return w


def generate(video: str | os.PathLike, prompt: str | None = None, audio_prompt: str | None = None,
             model: str = "obj", duration: float | None = None, cfg_strength: float = 6.0, num_steps: int = 100,
             seed: int = 0, sampler: str = "ddim", mirror: float = MIRROR, device: str = "cpu", *,
             steer: float | None = None, sounding: str | None = None) -> np.ndarray:
    """(2, N) float32 stereo audio at 48 kHz for a video, from the shipped obj model by default; `steer` and
    `sounding` as `Settings.steer` and `Generator`'s detector."""
    return Generator(model, device, sounding)(video, prompt, audio_prompt, duration,
                                              Settings(cfg_strength, num_steps, sampler, seed, mirror, steer))

"""Stereo audio codec: 48 kHz stereo <-> one continuous latent frame per video frame (MISSION part 4).

    codec = Codec(PRESETS["tiny"])
    z = codec.encode(x)          # (B, 2, N) -> (B, C, T), T = ceil(N / hop), hop = sr / fps
    y = codec.decode(z)          # (B, C, T) -> (B, 2, T * hop)
    with codec.streaming():      # causal variant: one (or more) frames at a time, state kept inside
        y_t = codec.decode(codec.encode(x_t))

Latent channels = [spectral (learned, VAE) | log energy, pan, coherence per band | tonal (v2)]. The
per-band cues are measured, never learned (`codec_dsp`): the decoder's spectrum is rescaled to each
band's energy and rendered with its pan and coherence, so the stereo image (and the band energies that
weight it) survive by construction. The learned channels carry the shape of L^2 + R^2 inside the bands
and the frame (8 subframes of 5 ms at 25 fps); the decoder sees them and the band energies. The tonal
channels of v2 (`codec_tonal`: f0 per subframe, harmonic fraction per band, one partial per band) are
measured too, and turn the envelope's energy into harmonics and partials instead of noise.
All channels are normalised by `latent_mean` / `latent_std`, buffers of the codec and its checkpoint.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foley import checkpoint
from foley.checkpoint import shipped
from foley.errors import FoleyError
from foley.sequence import SequenceConfig
from foley.models.codec_dsp import Analysis, Synthesis, band_matrix
from foley.models.codec_loss import band_energy_loss, kl, log_power_loss, mel_weights, stereo_mrstft
from foley.models.codec_tonal import F0_MAX, F0_MIN, HARM_EDGES_HZ, PART_BANDS, TonalAnalysis, TonalSynthesis
from foley.models.streaming import StreamingModule

LOG_POWER_SHIFT, LOG_POWER_SCALE = 2.0, 6.0  # brings log(L^2 + R^2) of typical audio near N(0, 1)
F0_REF = 200.0  # the f0 channels hold log2(f0 / F0_REF)
MIN_LATENT_STD = 0.05  # a channel that hardly varies in the calibration audio is not blown up into huge latents
# Generated frames are held at or below this RMS (`Codec.cap_loudness`): 6 dB above the loudest frame of the world's
# mixes (0.25 over 120 train clips of both mixes), far below what guided sampling can ask for (frames at RMS 10).
LOUDEST_RMS = 0.5


class CodecError(FoleyError):
    """A codec checkpoint, config or input is unusable."""


@dataclass(frozen=True)
class CodecConfig:
    """Sizes of a codec; `PRESETS` names the common ones. Saved inside every checkpoint."""

    sr: int = 48000
    fps: int = 25
    subframes: int = 8  # synthesis/analysis subframes per latent frame (time resolution hop / subframes)
    spectral_channels: int = 32  # learned latent channels (VAE)
    stereo_bands: int = 16  # energy + pan + coherence channels, one each per band
    width: int = 256
    enc_blocks: int = 2
    dec_blocks: int = 3
    kernel: int = 3  # temporal kernel (latent frames) of every block
    causal: bool = True
    tonal: bool = False  # v2: measured pitch / harmonicity / partial channels and sinusoidal synthesis
    pitch_window: int = 2048  # samples of the tonal analysis window
    harmonic_gain: bool = False  # v2: a learned gain per harmonic band on the measured fraction (decoder side)

    def __post_init__(self) -> None:
        if self.sr % self.fps or (self.sr // self.fps) % self.subframes:
            raise CodecError(f"sr / fps / subframes must divide exactly, got {self.sr} / {self.fps} / {self.subframes}")
        if min(self.spectral_channels, self.stereo_bands, self.width, self.kernel) < 1:
            raise CodecError("channel counts, width and kernel must be positive")
        if self.harmonic_gain and not self.tonal:
            raise CodecError("harmonic_gain scales the tonal path's harmonic fractions: it needs tonal=True")
        if self.stereo_bands > self.n_bins // 2:
            raise CodecError(f"{self.stereo_bands} stereo bands are too many for {self.n_bins} bins")

    @property
    def seq(self) -> SequenceConfig:
        return SequenceConfig(self.sr, self.fps)

    @property
    def hop(self) -> int:
        return self.seq.hop  # samples per latent frame: 1920 at 25 fps, 1600 at 30 fps

    @property
    def sub_hop(self) -> int:
        return self.hop // self.subframes

    @property
    def n_bins(self) -> int:
        return self.sub_hop + 1

    @property
    def tonal_channels(self) -> int:
        return self.subframes + len(HARM_EDGES_HZ) - 1 + 2 * PART_BANDS if self.tonal else 0

    @property
    def channels(self) -> int:
        return self.spectral_channels + 3 * self.stereo_bands + self.tonal_channels

    @property
    def floats_per_second(self) -> int:
        return self.channels * self.fps

    @classmethod
    def from_dict(cls, d: dict) -> "CodecConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CodecError(f"codec config has unknown fields {unknown}: checkpoint from a newer foley?")
        return cls(**d)


PRESETS: dict[str, CodecConfig] = {
    "tiny": CodecConfig(tonal=True, harmonic_gain=True),  # v2, 120 channels
    "tiny_offline": CodecConfig(tonal=True, causal=False),  # StereoFoley's offline codec: looks ahead (its mixes
    # lost mel fidelity with the harmonic-gain head: docs/benchmarks.md)
    "small": CodecConfig(tonal=True, harmonic_gain=True, width=512, enc_blocks=4, dec_blocks=6),
    "soundreactor": CodecConfig(fps=30, spectral_channels=24, width=1024, enc_blocks=6, dec_blocks=8, kernel=5,
                                tonal=True, harmonic_gain=True),
    "v1_tiny": CodecConfig(),  # v1: noise-excited synthesis, 80 channels
    "v1_tiny_offline": CodecConfig(causal=False),
}


class TemporalConv(StreamingModule):
    """Conv over latent frames (B, T, C) -> (B, T, C'); causal ones keep their last kernel-1 inputs when streaming."""

    def __init__(self, c_in: int, c_out: int, kernel: int, causal: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel)
        self.kernel, self.causal = kernel, causal

    def forward(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2)  # (B, C, T)
        k = self.kernel - 1
        if not self.causal:
            return self.conv(F.pad(x, (k // 2, k - k // 2))).transpose(1, 2)
        past = self._state("past", lambda: x.new_zeros(*x.shape[:2], k))
        xp = torch.cat([past, x], -1)  # (B, C, k + T)
        if self.is_streaming:
            self._streaming_state["past"] = xp[..., xp.shape[-1] - k:]
        if xp.shape[-1] == self.kernel:  # one output frame (a streamed step): as a matrix-vector product, the same
            return F.linear(xp.flatten(1), self.conv.weight.flatten(1), self.conv.bias)[:, None]  # sums, 3% faster
        return self.conv(xp).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm residual block: x + Linear(GELU(TemporalConv(LayerNorm(x))))."""

    def __init__(self, width: int, kernel: int, causal: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv = TemporalConv(width, width, kernel, causal)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(F.gelu(self.conv(self.norm(x))))


class Net(nn.Module):
    """(B, T, c_in) -> (B, T, c_out): Linear, residual blocks, LayerNorm, Linear."""

    def __init__(self, c_in: int, c_out: int, cfg: CodecConfig, n_blocks: int) -> None:
        super().__init__()
        self.inp = nn.Linear(c_in, cfg.width)
        self.blocks = nn.ModuleList([Block(cfg.width, cfg.kernel, cfg.causal) for _ in range(n_blocks)])
        self.norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.inp(x)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the codec's training losses (MR-STFT on L, R, mid, side; log power; band energy; KL)."""

    stft: float = 1.0
    stft_items: int = 4  # batch items that get the MR-STFT loss: it costs 10x the network
    power: float = 1.0
    power_tilt: float = 0.0  # 0: every bin of the log-power loss weighs the same; 1: mel-like, lows weigh more
    band: float = 1.0
    kl: float = 1e-3


@dataclass
class CodecOutput:
    """What a training step needs from one forward pass."""

    audio: Tensor  # (B, 2, N) reconstruction from a posterior sample
    log_power: Tensor  # (B, T, sub, K) decoded log power on the synthesis grid
    mean: Tensor  # (B, T, Cs) posterior mean of the spectral channels
    logvar: Tensor  # (B, T, Cs)


class Codec(StreamingModule):
    """Frame VAE with structural parametric stereo (see module docstring)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        feat = cfg.subframes * cfg.n_bins
        self.analysis = Analysis(cfg.hop, cfg.subframes, cfg.stereo_bands, cfg.sr)
        self.synthesis = Synthesis(cfg.hop, cfg.subframes, cfg.stereo_bands, cfg.sr)
        self.encoder = Net(feat, 2 * cfg.spectral_channels, cfg, cfg.enc_blocks)
        self.decoder = Net(cfg.spectral_channels + cfg.stereo_bands, feat, cfg, cfg.dec_blocks)  # + band energies
        if cfg.tonal:
            self.tonal_analysis = TonalAnalysis(cfg.hop, cfg.subframes, cfg.sr, cfg.pitch_window, cfg.causal)
            self.tonal_synthesis = TonalSynthesis(cfg.hop, cfg.subframes, cfg.sr)
        if cfg.harmonic_gain:  # frame by frame, so causal; starts at a gain of 1 (zero output)
            self.harmonic_gain = nn.Sequential(nn.Linear(cfg.channels, 128), nn.GELU(),
                                               nn.Linear(128, len(HARM_EDGES_HZ) - 1))
            nn.init.zeros_(self.harmonic_gain[2].weight)
            nn.init.zeros_(self.harmonic_gain[2].bias)
        self.legacy_hashes: tuple[str, ...] = ()  # earlier codecs with these latents (`latent_hashes`)
        self.register_buffer("latent_mean", torch.zeros(cfg.channels))
        self.register_buffer("latent_std", torch.ones(cfg.channels))
        nn.init.normal_(self.decoder.out.weight, std=0.02)  # start near a quiet, flat spectrum
        nn.init.zeros_(self.decoder.out.bias)

    # ------------------------------------------------------------------ raw (unnormalised) path
    def _pad(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != 2:
            raise CodecError(f"expected stereo audio (B, 2, N), got shape {tuple(x.shape)}")
        if self.is_streaming and not self.cfg.causal:
            raise CodecError("this codec is non-causal: streaming needs a causal config (causal=True)")
        rem = x.shape[-1] % self.cfg.hop
        if rem and self.is_streaming:
            raise CodecError(f"streaming input must be a whole number of {self.cfg.hop}-sample frames")
        return F.pad(x, (0, self.cfg.hop - rem)) if rem else x

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, 2, N) -> mean, logvar (B, T, Cs) of the spectral channels; measured cues (B, T, C - Cs): energy, pan,
        coherence per band, then (v2) log2 f0 per subframe, harmonic fractions, partial positions and shares."""
        return self.measure(x)[:3]

    def measure(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """`posterior`, and the held f0 (B, T, sub) in Hz exactly as the tonal analysis made it (None without the
        tonal path): what a chunked run hands on to the next chunk."""
        x = self._pad(x)
        log_power, energy, pan, coherence = self.analysis(x)  # (B, T, sub, K), (B, T, nb) x 3
        feat = (log_power.flatten(2) - LOG_POWER_SHIFT) / LOG_POWER_SCALE  # (B, T, sub*K)
        mean, logvar = self.encoder(feat).chunk(2, -1)  # (B, T, Cs) each
        cues = [energy, pan, 2 * coherence - 1]
        f0 = None
        if self.cfg.tonal:
            f0, harm, pos, share = self.tonal_analysis(x)  # (B, T, sub), (B, T, 8), (B, T, P) x 2
            cues += [torch.log2(f0 / F0_REF), 2 * harm - 1, 2 * pos - 1, 2 * share - 1]
        return mean, logvar.clamp(-20.0, 10.0), torch.cat(cues, -1), f0

    def render(self, spectral: Tensor, cues: Tensor) -> tuple[Tensor, Tensor]:
        """Raw latents (B, T, Cs), (B, T, 3 nb) -> (audio (B, 2, T*hop), log power (B, T, sub, K))."""
        log_power = self.envelope(spectral, cues)
        return self.synthesize(log_power, cues, self.harmonic_gains(spectral, cues)), log_power

    def harmonic_gains(self, spectral: Tensor, cues: Tensor) -> Tensor | None:
        """Raw latents -> the learned gains (B, T, 8) on the measured harmonic fractions, or None without that head.

        The measured fraction (each band's periodicity at one lag over a 43 ms window) is low for voices, whose
        pitch and loudness move inside the window; a gain that fixes speech everywhere costs the world's mixes.
        The head reads the frame's whole latent and learns where; the latents themselves do not change.
        """
        if not self.cfg.harmonic_gain:
            return None
        z = (torch.cat([spectral, cues], -1) - self.latent_mean) / self.latent_std
        return torch.exp(self.harmonic_gain(z).float().clamp(-2.0, 2.0))

    def envelope(self, spectral: Tensor, cues: Tensor) -> Tensor:
        """Raw latents -> the decoder's log power (B, T, sub, K), each frame's band energies set to its cue."""
        b, t, _ = spectral.shape
        energy = cues[..., : self.cfg.stereo_bands].float()  # (B, T, nb)
        inp = torch.cat([spectral, (energy.to(spectral.dtype) - LOG_POWER_SHIFT) / LOG_POWER_SCALE], -1)
        log_power = self.decoder(inp).float().view(b, t, self.cfg.subframes, self.cfg.n_bins)
        return self.synthesis.set_band_energy(log_power * LOG_POWER_SCALE + LOG_POWER_SHIFT, energy)

    def synthesize(self, log_power: Tensor, cues: Tensor, harmonic_gains: Tensor | None = None) -> Tensor:
        """Log power (B, T, sub, K) and the frames' raw cues -> stereo (B, 2, T*hop) (frame by frame: no look-ahead);
        `harmonic_gains` (B, T, 8) scale the harmonic fractions (`harmonic_gains`)."""
        nb = self.cfg.stereo_bands
        _, pan, coherence = cues[..., : 3 * nb].float().chunk(3, -1)  # (B, T, nb) each
        tonal = noise = None
        if self.cfg.tonal:
            f0, harm, pos, share = self.split_tonal(cues[..., 3 * nb:].float())
            if harmonic_gains is not None:
                harm = (harm * harmonic_gains).clamp(0, 1)
            tonal, noise = self.tonal_synthesis(log_power, f0, harm, pos, share)
        return self.synthesis(log_power, pan, (coherence + 1) / 2, tonal, noise)

    def split_tonal(self, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Raw tonal channels (B, T, Ct) -> f0 Hz (B, T, sub), harmonic fraction, partial position, share in [0, 1]."""
        sub, nh = self.cfg.subframes, len(HARM_EDGES_HZ) - 1
        f0 = (F0_REF * torch.exp2(c[..., :sub])).clamp(F0_MIN, F0_MAX)
        unit = ((c[..., sub:] + 1) / 2).clamp(0, 1)
        harm, pos, share = unit[..., :nh], unit[..., nh:nh + PART_BANDS], unit[..., nh + PART_BANDS:]
        return f0, harm, pos, share

    def forward(self, x: Tensor, sample: bool = True) -> CodecOutput:
        """Training pass: encode, sample the posterior, decode."""
        mean, logvar, cues = self.posterior(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        audio, log_power = self.render(z, cues)
        return CodecOutput(audio, log_power, mean, logvar)

    def loss(self, x: Tensor, out: CodecOutput | None = None, w: LossWeights = LossWeights()) -> dict[str, Tensor]:
        """Training losses of audio x (B, 2, N) and its forward pass `out` (pass the DDP wrapper's); 'total' sums them."""
        out = self(x) if out is None else out
        n, target = w.stft_items, self.synthesis.target(x)
        bands = band_matrix(self.cfg.n_bins, 32, self.cfg.sr).to(x.device)  # finer than the stereo bands
        weight = mel_weights(self.cfg.n_bins, self.cfg.sr, w.power_tilt).to(x.device) if w.power_tilt else None
        parts = {"stft": stereo_mrstft(out.audio[:n], x[:n]), "power": log_power_loss(out.log_power, target, weight=weight),
                 "band": band_energy_loss(out.log_power, target, bands), "kl": kl(out.mean.float(), out.logvar.float())}
        parts["total"] = w.stft * parts["stft"] + w.power * parts["power"] + w.band * parts["band"] + w.kl * parts["kl"]
        return parts

    # ------------------------------------------------------------------ public, normalised latents
    def encode(self, x: Tensor) -> Tensor:
        """(B, 2, N) stereo at cfg.sr -> normalised latents (B, C, T), T = ceil(N / hop); posterior mean."""
        mean, _, cues = self.posterior(x)
        raw = torch.cat([mean, cues], -1)  # (B, T, C)
        return ((raw - self.latent_mean) / self.latent_std).transpose(1, 2)

    def decode(self, z: Tensor) -> Tensor:
        """Normalised latents (B, C, T) -> stereo (B, 2, T * hop)."""
        if self.is_streaming and not self.cfg.causal:
            raise CodecError("this codec is non-causal: streaming needs a causal config (causal=True)")
        if z.dim() != 3 or z.shape[1] != self.cfg.channels:
            raise CodecError(f"expected latents (B, {self.cfg.channels}, T), got shape {tuple(z.shape)}")
        raw = z.transpose(1, 2) * self.latent_std + self.latent_mean  # (B, T, C)
        cs = self.cfg.spectral_channels
        return self.render(raw[..., :cs], raw[..., cs:])[0]

    def cap_loudness(self, z: Tensor, max_rms: float = LOUDEST_RMS) -> Tensor:
        """Normalised latents (B, C, T), each frame's band energies lowered by one amount (the spectrum's shape kept)
        where the frame would hold more energy than stereo at `max_rms` RMS; the other frames pass bit for bit.

        For generated latents (DiT, reactor): classifier-free guidance extrapolates the energy channels too, and
        asks for frames no audio within full scale has (RMS 10). Recorded audio can be louder than the cap (a
        full-scale square wave has RMS 1), so a roundtrip does not go through here.
        """
        cs, nb = self.cfg.spectral_channels, self.cfg.stereo_bands
        mean, std = self.latent_mean[cs:cs + nb, None], self.latent_std[cs:cs + nb, None]
        energy = z[:, cs:cs + nb].float() * std + mean  # (B, nb, T) log band energy, L^2 + R^2 on the analysis grid
        # a frame of stereo at RMS r holds 2 channels x sub subframes x sub_hop^2 r^2 (sine windows of 2 sub_hop)
        ceiling = math.log(2 * self.cfg.subframes * self.cfg.sub_hop ** 2 * max_rms ** 2)
        excess = (torch.logsumexp(energy, 1, keepdim=True) - ceiling).clamp_min(0)  # (B, 1, T)
        over = excess > 0
        if not bool(over.any()):
            return z
        lowered = ((energy - excess - mean) / std).to(z.dtype)
        return torch.cat([z[:, :cs], torch.where(over, lowered, z[:, cs:cs + nb]), z[:, cs + nb:]], 1)

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set the latent normalisation from audio (B, 2, N): every channel to zero mean, unit variance."""
        self.latent_mean.zero_()
        self.latent_std.fill_(1.0)
        z = self.encode(x).transpose(1, 2).flatten(0, 1)  # (B*T, C)
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(MIN_LATENT_STD))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------- checkpoints

DEFAULT_CHECKPOINT = shipped("codec_tiny.pt")  # v2, causal (streams): the default
OFFLINE_CHECKPOINT = shipped("codec_tiny_offline.pt")  # v2, non-causal, for whole clips
V1_CHECKPOINTS = (shipped("v1/codec_tiny.pt"), shipped("v1/codec_tiny_offline.pt"))  # noise-excited, for comparison
FORMAT = "foley.codec/1"
HINT = "train one with `foley train codec` or pass --checkpoint"


def save_codec(path: str | Path, codec: Codec, **extra: object) -> str:
    """Write the codec (config, weights, hash, its legacy latent hashes) atomically; returns the weights' hash."""
    if codec.legacy_hashes:
        extra = {"legacy_hashes": list(codec.legacy_hashes), **extra}
    return checkpoint.save(path, FORMAT, asdict(codec.cfg), codec.state_dict(), **extra)


def load_codec(path: str | Path | None = None, map_location: str | torch.device = "cpu",
               expect: CodecConfig | None = None) -> Codec:
    """A codec from a checkpoint written by `save_codec` or the trainer (EMA weights preferred)."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    try:
        ckpt = checkpoint.load(path, (FORMAT,), "codec", HINT, map_location)
    except checkpoint.CheckpointError as e:
        raise CodecError(str(e)) from None
    cfg = CodecConfig.from_dict(ckpt["config"])
    if expect is not None and replace(cfg) != expect:
        raise CodecError(f"{path}: checkpoint config {cfg} differs from the requested {expect}")
    codec = Codec(cfg)
    try:
        codec.load_state_dict(ckpt.get("ema") or ckpt["model"])
    except RuntimeError as e:
        raise CodecError(f"{path}: weights do not match its config ({str(e).splitlines()[0]})") from None
    codec.legacy_hashes = tuple(str(h) for h in ckpt.get("legacy_hashes", ()))
    return codec.eval()


def frames_for(n_samples: int, cfg: CodecConfig) -> int:
    """Latent frames covering n_samples."""
    return cfg.seq.frames_for(n_samples)


# What does not shape the latents: a codec that differs from another only here (a retrained decoder, a learned
# harmonic gain) encodes every sound to the same latents, so the generators trained on them stay valid.
DECODER_SIDE = ("decoder.", "harmonic_gain.")
LATENT_FIELDS = ("sr", "fps", "subframes", "spectral_channels", "stereo_bands", "causal", "tonal", "pitch_window")


def codec_hash(codec: Codec) -> str:
    """The hash of what fixes a codec's latents: its analysis settings, encoder weights and latent normalisation,
    not its decoder side. A generator's checkpoint records it for the codec it was trained with, so a decoder
    retrained on the same latents decodes the generators' latents without retraining them."""
    latent_side = {k: v for k, v in codec.state_dict().items() if not k.startswith(DECODER_SIDE)}
    settings = ";".join(f"{f}={getattr(codec.cfg, f)}" for f in LATENT_FIELDS)
    return hashlib.sha256((checkpoint.state_hash(latent_side) + settings).encode()).hexdigest()


def with_harmonic_gain(codec: Codec) -> Codec:
    """`codec` with a harmonic-gain head (a fresh one, gain 1, unless it has one), in the same mode: the same
    latents, and the generators made for `codec` listed as compatible (its weights' hash among the new one's
    legacy hashes)."""
    if codec.cfg.harmonic_gain:
        return codec
    out = Codec(replace(codec.cfg, harmonic_gain=True)).train(codec.training)
    missing, unexpected = out.load_state_dict(codec.state_dict(), strict=False)
    if unexpected or not all(k.startswith("harmonic_gain.") for k in missing):
        raise CodecError(f"codec weights do not carry over to a head (missing {missing}, unexpected {unexpected})")
    out.legacy_hashes = (*codec.legacy_hashes, checkpoint.state_hash(codec.state_dict()))
    return out


def latent_hashes(codec: Codec) -> tuple[str, ...]:
    """Every hash a generator made for this codec's latents may record: `codec_hash`; the hash of all its weights
    (what generators recorded before `codec_hash` left the decoder side out); and the hashes of all the weights of
    earlier releases with the same latents (the checkpoint lists them as `legacy_hashes`)."""
    return (codec_hash(codec), checkpoint.state_hash(codec.state_dict()), *codec.legacy_hashes)

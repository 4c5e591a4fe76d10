"""External audio embedders from local weight files, for FD on the backbones the papers use.

    name, fn = load_embedder("panns=/data/Cnn14_mAP=0.431.pth", mono_type="mean")
    fn(mono_48k)  # (D,) features of one clip

Supported:
- `panns`: PANNs Cnn14 (Kong et al. 2020; the official `{"model": state_dict}` files, 32 kHz, features = the
  2048-d `fc1` output);
- `vggish`: VGGish (Hershey et al. 2017; the torchvggish port's state dict, 16 kHz, features = the mean of its
  128-d per-0.96 s embeddings, before PCA);
- `passt`: PaSST (Koutini et al. 2021; hear21passt's `passt_s_swa_p16_128_ap476` release file, 32 kHz, features
  = the 768-d mean of the cls and dist token outputs, averaged over 10 s windows for longer clips);
  see foley.models.ext_passt;
- `openl3`: OpenL3 (Cramer et al. 2019; torchopenl3's `torchopenl3_mel128_{env,music}_512.pth.tar`, 48 kHz, 1 s
  windows every 0.1 s, features = the mean 512-d window embedding); see foley.models.ext_openl3;
- `laion_clap`: LAION-CLAP's audio branch (Wu et al. 2023; `630k-audioset-best.pt`-style files, HTSAT + audio
  projection, 48 kHz, features = the 512-d unit-norm projected embedding); see foley.models.ext_laion.
Preprocessing follows av-benchmark: downmix by `mono_type` (done by the caller), resample to the model's rate.
Layer widths are read from the weights, so a small randomly initialised instance loads exactly as the real one
does (tests use those). Nothing is downloaded: a user points at weights they have.
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foley.errors import FoleyError
from foley.resample import resample

SR = 48000


class EmbedderError(FoleyError):
    """An external embedder's name or weights are unusable."""


def _mel_fb(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """(n_fft//2+1, n_mels) HTK-spaced triangular filters (VGGish's; Cnn14 ships its own in the weights)."""
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # noqa: E731
    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    bins = mel(np.fft.rfftfreq(n_fft, 1 / sr))[:, None]
    lo, mid, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    return torch.from_numpy(np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))).float()


# ---------------------------------------------------------------------- PANNs Cnn14

class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool)


class Cnn14(nn.Module):
    """PANNs Cnn14 (the official layer names), 32 kHz, 64 mel bands 50 Hz-14 kHz, window 1024, hop 320."""

    sr, n_fft, hop, n_mels = 32000, 1024, 320, 64

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048), classes: int = 527) -> None:
        super().__init__()
        self.register_buffer("melW", _slaney_fb(self.sr, self.n_fft, self.n_mels, 50.0, 14000.0))
        self.bn0 = nn.BatchNorm2d(self.n_mels)
        ch = (1,) + tuple(widths)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(ch[i], ch[i + 1]))
        self.fc1 = nn.Linear(widths[-1], widths[-1])
        self.fc_audioset = nn.Linear(widths[-1], classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) at 32 kHz -> (B, width) the `fc1` embedding."""
        spec = torch.stft(wave, self.n_fft, self.hop, window=torch.hann_window(self.n_fft, device=wave.device),
                          center=True, pad_mode="reflect", return_complex=True).abs().pow(2)  # (B, F, T)
        x = 10 * torch.log10(torch.clamp(spec.transpose(1, 2) @ self.melW, min=1e-10))  # (B, T, M)
        x = self.bn0(x.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2).unsqueeze(1)  # (B, 1, T, M)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < 5 else (1, 1))
        x = x.mean(3)  # (B, C, T')
        x = x.amax(2) + x.mean(2)
        return F.relu(self.fc1(x))


def _slaney_fb(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """(n_fft//2+1, n_mels) Slaney mel filters with area normalisation (librosa's default, as torchlibrosa's melW)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, float)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), f / (200 / 3))

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * 200 / 3)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)[:, None]
    lo, mid, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    fb = np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return torch.from_numpy(fb * (2.0 / (hi - lo))).float()


def _cnn14_from(state: dict) -> Cnn14:
    widths = tuple(state[f"conv_block{i + 1}.conv1.weight"].shape[0] for i in range(6))
    model = Cnn14(widths, state["fc_audioset.weight"].shape[0])
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(("spectrogram_extractor",
                                                                                "logmel_extractor"))}
                          | ({"melW": state["logmel_extractor.melW"]} if "logmel_extractor.melW" in state else {}),
                          strict=False)
    missing = set(model.state_dict()) - set(state) - {"melW"}
    if missing:
        raise EmbedderError(f"not a PANNs Cnn14 state dict: missing {sorted(missing)[:3]}...")
    return model


# ---------------------------------------------------------------------- VGGish

class VGGish(nn.Module):
    """VGGish (torchvggish's layer names): 16 kHz, 0.96 s examples of 96 x 64 log-mel, 128-d embeddings."""

    sr, win, hop, n_mels, frames = 16000, 400, 160, 64, 96

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 256, 512, 512), hidden: int = 4096, dim: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=True)]
            if i in (0, 1, 3, 5):
                layers.append(nn.MaxPool2d(2, 2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(cin * 4 * 6, hidden), nn.ReLU(True), nn.Linear(hidden, hidden),
                                        nn.ReLU(True), nn.Linear(hidden, dim), nn.ReLU(True))
        self.register_buffer("fb", _mel_fb(self.sr, 512, self.n_mels, 125.0, 7500.0), persistent=False)

    def examples(self, wave: torch.Tensor) -> torch.Tensor:
        """(N,) at 16 kHz -> (E, 1, 96, 64) log-mel examples (log(mel + 0.01), as VGGish's input)."""
        spec = torch.stft(wave, 512, self.hop, self.win, window=torch.hann_window(self.win), center=False,
                          return_complex=True).abs()  # (F, T)
        logmel = torch.log(spec.T @ self.fb + 0.01)  # (T, M)
        if logmel.shape[0] < self.frames:
            logmel = F.pad(logmel, (0, 0, 0, self.frames - logmel.shape[0]))
        e = logmel.shape[0] // self.frames
        return logmel[: e * self.frames].reshape(e, 1, self.frames, self.n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(E, 1, 96, 64) examples -> (E, dim) embeddings."""
        h = self.features(x).permute(0, 2, 3, 1).flatten(1)  # torchvggish flattens channels last
        return self.embeddings(h)


def _vggish_from(state: dict) -> VGGish:
    convs = sorted((int(k.split(".")[1]), v.shape[0]) for k, v in state.items()
                   if k.startswith("features.") and k.endswith(".weight"))
    if not convs or "embeddings.4.weight" not in state:
        raise EmbedderError("not a VGGish state dict (expected features.* and embeddings.0/2/4.*)")
    model = VGGish(tuple(w for _, w in convs), state["embeddings.0.weight"].shape[0], state["embeddings.4.weight"].shape[0])
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("pproc")})
    return model


# ---------------------------------------------------------------------- loading

def load_exact(model: nn.Module, state: dict, what: str) -> nn.Module:
    """Load `state` into `model` only if every key matches both ways with equal shapes, else a clear EmbedderError."""
    own = model.state_dict()
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or shapes:
        parts = [f"{label} {items[:3]}{'...' if len(items) > 3 else ''}" for label, items in
                 (("missing", missing), ("unexpected", extra), ("wrong shapes", shapes)) if items]
        raise EmbedderError(f"not a {what} state dict: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)  # keys checked above; a missing num_batches_tracked stays 0
    return model


def _ext(module: str) -> Callable[[dict], nn.Module]:
    """The `from_state` builder of foley.models.<module>, imported on first use (those modules import this one)."""
    def build(state: dict) -> nn.Module:
        return importlib.import_module(f"foley.models.{module}").from_state(state)
    return build


BUILDERS: dict[str, Callable[[dict], nn.Module]] = {
    "panns": _cnn14_from, "vggish": _vggish_from,
    "passt": _ext("ext_passt"), "openl3": _ext("ext_openl3"), "laion_clap": _ext("ext_laion")}
NOT_YET: tuple[str, ...] = ()


def load_embedder(spec: str, mono_type: str = "mean", trust: bool = False) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """'name=weights' -> (name, function (N,) mono 48 kHz -> (D,) features).

    Files are read with `weights_only=True` (no pickled code runs); release files that also pickle other
    objects (numpy scalars, optimiser state: some PANNs and LAION-CLAP releases) load only with `trust=True`
    (`--trust-weights`), which the user gives for files they trust.
    """
    name, _, path = spec.partition("=")
    name = name.strip().lower()
    if name in NOT_YET:
        raise EmbedderError(f"embedder {name!r} is not supported yet; supported: {sorted(BUILDERS)}")
    if name not in BUILDERS or not path:
        raise EmbedderError(f"--embedder wants NAME=WEIGHTS with NAME one of {sorted(BUILDERS)}, got {spec!r}")
    if not Path(path).is_file():
        raise EmbedderError(f"{name} weights {path!r} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError:
        raise EmbedderError(f"{path}: it holds more than tensors (pickled objects); if you trust the file, pass "
                            "--trust-weights (or re-save its state dict with torch.save)") from None
    except Exception as e:  # torch raises many kinds on a damaged file
        raise EmbedderError(f"{path}: not a readable weight file ({type(e).__name__})") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise EmbedderError(f"{path}: expected a state dict")
    try:
        model = BUILDERS[name](state).eval()
    except (KeyError, RuntimeError) as e:
        raise EmbedderError(f"{path}: weights do not fit {name} ({type(e).__name__}: {str(e)[:120]})") from None
    return f"{name}_{mono_type}" if mono_type != "mean" else name, _features(model)


def _features(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def fn(mono: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(resample(np.asarray(mono, np.float32), SR, model.sr))
        with torch.no_grad():
            if isinstance(model, VGGish):
                return model(model.examples(x)).mean(0).numpy()
            return model(x[None])[0].numpy()
    return fn

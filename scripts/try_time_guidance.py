"""Experiment (not in the package): time guidance. Like mirror guidance, a fourth row per step predicts with the
picture delayed by k frames, and v += s (v_c - v_delayed) sharpens what depends on the picture's timing.

    python scripts/try_time_guidance.py N S K [CKPT [SEED]]   # N test clips of bench_eval.py, strength S, delay K
                                                               # frames; SEED 0 is the bench's

Generates into runs/tg/sS-kK[-ckpt]/ (kept: re-runs resume) and prints Table 2's row and the dominant-object BAS
(docs/benchmarks.md, DiT section, eighth session). Run from the repository root.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, "bench")
import bench_dit as B  # noqa: E402
from foley.diffusion import SAMPLERS  # noqa: E402
from foley.generate import Generator, Settings  # noqa: E402


class TimeGuided(Generator):
    """The shipped sampling (CFG, mirror guidance) plus time guidance of strength `strength`, delay `k` frames."""

    strength, k = 0.0, 8

    @torch.no_grad()
    def latents(self, frames, cond, st, window):
        from foley.models.video import resize_frames

        n = frames.shape[0]
        fr = resize_frames(frames[None].to(self.device), self.dit.cfg.read_size)  # read at the detector's size
        cond_drop = torch.tensor([cond is None], device=self.device)
        c = cond if cond is not None else torch.zeros(1, self.dit.cfg.cond_dim, device=self.device)
        k = min(self.k, n - 1)
        shifted = torch.cat([fr[:, :1].expand(-1, k, -1, -1, -1), fr[:, : n - k]], 1)
        feats = [self.dit.video(fr), self.dit.video(fr), self.dit.video(fr.flip(-1)), self.dit.video(shifted)]
        drop = torch.tensor([False, True, False, False])
        v = torch.cat(feats)
        w, m, s = st.cfg_strength, st.mirror, self.strength

        def fn(x, t):
            b = 4
            out = self.dit(x.expand(b, -1, -1), t.expand(b), None, c.expand(b, -1), drop, cond_drop.expand(b), video=v)
            vc, vu, vf, vs = out.chunk(4)
            return vu + w * (vc - vu) + m * (vc - vf) + s * (vc - vs)

        g = torch.Generator(device="cpu").manual_seed(st.seed * 1_000_003 + window)
        noise = torch.randn((1, self.dit.channels, n), generator=g).to(self.device)
        return SAMPLERS[st.sampler](fn, noise, st.steps)


def main():
    n, s, k = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    clips = Path("runs/bench_eval/clips")
    keys = sorted(f.stem for f in clips.glob("*.json"))[:n]
    model = sys.argv[4] if len(sys.argv) > 4 else "obj"
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    gen = TimeGuided(model)
    gen.strength, gen.k = s, k
    out = Path(f"runs/tg/s{s:g}-k{k}" + ("" if model == "obj" else "-" + Path(model).stem)
               + (f"-seed{seed}" if seed else ""))
    B.generate_row(gen, clips, keys, out, Settings(6.0, 25, "ddim", seed, 3.0, 0.0))  # unsteered, as its rows were
    model = B.load_clap()
    print(B.row(out.name, B.score(out, clips, keys, model)), flush=True)
    for line in B.dominant_table({out.name: out}, clips.parent / "world", keys)[:3]:
        print(line, flush=True)


if __name__ == "__main__":
    main()

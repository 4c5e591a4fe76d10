"""The joint audio-text embedding: tokenizer, front end, training on the shared loop, and the shipped model."""
import numpy as np
import pytest
import torch

from foley.models.clap import Clap, ClapConfig, LogMel, Tokenizer, build_vocab, load_clap, mel_filters
from foley.train.clap import ClapTask, ClapTaskConfig, class_labels, make_pool, measure
from foley.train.loop import LoopConfig, train


def test_tokenizer_maps_unknown_words_and_pads():
    vocab = build_vocab(["a red ball bouncing", "a blue bird"])
    tok = Tokenizer(vocab, max_words=4)
    ids = tok(["A red BIRD!", "a purple ball bouncing on the left"])
    assert ids.shape == (2, 4)
    assert ids[0, 3] == 0 and ids[0, 0] == vocab.index("a") and ids[0, 2] == vocab.index("bird")
    assert ids[1, 1] == 1  # "purple" is unknown
    assert tok.counts(["red red ball"])[0, vocab.index("red")] == 2


def test_log_mel_puts_a_tone_in_its_band():
    cfg = ClapConfig()
    fb = mel_filters(cfg)
    t = np.arange(48000) / 48000
    mel = LogMel(cfg)(torch.from_numpy(np.sin(2 * np.pi * 1000 * t)).float()[None])[0]  # (M, T)
    freqs = np.fft.rfftfreq(cfg.n_fft, 1 / 48000)
    expect = int(torch.argmax(fb[:, np.argmin(np.abs(freqs - 1000))]))
    assert int(mel[:, 10:-10].mean(1).argmax()) == expect
    assert mel.shape == (cfg.n_mels, 48000 // cfg.hop + 1)


def test_training_lowers_the_loss_and_retrieval_beats_chance(tmp_path):
    pool = make_pool(16, "train", 3, 1.0, progress=False)
    val = make_pool(4, "val", 3, 1.0, progress=False)
    cfg = ClapConfig(channels=(8, 16, 16, 16), width=32, dim=32, text_width=32, text_layers=1, text_heads=2,
                     classes=class_labels(), vocab=build_vocab(pool.captions))
    tc = ClapTaskConfig(scenes=16, val_scenes=4, seconds=1.0, crop_frames=40, workers=1, seed=3)
    task = ClapTask(tc, cfg, pool=pool, val=val, folder=tmp_path)
    before = measure(Clap(cfg), pool)
    path = train(task, LoopConfig(steps=80, batch=24, lr=3e-3, warmup=10, val_every=80, save_every=80,
                                  threads=1), tmp_path)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    first, last = float(rows[0]["total"]), np.mean([float(r["total"]) for r in rows[-3:]])
    assert last < 0.7 * first
    after = measure(load_clap(path), pool)
    assert after["mix_r1"] > 4 * after["chance_mix_r1"] and after["mix_r1"] > before["mix_r1"] + 0.2
    assert after["stem_r1"] > 5 * after["chance_stem_r1"]
    assert after["zeroshot_acc"] > 4 * after["chance_zeroshot"] and after["head_acc"] > 2 / len(class_labels())


def test_the_shipped_embedding_names_the_class_of_unseen_test_stems():
    from foley.train.clap import class_prompts

    model = load_clap()
    pool = make_pool(8, "test", 11, 2.0, progress=False)
    stems = pool.select("stem")
    names = list(class_labels()[:-1])
    with torch.no_grad():
        protos = torch.nn.functional.normalize(
            torch.stack([model.embed_text(class_prompts(c)).mean(0) for c in names]), dim=-1)
        a = model.joint(model.audio(pool.mel[stems].float()))
    acc = np.mean([names[int(i)] == pool.label[s] for i, s in zip((a @ protos.T).argmax(1), stems)])
    assert acc >= 0.7  # chance 1/13
    caps = [pool.captions[i] for i in pool.select("mix")]
    mixes = model.joint(model.audio(pool.mel[pool.select("mix")].float()))
    with torch.no_grad():
        hits = (model.embed_text(caps) @ mixes.T).argmax(1) == torch.arange(len(caps))
    assert hits.float().mean() >= 0.5  # chance 1/8

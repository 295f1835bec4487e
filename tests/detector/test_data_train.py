"""build-data on a tiny plan (resumable, reproducible, split by speaker), train + resume, eval."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_studio.detector.data import DataConfig, build, read_manifest
from deepfake_studio.detector.generators import Request
from deepfake_studio.detector.train import TrainConfig, train
from deepfake_studio.errors import StudioError
from deepfake_studio.evaluation.speakers import SPLIT_FILE


def test_build_writes_labelled_clips_split_by_speaker(tiny_data: Path) -> None:
    rows = read_manifest(tiny_data)
    assert not [r for r in rows if "error" in r], [r["error"] for r in rows if "error" in r]
    clean = [r for r in rows if r["augment"] == "none"]
    assert {r["generator"] for r in clean} == {"bonafide", "espeak-ng", "griffin-lim"}
    assert len(rows) == 2 * len(clean)  # one augmented copy per clip
    splits = json.loads(SPLIT_FILE.read_text())["splits"]
    split_of = {s: name for name, c in splits.items() for ss in c.values() for s in ss}
    for row in rows:
        samples, rate = sf.read(str(tiny_data / str(row["path"])))
        assert rate == 16_000 and len(samples) == 64_000
        assert np.abs(samples).max() > 0.01
        if row["generator"] in ("bonafide", "griffin-lim"):  # voice or source is a real speaker
            speaker = str(row["voice"]) if row["generator"] == "bonafide" else None
            source = str(row["source"])
            assert speaker is None or split_of[speaker] == row["split"]
            assert source
    assert {r["split"] for r in clean if r["generator"] == "espeak-ng"} == {"train", "dev", "test"}


def test_second_build_skips_everything_and_other_settings_are_refused(
    tiny_data: Path, speech_dir: Path, tiny_config: DataConfig
) -> None:
    before = (tiny_data / "manifest.jsonl").read_text()
    assert build(tiny_data, tiny_config, speech_dir=speech_dir) == {}
    assert (tiny_data / "manifest.jsonl").read_text() == before
    with pytest.raises(StudioError, match="other settings"):
        build(tiny_data, replace(tiny_config, seed=4), speech_dir=speech_dir)


def test_an_interrupted_build_resumes_to_the_same_clips(
    tiny_data: Path, speech_dir: Path, tmp_path: Path, tiny_config: DataConfig
) -> None:
    """A build killed mid-write (manifest cut, last line torn) resumes to the same clips."""
    lines = (tiny_data / "manifest.jsonl").read_text().splitlines()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text((tiny_data / "config.json").read_text())
    kept = lines[:-4]  # the last two clips and their augmented copies are lost
    (copy / "manifest.jsonl").write_text("\n".join(kept) + '\n{"torn')
    for line in kept:
        rel = json.loads(line)["path"]
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes((tiny_data / rel).read_bytes())
    written = build(copy, tiny_config, speech_dir=speech_dir)
    assert sum(written.values()) == 2
    rows = read_manifest(copy)
    assert sorted(r["id"] for r in rows) == sorted(json.loads(x)["id"] for x in lines)
    last = json.loads(lines[-1])["path"]
    assert np.array_equal(sf.read(str(copy / last))[0], sf.read(str(tiny_data / last))[0])


def test_training_exports_a_calibrated_model_and_resumes(
    tiny_data: Path, tiny_run: Path, tmp_path: Path
) -> None:
    from deepfake_studio.detector.evaluate import score_rows
    from deepfake_studio.detector.infer import Detector, DetectorConfig

    card = json.loads((tiny_run / "detector.json").read_text())
    assert (tiny_run / "detector.onnx").stat().st_size < 2 * 2**20
    assert len(card["history"]) == 1
    # Scored through the exported ONNX and the card's calibration, the dev clips separate, and
    # the threshold is the rule's: 2 % of 4 real dev clips may be flagged, i.e. none, so it sits
    # on the highest real score (ONNX vs torch moves scores by < 0.01).
    dev = [r for r in read_manifest(tiny_data) if r["split"] == "dev"]
    p = score_rows(Detector(DetectorConfig(weights_dir=tiny_run)), tiny_data, dev)
    real = np.array([r["label"] == "bonafide" for r in dev])
    assert p[~real].mean() > p[real].mean() + 0.3, p  # measured: 0.79 vs 0.21
    assert card["dev"]["fpr_at_threshold"] == 0.0
    assert card["threshold"] == pytest.approx(max(0.5, p[real].max()), abs=0.01)
    # Resume: a copy of the 1-epoch run continues to 2 epochs instead of starting over.
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best.pt"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    lines: list[str] = []
    again = train(
        tiny_data, run, TrainConfig(epochs=2, batch_size=8), resume=True, log=lines.append
    )
    assert any(line.startswith("resumed after epoch 1") for line in lines)
    assert [h["epoch"] for h in again["history"]] == [0, 1]
    assert again["history"][0] == card["history"][0]


def test_evaluation_reports_eer_and_writes_a_det_plot(
    tiny_data: Path, tiny_run: Path, tmp_path: Path
) -> None:
    from deepfake_studio.detector.evaluate import evaluate_model, markdown_table, plot_det
    from deepfake_studio.detector.infer import Detector, DetectorConfig

    detector = Detector(DetectorConfig(weights_dir=tiny_run))
    result, scores = evaluate_model(detector, tiny_data, "test")
    for condition in ("clean", "augmented"):
        # espeak-ng and Griffin-Lim are easy: one epoch separates the test speakers' clips
        # (measured: EER 0 in both conditions; an untrained model gives about 0.5).
        assert result[condition]["eer"] <= 0.15, result
        assert set(result[condition]["per_generator_eer"]) == {"espeak-ng", "griffin-lim"}
    png = plot_det(scores, tmp_path / "det.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    report = {"seen": result, "logo": {}, "threshold": detector.threshold}
    assert "| espeak-ng |" in markdown_table(report)


def test_calibration_recovers_known_platt_parameters() -> None:
    from deepfake_studio.detector.train import fit_calibration

    rng = np.random.default_rng(0)
    logits = rng.uniform(-4, 4, 20_000)  # symmetric, so both classes are equally common
    is_spoof = rng.random(logits.size) < 1 / (1 + np.exp(-(0.5 * logits + 0.3)))
    a, b = fit_calibration(logits, is_spoof)
    # b absorbs the small class imbalance that the +0.3 offset creates (equal class weights).
    assert a == pytest.approx(0.5, abs=0.03) and abs(b) < 0.1


def test_threshold_flags_at_most_the_allowed_share_of_real_clips() -> None:
    from deepfake_studio.detector.train import choose_threshold

    real = np.linspace(0.0, 0.99, 100)  # the three highest: 0.97, 0.98, 0.99
    threshold = choose_threshold(real, max_fpr=0.02)
    assert threshold == pytest.approx(0.97) and (real > threshold).sum() == 2
    assert choose_threshold(real * 0.4, max_fpr=0.02) == 0.5  # never below 0.5
    assert choose_threshold(np.full(10, 0.9995), max_fpr=0.0) == 0.999  # nor above 0.999


def test_shrink_keeps_exactly_the_smaller_configs_clips(
    tiny_data: Path, tiny_config: DataConfig, tmp_path: Path
) -> None:
    from deepfake_studio.detector.data import plan, shrink
    from deepfake_studio.evaluation.speakers import load_manifest

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "manifest.jsonl"):
        (copy / name).write_text((tiny_data / name).read_text())
    smaller = shrink(copy, spoofs_per_generator=3, max_bona_fide=5)
    splits = json.loads(SPLIT_FILE.read_text())["splits"]
    split_of = {s: name for name, c in splits.items() for ss in c.values() for s in ss}
    expected = {j.id for j in plan(smaller, load_manifest(), split_of)}
    kept = {str(r["id"]).split("~")[0] for r in read_manifest(copy)}
    assert kept == expected and len(kept) < len(read_manifest(tiny_data)) // 2
    assert json.loads((copy / "config.json").read_text())["spoofs_per_generator"] == 3
    with pytest.raises(StudioError, match="not built yet"):
        shrink(copy, spoofs_per_generator=50, max_bona_fide=5)


def test_training_refuses_a_model_that_does_not_fit_its_features(tmp_path: Path) -> None:
    config = TrainConfig()
    config = replace(config, features=replace(config.features, n_lfcc=128))
    with pytest.raises(StudioError, match=r"model.n_lfcc \(160\) must equal features.n_lfcc"):
        train(tmp_path / "no-data", tmp_path / "run", config)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_held_out_real_sources_are_left_out_of_train_and_dev() -> None:
    from deepfake_studio.detector.train import select

    rows = [
        {"split": "train", "label": "bonafide", "generator": "bonafide", "augment": "none",
         "source": "alphanumeric/A1/x.flac"},
        {"split": "train", "label": "bonafide", "generator": "bonafide", "augment": "none",
         "source": "vctk/p225/y.flac"},
        {"split": "train", "label": "spoof", "generator": "world", "augment": "none",
         "source": "alphanumeric/A1/x.flac"},  # a spoof made from it stays: only real is held
        {"split": "dev", "label": "bonafide", "generator": "bonafide", "augment": "mp3",
         "source": "alphanumeric/A2/z.flac"},
    ]  # fmt: skip
    config = TrainConfig(exclude_real_sources=("alphanumeric/",))
    assert select(rows, "train", config).tolist() == [1, 2]
    assert select(rows, "dev", config).tolist() == []
    assert select(rows, "train", TrainConfig()).tolist() == [0, 1, 2]


def test_held_out_real_sources_are_the_children_and_the_phone_set(speech_dir: Path) -> None:
    import csv

    from deepfake_studio.detector.data import CHILD_MAX_AGE, held_out_real_sources

    sources = held_out_real_sources(speech_dir / "manifest.csv")
    with open(speech_dir / "manifest.csv", encoding="utf-8") as f:
        ages = {
            r["speaker"]: int(r["info"].split("age=")[1].split(";")[0])
            for r in csv.DictReader(f)
            if r["corpus"] == "speechocean762"
        }
    children = {s.split("/")[1] for s in sources if s.startswith("speechocean762/")}
    assert sources[0] == "alphanumeric/"
    assert children == {s for s, age in ages.items() if age <= CHILD_MAX_AGE}
    assert 0 < len(children) < len(ages)  # the corpus has adults too: they stay in training


def test_a_build_with_aac_and_resampling_treats_real_and_fake_alike(
    tiny_data: Path, speech_dir: Path, tmp_path: Path, tiny_config: DataConfig
) -> None:
    """The codec/channel options reach the augmented copies of real and synthetic clips alike,
    the build is reproducible, and a set built before the options existed still resumes."""
    config = replace(
        tiny_config,
        generators=("espeak-ng",),
        spoofs_per_generator=3,
        max_bona_fide=4,
        augmented_copies=3,
        augmentations=("codec", "resample"),
        codecs=("aac",),
    )
    first, second = tmp_path / "a", tmp_path / "b"
    build(first, config, speech_dir=speech_dir)
    build(second, config, speech_dir=speech_dir)
    rows = read_manifest(first)
    assert not [r for r in rows if "error" in r]
    assert rows == read_manifest(second)
    for label in ("bonafide", "spoof"):
        kinds = {
            step[:3]
            for r in rows
            if r["label"] == label and r["augment"] != "none"
            for step in str(r["augment"]).split("+")
        }
        assert kinds == {"aac", "res"}, (label, kinds)
    # A set whose config.json predates the options resumes (they default to what it used).
    old = tmp_path / "old"
    old.mkdir()
    stored = json.loads((tiny_data / "config.json").read_text())
    for key in ("augmentations", "codecs"):
        stored.pop(key, None)
    (old / "config.json").write_text(json.dumps(stored))
    (old / "manifest.jsonl").write_text((tiny_data / "manifest.jsonl").read_text())
    assert build(old, tiny_config, speech_dir=speech_dir) == {}


def test_kokoro_recipes_are_seeded_off_pack_voices_that_need_the_torch_path() -> None:
    from deepfake_studio.detector.generators import kokoro_recipe
    from deepfake_studio.synthesizer.base import Conditioning
    from deepfake_studio.synthesizer.kokoro import load_style_packs
    from deepfake_studio.synthesizer.kokoro.torch_path import (
        ProsodyEdit,
        needs_torch,
        with_prosody_edit,
    )

    packs = load_style_packs()
    style, edit = kokoro_recipe("train-mix0", packs)
    again, edit_again = kokoro_recipe("train-mix0", packs)
    other, other_edit = kokoro_recipe("test-mix0", packs)
    assert np.array_equal(style, again) and edit == edit_again
    assert not np.allclose(style, other) and edit != other_edit
    assert style.shape == next(iter(packs.values())).shape and np.isfinite(style).all()
    # Moved off the packs: a mixture alone stays inside the packs' element-wise range.
    stack = np.stack(list(packs.values()))
    outside = (style < stack.min(axis=0) - 1e-6) | (style > stack.max(axis=0) + 1e-6)
    assert outside.mean() > 0.05
    conditioning = with_prosody_edit(
        Conditioning(engine="kokoro", arrays={"style": style}), ProsodyEdit(**edit)
    )
    assert needs_torch(conditioning) and 0.7 <= edit["f0_scale"] <= 1.4


@pytest.mark.slow
def test_a_build_with_varied_kokoro_voices_per_split(
    speech_dir: Path, tmp_path: Path, tiny_config: DataConfig
) -> None:
    config = replace(
        tiny_config, generators=("kokoro-varied",), spoofs_per_generator=3, max_bona_fide=3
    )
    build(tmp_path / "set", config, speech_dir=speech_dir)
    rows = [r for r in read_manifest(tmp_path / "set") if r["generator"] == "kokoro-varied"]
    assert not [r for r in rows if "error" in r], [r.get("error") for r in rows]
    clean = [r for r in rows if r["augment"] == "none"]
    assert {r["split"] for r in clean} == {"train", "dev", "test"}
    assert all(str(r["voice"]).startswith(f"{r['split']}-mix") for r in clean)
    for row in clean:
        samples, rate = sf.read(str(tmp_path / "set" / str(row["path"])))
        assert rate == 16_000 and len(samples) == 64_000
        assert np.sqrt(np.mean(samples**2)) > 0.02  # speech at -23 LUFS, not silence


def test_evaluation_reports_false_positives_on_real_sources_kept_out_of_training(
    tiny_data: Path, tiny_run: Path, tmp_path: Path
) -> None:
    """A model whose card says it was trained without some real sources is scored on them
    separately (false positives at its threshold), and they leave the test split's pool."""
    from deepfake_studio.detector.evaluate import EvalConfig, evaluate, markdown_table
    from deepfake_studio.detector.infer import Detector, DetectorConfig

    real = [r for r in read_manifest(tiny_data) if r["label"] == "bonafide"]
    corpus = next(str(r["source"]).split("/")[0] for r in real if r["split"] == "test")
    held = [r for r in real if str(r["source"]).startswith(corpus + "/")]
    clean = [r for r in held if r["augment"] == "none"]
    trained = Detector(DetectorConfig(weights_dir=tiny_run))
    p = np.array([trained.detect(tiny_data / str(r["path"])).probability for r in clean])
    run = tmp_path / "run"
    run.mkdir()
    (run / "detector.onnx").write_bytes((tiny_run / "detector.onnx").read_bytes())
    card = json.loads((tiny_run / "detector.json").read_text())
    card["train"]["exclude_real_sources"] = [corpus + "/"]
    card["threshold"] = float(np.median(p))  # so that some, not all, are flagged
    (run / "detector.json").write_text(json.dumps(card))
    config = DetectorConfig(weights_dir=run)
    report = evaluate(tiny_data, tmp_path / "runs", EvalConfig(logo=False), detector=config)
    result = report["held_out_real"]
    assert result["clean"][corpus]["clips"] == len(clean) > 0
    expected = float(np.mean(p >= card["threshold"]))
    assert 0 < expected < 1
    assert result["clean"][corpus]["fpr_at_threshold"] == pytest.approx(expected)
    test_real = sum(1 for r in real if r["split"] == "test" and r["augment"] == "none")
    held_test = sum(1 for r in clean if r["split"] == "test")
    assert held_test > 0 and report["seen"]["clean"]["real"] == test_real - held_test
    report.pop("_scores")
    assert f"{corpus} " in markdown_table(report)


def test_clone_voices_are_enrolled_at_the_configs_quality(
    speech_dir: Path, tmp_path: Path, tiny_config: DataConfig
) -> None:
    """The build states its kokoro-clone voices' quality, so a change of the studio's default
    cannot silently change what a rebuild makes."""
    from deepfake_studio.detector.data import Builder
    from deepfake_studio.studio import enrollment_quality

    assert DataConfig().clone_quality == "standard"
    config = replace(tiny_config, clone_voices={"train": 1}, clone_quality="quick")
    voices = Builder(tmp_path, config, speech_dir)._enroll("kokoro")
    assert len(voices) == 1
    (voice,) = voices.values()
    assert enrollment_quality(voice) == "quick"
    # The same folder resumed with another quality would mix two kinds of clones: refused.
    standard = replace(config, clone_quality="standard")
    with pytest.raises(StudioError, match="enrolled at quick, not at standard"):
        Builder(tmp_path, standard, speech_dir)._enroll("kokoro")


def test_an_unknown_clone_quality_is_refused_before_anything_is_built(
    speech_dir: Path, tmp_path: Path, tiny_config: DataConfig
) -> None:
    with pytest.raises(StudioError, match="unknown clone quality 'top'"):
        build(tmp_path / "set", replace(tiny_config, clone_quality="top"), speech_dir=speech_dir)
    assert not (tmp_path / "set" / "config.json").exists()


def test_quality_clone_generators_plan_their_own_speakers_and_clip_counts(
    speech_dir: Path, tiny_config: DataConfig
) -> None:
    """kokoro-clone-QUALITY takes `quality_clone_voices[QUALITY]` speakers per split (more than
    kokoro-clone's) and `spoofs_by_generator` clips; the other generators keep their jobs."""
    from deepfake_studio.detector.data import plan
    from deepfake_studio.evaluation.speakers import load_manifest

    splits = json.loads(SPLIT_FILE.read_text())["splits"]
    split_of = {s: k for k, c in splits.items() for ss in c.values() for s in ss}
    clips = load_manifest(speech_dir / "manifest.csv")
    config = replace(
        tiny_config,
        generators=("espeak-ng", "kokoro-clone-quick", "kokoro-clone-standard"),
        quality_clone_voices={
            "quick": {"train": 5, "dev": 2, "test": 3},
            "standard": {"train": 1, "dev": 1, "test": 1},
        },
        spoofs_by_generator={"kokoro-clone-quick": 40},
    )
    jobs = plan(config, clips, split_of)
    quick = [j for j in jobs if j.generator == "kokoro-clone-quick"]
    assert [sum(j.split == s for j in quick) for s in ("train", "dev", "test")] == [28, 6, 6]
    voices = {s: {j.voice for j in quick if j.split == s} for s in ("train", "dev", "test")}
    assert [len(voices[s]) for s in ("train", "dev", "test")] == [5, 2, 3]
    assert all(split_of[v] == s for s, vs in voices.items() for v in vs)  # split by speaker
    standard = [j for j in jobs if j.generator == "kokoro-clone-standard"]
    assert len(standard) == 6 and len({j.voice for j in standard}) == 3  # spoofs_per_generator
    alone = plan(replace(config, generators=("espeak-ng",)), clips, split_of)
    espeak = [j for j in jobs if j.generator == "espeak-ng"]
    assert [j.id for j in espeak] == [j.id for j in alone if j.generator == "espeak-ng"]
    assert [j.seed for j in espeak] == [j.seed for j in alone if j.generator == "espeak-ng"]


def test_quality_clone_voices_are_enrolled_at_their_quality_beside_the_older_clones(
    speech_dir: Path, tmp_path: Path, tiny_config: DataConfig
) -> None:
    from deepfake_studio.detector.data import Builder
    from deepfake_studio.studio import enrollment_quality

    config = replace(
        tiny_config,
        generators=("kokoro-clone-quick",),
        quality_clone_voices={"quick": {"train": 1, "test": 1}},
    )
    builder = Builder(tmp_path, config, speech_dir)
    voices = builder._enroll("kokoro", "quick")
    assert len(voices) == 2
    assert {enrollment_quality(v) for v in voices.values()} == {"quick"}
    assert all(v.name.startswith("kokoro-quick-") for v in voices.values())
    clip = builder.generator("kokoro-clone-quick").generate(
        Request(text="A short sentence to say.", source=None, voice=sorted(voices)[0])
    )
    assert clip.duration > 0.8 and float(np.abs(clip.samples).max()) > 0.05


def test_a_fine_tune_of_the_gru_and_head_keeps_the_front_end(
    tiny_data: Path, tmp_path: Path
) -> None:
    """`trainable` names the modules that learn: after an epoch at a high learning rate the
    shipped convolutions (and their BatchNorm statistics) are bit-identical and the GRU moved."""
    import torch

    from deepfake_studio.detector.infer import weights_dir
    from deepfake_studio.detector.model import SpecRNetLite, load_onnx_weights

    shipped = weights_dir() / "detector.onnx"
    config = TrainConfig(
        epochs=1,
        batch_size=8,
        threads=1,
        learning_rate=1e-2,
        init_onnx=str(shipped),
        trainable=("gru", "head"),
    )
    card = train(tiny_data, tmp_path / "run", config, log=lambda _: None)
    assert card["train"]["trainable"] == ("gru", "head")
    start = load_onnx_weights(SpecRNetLite(), shipped).state_dict()
    tuned = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    front = [k for k in start if k.split(".")[0] in ("input_bn", "stem", "blocks", "out_bn")]
    assert len(front) > 20
    for key in front:
        assert torch.equal(tuned[key], start[key]), key
    for key in ("gru.weight_hh_l0", "head.weight"):
        assert (tuned[key] - start[key]).abs().max() > 1e-3, key


def test_an_unknown_trainable_module_is_refused() -> None:
    from deepfake_studio.detector.model import SpecRNetLite
    from deepfake_studio.detector.train import freeze_all_but

    model = SpecRNetLite()
    with pytest.raises(StudioError, match=r"trainable: no module 'rnn' \(the model has input_bn"):
        freeze_all_but(model, ("rnn", "head"))
    assert freeze_all_but(model, ()) == []
    assert all(p.requires_grad for p in model.parameters())

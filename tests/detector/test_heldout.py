"""The frozen held-out set stays disjoint from everything the detector was tuned on, and the
"unseen" protocol leaves near-twin generators out together."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from deepfake_studio.detector import heldout
from deepfake_studio.detector.data import BONA_FIDE, GENERATORS
from deepfake_studio.detector.evaluate import GENERATOR_FAMILIES, logo_groups
from deepfake_studio.detector.generators import ESPEAK_VOICES, FESTIVAL_VOICES, FLITE_VOICES
from deepfake_studio.errors import StudioError
from deepfake_studio.evaluation.speakers import SPLIT_FILE
from deepfake_studio.studio import enrollment_quality
from tests.conftest import SHARED_DATA, skip_or_fail_in_ci


@pytest.fixture(scope="module")
def spec() -> heldout.HeldOutSpec:
    return heldout.load_spec()


@pytest.fixture(scope="module")
def real(spec: heldout.HeldOutSpec) -> list[heldout.RealClip]:
    if not (SHARED_DATA / spec.real_manifest).exists():
        skip_or_fail_in_ci(f"shared data not found at {SHARED_DATA / spec.real_manifest}")
    return heldout.real_clips(spec, SHARED_DATA)


def test_heldout_speakers_are_in_no_split(spec: heldout.HeldOutSpec) -> None:
    splits = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["splits"]
    used = {s for corpora in splits.values() for speakers in corpora.values() for s in speakers}
    assert len(spec.speakers) == 10
    assert not set(spec.speakers) & used
    assert set(spec.clone_speakers) <= set(spec.speakers)


def test_heldout_generator_settings_were_not_used_in_training(spec: heldout.HeldOutSpec) -> None:
    from deepfake_studio.synthesizer.kokoro import load_style_packs

    assert set(spec.generators) == set(GENERATORS)  # every training generator, other settings
    voices = spec.generators
    assert not set(voices["espeak-ng"]) & set(ESPEAK_VOICES)
    packs = set(load_style_packs())
    for mix in voices["kokoro"]:  # mixtures of two packs, never a single pack
        names = mix.split("+")
        assert len(names) == 2 and set(names) <= packs, mix
    for voice in voices["flite"]:  # a training voice, always with a setting training never used
        name, settings = heldout._settings(voice)
        assert name in FLITE_VOICES and settings, voice
        # training: no pitch setting, duration_stretch = 1 / speed (0.87-1.18)
        assert "f0" in settings or not 0.85 <= settings["stretch"] <= 1.2, voice
    for voice in voices["festival"]:
        name, settings = heldout._settings(voice)
        stretch = settings["stretch"]
        # training: Duration_Stretch = 1 / speed with speed in 0.85-1.15, i.e. 0.87-1.18
        assert name in FESTIVAL_VOICES and not 0.85 <= stretch <= 1.2, voice
    for voice in voices["piper"]:  # Piper's own defaults (used in training): 0.667 / 0.8
        _, settings = heldout._settings(voice)
        assert (settings["noise"], settings["noise_w"]) != (0.667, 0.8), voice
    for voice in voices["world"]:  # training: DIO F0 at a 5 ms frame period
        name, settings = heldout._settings(voice)
        assert name == "harvest" or settings.get("frame_period", 5.0) != 5.0, voice
    assert all(heldout._settings(v)[1]["iterations"] != 32 for v in voices["griffin-lim"])
    assert all(v.split("-", 1)[1] in spec.clone_speakers for v in voices["kokoro-clone"])


def test_settings_strings_parse() -> None:
    assert heldout._settings("slt@f0=230,stretch=1.2") == ("slt", {"f0": 230.0, "stretch": 1.2})
    assert heldout._settings("noise=0.3,noise_w=0.3") == ("", {"noise": 0.3, "noise_w": 0.3})
    assert heldout._settings("dio,frame_period=10") == ("dio", {"frame_period": 10.0})


def test_plan_uses_only_heldout_speakers_and_is_stable(
    spec: heldout.HeldOutSpec, real: list[heldout.RealClip]
) -> None:
    jobs = heldout.plan(spec, real)
    assert jobs == heldout.plan(spec, real)  # a rebuild makes the same set
    assert len({j.id for j in jobs}) == len(jobs)
    bona_fide = [j for j in jobs if j.generator == BONA_FIDE]
    assert {j.voice for j in bona_fide} == set(spec.speakers)
    assert len(bona_fide) == len(real) == 407
    sources = {c.path for c in real}
    texts = set(spec.texts) | {c.text for c in real}
    for generator in GENERATORS:
        mine = [j for j in jobs if j.generator == generator]
        assert len(mine) == spec.spoofs_per_generator
        assert {j.voice for j in mine} == set(spec.generators[generator])
        assert all(j.source in sources and j.split == "heldout" for j in mine)
        assert all(j.text in texts for j in mine)
    german = [j for j in jobs if j.voice.startswith("de+")]
    assert german and all(j.text not in spec.texts for j in german)


def test_heldout_build_makes_clips_with_the_unseen_settings(
    spec: heldout.HeldOutSpec, real: list[heldout.RealClip], tmp_path: Path
) -> None:
    """A small real build: two real clips and one clip of each cheap generator."""
    import shutil

    import soundfile as sf

    for binary in ("espeak-ng", "flite"):
        if shutil.which(binary) is None:
            skip_or_fail_in_ci(f"{binary} is not installed (apt-get install {binary})")
    small = replace(
        spec,
        speakers=spec.speakers[:1],
        clone_speakers=(),
        spoofs_per_generator=2,
        generators={k: spec.generators[k] for k in ("espeak-ng", "flite", "world")},
    )
    small_real = [c for c in real if c.speaker == small.speakers[0]]
    written = heldout.build(tmp_path, SHARED_DATA, small)
    assert written[BONA_FIDE] == len(small_real)
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert not [r["error"] for r in rows if "error" in r]
    spoofs = [r for r in rows if r["label"] == "spoof" and r["augment"] == "none"]
    assert sorted({r["voice"] for r in spoofs}) == sorted(
        [
            *spec.generators["espeak-ng"][:2],
            *spec.generators["flite"][:2],
            "harvest",
            "dio,frame_period=10",
        ]
    )
    for row in rows:
        samples, rate = sf.read(tmp_path / row["path"])
        assert rate == 16_000 and len(samples) == 4 * 16_000 and abs(samples).max() > 0.01
    assert heldout.build(tmp_path, SHARED_DATA, small) == {}  # resumes: nothing left to do


def test_every_generator_has_a_family_and_near_twins_share_one() -> None:
    assert set(GENERATORS) <= set(GENERATOR_FAMILIES)
    assert GENERATOR_FAMILIES["flite"] == GENERATOR_FAMILIES["festival"]
    assert GENERATOR_FAMILIES["kokoro"] == GENERATOR_FAMILIES["kokoro-clone"]
    assert GENERATOR_FAMILIES["world"] != GENERATOR_FAMILIES["griffin-lim"]
    assert len(set(GENERATOR_FAMILIES[g] for g in GENERATORS)) == 6


def test_logo_groups_leave_families_out_together() -> None:
    groups = logo_groups(GENERATORS)
    assert groups["festvox"] == ("flite", "festival")
    assert groups["kokoro"] == ("kokoro-clone", "kokoro")
    assert groups["espeak-ng"] == ("espeak-ng",)
    assert sorted(g for members in groups.values() for g in members) == sorted(GENERATORS)
    assert logo_groups(("espeak-ng", "griffin-lim")) == {
        "espeak-ng": ("espeak-ng",),
        "griffin-lim": ("griffin-lim",),
    }
    with pytest.raises(StudioError, match="no generator family for vall-e"):
        logo_groups(("flite", "vall-e"))


def test_report_says_test_figures_come_after_selection_and_what_logo_measured() -> None:
    from deepfake_studio.detector.evaluate import markdown_table

    root = Path(__file__).resolve().parents[2]
    report = json.loads((root / "benchmarks" / "detector_eval.json").read_text())
    md = markdown_table(report)  # the committed runs leave whole families out
    assert all("family" in v for v in report["logo"].values())
    assert "Measured after selection" in md
    assert "family left out" in md and "not yet measured" not in md
    # A report of older single-generator runs (no family recorded) says what those measured.
    logo = {g: {k: x for k, x in v.items() if k != "family"} for g, v in report["logo"].items()}
    single = markdown_table(dict(report, logo=logo))
    assert "one generator left out" in single and "**not yet measured**" in single
    block = {
        "eer": 0.1234,
        "real": 407,
        "spoof": 96,
        "fpr_at_threshold": 0.0567,
        "miss_at_threshold": 0.25,
        "per_generator_miss_at_threshold": {"world": 0.5, "flite": 0.0},
    }
    md = markdown_table(report, {"clean": block, "augmented": block})
    assert "## Held-out set" in md and "| EER, clean | 0.75 % | 12.34 % |" in md
    assert "5.67 % (407 clips)" in md and "flite 0.00 %, world 50.00 %" in md


def test_flite_pitch_settings_move_the_pitch(spec: heldout.HeldOutSpec) -> None:
    """A held-out flite voice with `f0=` must really speak at another pitch than in training
    (kal16 at 95 Hz once sat on its own 90 Hz: a training voice under a new name)."""
    import shutil
    import warnings

    import numpy as np

    from deepfake_studio.detector.generators import Request

    if shutil.which("flite") is None:
        skip_or_fail_in_ci("flite is not installed (apt-get install flite)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld

    def median_f0(voice: str) -> float:
        audio = heldout._flite().generate(Request(text=spec.texts[0], source=None, voice=voice))
        f0, _ = pyworld.dio(audio.samples.astype(np.float64), audio.sample_rate)
        return float(np.median(f0[f0 > 0]))

    pitched = [v for v in spec.generators["flite"] if "f0" in heldout._settings(v)[1]]
    assert pitched
    for voice in pitched:
        name, _ = heldout._settings(voice)
        shift = 12 * np.log2(median_f0(voice) / median_f0(name))
        assert abs(shift) >= 3.0, (voice, shift)  # semitones


def test_heldout_clone_voices_are_enrolled_from_german_references(
    spec: heldout.HeldOutSpec, real: list[heldout.RealClip], tmp_path: Path
) -> None:
    """The frozen set's kokoro-clone voices come from EmoDB's German actors: they are enrolled
    as the set was built (quick), since the standard fit refuses a language Kokoro lacks."""
    assert spec.clone_quality == "quick"
    small = replace(
        spec,
        clone_speakers=spec.clone_speakers[:1],
        spoofs_per_generator=1,
        generators={"kokoro-clone": spec.generators["kokoro-clone"]},
    )
    builder = heldout.HeldOutBuilder(tmp_path, small, SHARED_DATA)
    voices = builder._enroll("kokoro")
    (name,) = voices
    assert name == f"kokoro-{small.clone_speakers[0]}".lower()
    assert enrollment_quality(voices[name]) == "quick"
    assert voices[name].conditioning.arrays["style"].shape == (510, 256)

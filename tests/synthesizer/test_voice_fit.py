"""The shipped Kokoro voice fit (`FitConfig()`) against what a user gets without it.

Measured by the independent d-vector judge (`evaluation.judge`, never used by the fit, which
optimises resemblyzer's GE2E) on held-out sentences that are neither the reference's text
nor the fit's probes, against a *different* real recording of the speaker. Every voice says
the same sentences at the clone's speed, so only the voice differs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_studio.evaluation.clone_eval import SENTENCES
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro.fit import FitConfig, fit_voice

SPEAKER = "VCC16_TM1"  # a train-split speaker of the shared corpus (male; not tuned on)
HELD_OUT = " ".join(SENTENCES[2:4])
# Margins in judge cosine, from runs on train-split speakers (clone minus default voice /
# minus best pack): VCC16_TM1 +0.372 / -0.055, VCC16_SF2 +0.098 / -0.009, VCTK_p226
# +0.112 / +0.041, LJ +0.012 / -0.038. The default voice is female (and close to LJ), so it
# is far off for a male speaker like this one: the margin over it is for this speaker only;
# the best unmodified pack (chosen with the judge itself: an oracle the fit does not have)
# is the strict bar, and for this speaker today's fit does not clear it (xfail below).
MARGIN_OVER_DEFAULT = 0.15
MARGIN_UNDER_BEST_PACK = 0.08


@pytest.fixture(scope="module")
def judged(studio, speech_dir: Path) -> dict:  # type: ignore[no-untyped-def]
    """Judge cosines to the speaker's other recording: the default-fit clone and each pack."""
    from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
    from deepfake_studio.evaluation.speakers import load_manifest, speaker_case

    case = speaker_case(SPEAKER, load_manifest(speech_dir / "manifest.csv"))
    assert case is not None
    engine = studio.engine("kokoro")
    fitted = fit_voice(engine, case.reference, studio.encoder, config=FitConfig())
    judge = SpeakerJudge()
    truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)

    def similarity(style) -> float:  # type: ignore[no-untyped-def]
        voice = Conditioning(engine="kokoro", arrays={"style": style}, speed=fitted.speed)
        return cosine(judge.embed(engine.synthesize(HELD_OUT, voice), engine.sample_rate), truth)

    packs = {name: similarity(table) for name, table in engine.style_packs.items()}
    return {
        "clone": similarity(fitted.arrays["style"]),
        "packs": packs,
        "default": packs[engine.default_conditioning().info["pack"]],
        "best_pack": max(packs.values()),
        "fit": fitted.info,
    }


@pytest.mark.slow
def test_default_fit_beats_the_default_voice_and_nears_the_best_pack(judged: dict) -> None:
    assert judged["fit"]["result"] == "start"  # the shipped default: no style search
    assert judged["clone"] >= judged["default"] + MARGIN_OVER_DEFAULT, judged
    assert judged["clone"] >= judged["best_pack"] - MARGIN_UNDER_BEST_PACK, judged


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="measured: for VCC16_TM1 the shipped fit (the pack moved +4.4 semitones to the "
    "reference's pitch) is judged 0.055 below the same pack unmoved; a better fit should pass",
)
def test_default_fit_beats_the_best_pack(judged: dict) -> None:
    assert judged["clone"] > judged["best_pack"] + 0.02, judged

"""The shipped `quick` voice (the style encoder) against what a user gets without it.

Measured by the independent d-vector judge (`evaluation.judge`, never used by the studio,
which reads voices with its own GE2E encoder) on held-out sentences that are neither the
reference's text nor the guard's sentence, against a *different* real recording of the
speaker. Every voice says the same sentences at the clone's speed, so only the voice differs.
The speaker is a train-split speaker the encoder's table does not hold (a speaker in it
would find its own fitted style).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_studio.evaluation.clone_eval import SENTENCES
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro.style_encoder import encode_voice

SPEAKER = "VCTK_p273"  # train split, not among the style encoder's fitted voices
HELD_OUT = " ".join(SENTENCES[2:4])
# Judge cosines measured (session 16, AMD EPYC): VCTK_p273 default voice 0.259, best
# unmodified pack 0.360 (jf_nezumi; chosen with the judge itself: an oracle the studio does
# not have), quick 0.485. The other two train speakers outside the table: VCTK_p258 0.369 /
# 0.471 / 0.497; VCTK_p254: the guard kept the base pack jm_kumo, which was the best pack
# (0.406). The search `quick` was before never cleared the best pack on the test speakers
# (benchmarks/clone_eval_test_modes.md: 0.214 vs 0.217 normalised; the encoder 0.378).
MARGIN_OVER_DEFAULT = 0.15
MARGIN_OVER_BEST_PACK = 0.05


@pytest.fixture(scope="module")
def judged(studio, speech_dir: Path) -> dict:  # type: ignore[no-untyped-def]
    """Judge cosines to the speaker's other recording: the quick clone and each pack."""
    from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
    from deepfake_studio.evaluation.speakers import load_manifest, speaker_case

    case = speaker_case(SPEAKER, load_manifest(speech_dir / "manifest.csv"))
    assert case is not None
    engine = studio.engine("kokoro")
    assert SPEAKER not in set(engine.style_encoder.speakers)
    voice = encode_voice(engine, case.reference, studio.encoder, engine.style_encoder)
    judge = SpeakerJudge()
    truth = judge.embed(case.ground_truth.samples, case.ground_truth.sample_rate)

    def similarity(style) -> float:  # type: ignore[no-untyped-def]
        spoken = Conditioning(engine="kokoro", arrays={"style": style}, speed=voice.speed)
        return cosine(judge.embed(engine.synthesize(HELD_OUT, spoken), engine.sample_rate), truth)

    packs = {name: similarity(table) for name, table in engine.style_packs.items()}
    return {
        "clone": similarity(voice.arrays["style"]),
        "packs": packs,
        "default": packs[engine.default_conditioning().info["pack"]],
        "best_pack": max(packs.values()),
        "info": voice.info,
    }


@pytest.mark.slow
def test_quick_beats_the_default_voice_and_the_best_pack(judged: dict) -> None:
    assert judged["info"]["result"] == "encoder", judged["info"]  # the guard kept the table
    assert judged["clone"] >= judged["default"] + MARGIN_OVER_DEFAULT, judged
    assert judged["clone"] >= judged["best_pack"] + MARGIN_OVER_BEST_PACK, judged

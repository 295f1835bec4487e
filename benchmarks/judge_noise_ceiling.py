"""How high a perfectly clean clone can score when the speaker's recordings are noisy.

The normalised similarity of `eval clone` is (sim - piper) / (same - piper), where `same` is
the judge's cosine between the reference and the ground truth. When both come from one noisy
recording channel (a LibriSpeech audiobook), `same` includes what the channel shares; a
clone spoken cleanly by Kokoro cannot share it. This measures that ceiling on dev speakers:
white noise at a given SNR is added to the reference and the ground truth (independent
draws), and the *clean* reference (the speaker's own voice, no noise: a perfect clean clone)
is scored against the noisy ground truth, normalised with the noisy reference as `same` and
another dev speaker's clean reference as the stranger.

    nice -n 10 .venv/bin/python benchmarks/judge_noise_ceiling.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from deepfake_studio.audio import Audio
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import add_overwrite_flag, refuse_to_overwrite

HERE = Path(__file__).parent
# (speaker, stranger): dev speakers only, two clean studio corpora and two LibriSpeech.
PAIRS = (
    ("VCTK_p227", "VCC16_SF1"),
    ("VCC16_SF1", "VCTK_p227"),
    ("LS1841", "LS2952"),
    ("LS1334", "LS298"),
)
SNRS = (30.0, 20.0, 10.0)


def with_noise(audio: Audio, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    x = audio.samples.astype(np.float64)
    noise = rng.standard_normal(len(x))
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2)) / 10 ** (snr_db / 20)
    return (x + noise).astype(np.float32)


def main(out: Path) -> None:
    manifest, judge, rng = load_manifest(None), SpeakerJudge(), np.random.default_rng(0)
    rows = []
    for speaker, other in PAIRS:
        case, stranger_case = speaker_case(speaker, manifest), speaker_case(other, manifest)
        assert case is not None and stranger_case is not None
        rate = case.reference.sample_rate
        clean = judge.embed(case.reference.samples, rate)
        stranger = judge.embed(stranger_case.reference.samples, stranger_case.reference.sample_rate)
        for snr in SNRS:
            truth = judge.embed(with_noise(case.ground_truth, snr, rng), rate)
            noisy_ref = judge.embed(with_noise(case.reference, snr, rng), rate)
            same, strange, own = (cosine(e, truth) for e in (noisy_ref, stranger, clean))
            rows.append(
                {
                    "speaker": speaker,
                    "snr_db": snr,
                    "same_noisy": round(same, 4),
                    "clean_own_voice": round(own, 4),
                    "stranger": round(strange, 4),
                    "ceiling_norm": round((own - strange) / (same - strange), 4),
                }
            )
            print(rows[-1], flush=True)
    data = {"cpu": cpu_model(), "cores": os.cpu_count(), "rows": rows}
    out.write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# The normalised-similarity ceiling of a clean clone of a noisy speaker",
        "",
        "Produced by `benchmarks/judge_noise_ceiling.py` (dev speakers; white noise added to "
        "reference and ground truth at the SNR given; the clean reference stands for a perfect "
        "clean clone; stranger = another dev speaker's clean reference). The judge is the "
        "independent d-vector of `eval clone`.",
        "",
        "| speaker | SNR dB | same (noisy ↔ noisy) | clean own voice ↔ noisy truth | stranger "
        "| ceiling (normalised) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['speaker']} | {r['snr_db']:.0f} | {r['same_noisy']:.3f} | "
            f"{r['clean_own_voice']:.3f} | {r['stranger']:.3f} | {r['ceiling_norm']:.3f} |"
        )
    for snr in SNRS:
        mean = np.mean([r["ceiling_norm"] for r in rows if r["snr_db"] == snr])
        lines.append(f"\nMean ceiling at {snr:.0f} dB SNR: {mean:.3f}.")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "judge_noise_ceiling.json")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([args.out, args.out.with_suffix(".md")], args.overwrite)
    main(args.out)

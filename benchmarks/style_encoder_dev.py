"""The style encoder (`quick`) against its base pack and the search it replaced, on dev or
test speakers.

For each speaker (reference and ground truth cut as `eval clone` cuts them): the base pack of
the reference's pitch class (what the encoder moves from), the encoder with its default
neighbours, the mean move of every fitted voice of the class (neighbours = all), `quick` as
enrolled (`encode_voice`: the encoder's table or the base pack, whichever the guard hears
closer, at the reference's rate) and the black-box search `quick` was before (`fit_voice`,
with its rate). Each speaks the two held-out sentences through `Studio.clone` (int8 ONNX);
the independent judge compares them with the ground truth (normalised as in `eval clone`).
Encoding time is the d-vector plus the table lookup; `quick_s` and `search_s` are the whole
enrollments.

    .venv/bin/python benchmarks/style_encoder_dev.py --targets style-targets [SPEAKER ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import split_speakers
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroEngine
from deepfake_studio.synthesizer.kokoro.fit import fit_voice, median_pitch
from deepfake_studio.synthesizer.kokoro.reconstruct import MALE_BELOW_SEMITONES
from deepfake_studio.synthesizer.kokoro.style_encoder import (
    PACK_BY_CLASS,
    StyleEncoder,
    encode_voice,
)
from deepfake_studio.synthesizer.kokoro.train_style_encoder import build_encoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from style_fit_dev import HELD_OUT, _voice, speaker_anchors

HERE = Path(__file__).parent
METHODS = ("base_pack", "encoder", "class_mean", "quick", "search")


def run(encoder: StyleEncoder, speakers: list[str], split: str) -> dict:
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        judge = SpeakerJudge()
        kokoro = studio.engine("kokoro")
        assert isinstance(kokoro, KokoroEngine)
        everyone = replace(
            encoder, config=replace(encoder.config, neighbours=len(encoder.speakers))
        )
        for speaker in speakers:
            try:
                anchors = speaker_anchors(speaker, split, studio, judge)
            except SystemExit as skip:  # too little audio
                print(skip, flush=True)
                continue
            clip = anchors.clip
            t0 = time.perf_counter()
            embedding = studio.encoder.embed(clip.samples, clip.sample_rate)
            pitch = median_pitch(clip.samples, clip.sample_rate)
            male = pitch is not None and pitch < MALE_BELOW_SEMITONES
            table, info = encoder.style_table(embedding, male, kokoro.style_packs)
            encode_s = time.perf_counter() - t0
            mean_table, _ = everyone.style_table(embedding, male, kokoro.style_packs)
            base = kokoro.style_packs[PACK_BY_CLASS[male]]
            t0 = time.perf_counter()
            quick = encode_voice(kokoro, clip, studio.encoder, encoder)
            quick_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            search = fit_voice(kokoro, clip, studio.encoder)
            search_s = time.perf_counter() - t0
            voices = {
                "base_pack": Conditioning(engine="kokoro", arrays={"style": base}),
                "encoder": Conditioning(engine="kokoro", arrays={"style": table}),
                "class_mean": Conditioning(engine="kokoro", arrays={"style": mean_table}),
                "quick": quick,
                "search": search,
            }
            row: dict = {
                "corpus": anchors.corpus,
                "reference_s": round(clip.duration, 2),
                "male": bool(male),
                "encode_s": round(encode_s, 2),
                "quick_s": round(quick_s, 2),
                "search_s": round(search_s, 2),
                "quick_result": quick.info["result"],
                "guard_scores": [quick.info["score_pack"], quick.info["score_encoder"]],
                "speeds": {"quick": round(quick.speed, 3), "search": round(search.speed, 3)},
                "search_start": f"{search.info['best_pack']} {search.info['pitch_shift']:+.1f} st",
                "neighbours": info["neighbours"],
                "nearest_cosine": info["nearest_cosine"],
            }
            for method, conditioning in voices.items():
                voice = _voice(conditioning)
                audio = studio.clone(" ".join(HELD_OUT), voice=voice)
                sim = cosine(judge.embed(audio.samples, audio.sample_rate), anchors.truth)
                row[method] = {"sim": round(sim, 4), "norm": round(anchors.norm(sim), 4)}
            rows[speaker] = row
            print(
                speaker,
                " ".join(f"{m} {row[m]['norm']:.3f}" for m in METHODS),
                f"(encode {encode_s:.2f} s)",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("speakers", nargs="*")
    parser.add_argument("--targets", type=Path, required=True, help="fitted train voices")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--count", type=int, default=8, help="speakers when none are named")
    args = parser.parse_args()
    speakers = args.speakers or [s for _, s in split_speakers(args.split)][: args.count]
    with tempfile.TemporaryDirectory() as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        kokoro = studio.engine("kokoro")
        assert isinstance(kokoro, KokoroEngine)
        encoder = build_encoder(args.targets, studio.encoder, kokoro.style_packs)
    rows = run(encoder, speakers, args.split)
    summary = {m: round(statistics.fmean(r[m]["norm"] for r in rows.values()), 4) for m in METHODS}
    data = {
        "cpu": cpu_model(),
        "load_average_end": round(os.getloadavg()[0], 2),
        "split": args.split,
        "train_voices": len(encoder.speakers),
        "train_male": int(np.sum(encoder.male)),
        "config": encoder.config.__dict__,
        "sentences": HELD_OUT,
        "summary_norm": summary,
        "encode_s_median": statistics.median(r["encode_s"] for r in rows.values()),
        "quick_s_median": statistics.median(r["quick_s"] for r in rows.values()),
        "search_s_median": statistics.median(r["search_s"] for r in rows.values()),
        "speakers": rows,
    }
    out = HERE / f"style_encoder_{args.split}.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Style-fit (`standard`) settings compared on dev speakers, without the guard.

For each speaker (reference and ground truth as `eval clone` cuts them; its dev split only),
Whisper-base transcribes the reference once, then each variant of `StyleFitConfig` fits a
style from the same start; the two held-out sentences of `style_fit_dev.py` are spoken
through the int8 ONNX path with the raw fitted table (no guard) and judged by the independent
d-vector judge (normalised as in `clone_eval`) and Whisper-base (WER).

    nice -n 5 .venv/bin/python benchmarks/style_fit_variants.py OUT.json LS1334 LS1841 ...
    VARIANTS=base,lr06 ... (a subset)

Resumable: OUT.json keeps every finished (speaker, variant). Results of the session-10 run
(6 LibriSpeech dev speakers): benchmarks/style_fit_librispeech_dev.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from style_fit_dev import HELD_OUT, _voice, speaker_anchors

from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine
from deepfake_studio.synthesizer.kokoro.reconstruct import (
    StyleFitConfig,
    reference_segments,
    style_table,
)

# The fit as it was before session 14 made the noise floor its default; the variants name
# what they change from it, so a variant's rows mean the same in every run.
NO_FLOOR = StyleFitConfig(noise_floor_percentile=None)
VARIANTS = {
    "base": NO_FLOOR,
    "s60": replace(NO_FLOOR, steps=60),
    "lr06": replace(NO_FLOOR, learning_rate=0.06),
    # After the source-phase fix (session 11): the probe's 60 steps / 2.5 s crops and halfway.
    "s45": replace(NO_FLOOR, steps=45),
    "c25": replace(NO_FLOOR, crop_seconds=2.5),
    "s60c25": replace(NO_FLOOR, steps=60, crop_seconds=2.5),
    # Log-mels clamped per band at the reference's 10th percentile (its noise floor) + 6 dB:
    # the default since session 14.
    "floor10": replace(NO_FLOOR, noise_floor_percentile=10.0, noise_floor_margin_db=6.0),
    # The same floor without the 6 dB margin (session 13: the margin cost the bundled LJ
    # reference's voice sentence-final words, 8 sentences' WER 6.3 % -> 12.9 %; 0 dB: 8.4 %).
    "floor10m0": replace(NO_FLOOR, noise_floor_percentile=10.0, noise_floor_margin_db=0.0),
}


def main(out: Path, speakers: list[str], wanted: list[str]) -> None:
    torch.set_num_threads(1)
    results = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory() as home:
        engines = EngineOptions(kokoro=KokoroConfig(threads=1))
        studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
        judge, asr = SpeakerJudge(), Transcriber()
        kokoro = studio.engine("kokoro")
        assert isinstance(kokoro, KokoroEngine)
        for speaker in speakers:
            a = speaker_anchors(speaker, "dev", studio, judge)
            row = results.setdefault(
                speaker,
                {"corpus": a.corpus, "ref_s": a.clip.duration, "same": a.same},
            )
            piece = reference_segments(a.clip, 30.0)[0]
            row["text"] = kokoro.transcriber.transcribe(piece)
            for name in wanted:
                if name in row:
                    continue
                t0 = time.perf_counter()
                fit = kokoro.fit_style([(piece, row["text"])], config=VARIANTS[name])
                fit_s = time.perf_counter() - t0
                tables = {name: style_table(kokoro.style_packs, fit)}
                if "start" not in row:
                    tables["start"] = kokoro.style_packs[fit.start_pack]
                for method, table in tables.items():
                    cond = Conditioning(engine="kokoro", arrays={"style": table})
                    audio = studio.clone(" ".join(HELD_OUT), voice=_voice(cond))
                    sim = cosine(judge.embed(audio.samples, audio.sample_rate), a.truth)
                    heard = asr.transcribe(audio.samples, audio.sample_rate)
                    row[method] = {
                        "norm": round(a.norm(sim), 4),
                        "wer": round(word_error_rate(" ".join(HELD_OUT), heard), 4),
                        "pack": fit.start_pack,
                    }
                row[name] |= {"fit_s": round(fit_s, 1), "load": os.getloadavg()[0]}
                out.write_text(json.dumps(results, indent=1))
                print(speaker, name, row[name], "start", row["start"]["norm"], flush=True)


if __name__ == "__main__":
    variants = os.environ.get("VARIANTS", ",".join(VARIANTS)).split(",")
    main(Path(sys.argv[1]), sys.argv[2:], variants)

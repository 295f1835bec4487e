"""Control for issue 23's gap: how much does a *fixed* bundled voice lose across languages?

    nice -n 19 .venv/bin/python benchmarks/languages_pack_control.py \
        --speakers-from benchmarks/languages_clone_s18.json \
        --out benchmarks/languages_pack_control_s18.json

A pack's style is the same in every language, so any drop of the judge's cosine between the
pack speaking language L and a test speaker's ground-truth English, against the pack speaking
English, is the judge's (or Kokoro's own per-language change), not a clone's. Each pack speaks
the first 4 sentences per language (as `languages_cross_style.py`), one clip per language;
compared with the ground truth of every speaker listed in `--speakers-from`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from deepfake_studio.evaluation.judge import SpeakerJudge
from deepfake_studio.evaluation.language_eval import SENTENCES, _fixed, _Kit
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import load_manifest, speaker_case
from deepfake_studio.studio import Studio, StudioConfig

PACKS = ("jf_alpha", "jm_kumo", "jf_nezumi")
LANGUAGES = ("en-us", "es", "fr", "it", "ja")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers-from", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sentences", type=int, default=4)
    args = parser.parse_args()
    speakers = list(json.loads(args.speakers_from.read_text(encoding="utf-8"))["speakers"])
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="pack-control-") as home:
        studio = Studio(StudioConfig(data_dir=Path(home)))
        kit = _Kit(studio, SpeakerJudge(), None)  # type: ignore[arg-type]  # no ASR needed
        kokoro = studio.engine("kokoro")
        vectors = {}
        for pack in PACKS:
            voice = _fixed(kokoro, pack)  # type: ignore[arg-type]
            for code in LANGUAGES:
                text = " ".join(SENTENCES[code][: args.sentences])
                vectors[pack, code] = kit.embed(kit.speak(voice, text, code)[0])
        clips = load_manifest(None)
        truth_sims: dict = {}
        for speaker in speakers:
            case = speaker_case(speaker, clips)
            if case is None:
                continue
            truth = kit.embed(case.ground_truth)
            truth_sims[speaker] = {
                p: {c: kit.cosine(vectors[p, c], truth) for c in LANGUAGES} for p in PACKS
            }
    drops = [
        (r["en-us"], r["en-us"] - statistics.fmean(r[c] for c in LANGUAGES[1:]))
        for per in truth_sims.values()
        for r in per.values()
    ]
    close = [d for s, d in drops if s >= 0.45]
    data = {
        "cpu": cpu_model(),
        "load_at_start": load_at_start,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "sentences": args.sentences,
        "truth_sims": truth_sims,
        "pack_vs_english": {
            p: {c: kit.cosine(vectors[p, c], vectors[p, "en-us"]) for c in LANGUAGES} for p in PACKS
        },
        "mean_drop_all_pairs": round(statistics.fmean(d for _, d in drops), 4),
        "mean_drop_pairs_en_sim_0.45_up": round(statistics.fmean(close), 4) if close else None,
        "pairs_en_sim_0.45_up": len(close),
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in data.items() if k.startswith(("mean", "pairs"))}))


if __name__ == "__main__":
    main()

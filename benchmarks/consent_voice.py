"""Consent proven by voice (issue 22 item 3): the speaker threshold and what each check costs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/consent_voice.py [--overwrite]    (~20 min)

Speakers of shared/data/speech, by evaluation/speaker_split.json. For each speaker a
*reference* (what a user enrolls, 2-10 s) and a *consent-like*
recording (the speaker's other audio, cut to at most 6 s: the consent sentence takes about 5 s):
`consent_and_reference`. A consent-like recording with less speech than
the studio accepts (`ConsentConfig.min_speech_s`) is not a consent recording: the studio asks
for the whole sentence, so such speakers are skipped and counted. One-clip corpora
(LibriSpeech, alphanumeric) are cut in two (the last 5-6 s, from a word gap, is the consent
part; what comes before, the reference), so their genuine pairs share a session.

1. Speaker check (GE2E cosine, `consent.speaker_similarity`, exactly as the studio checks).
   Genuine pair: a speaker's consent-like recording vs their own reference. Impostor pair: a
   speaker's consent-like recording vs another speaker's reference ("a different speaker reads
   the phrase"). The threshold is chosen on the **train** speakers only: the lowest multiple of
   0.01 at which at most `--far` of the same-corpus impostor pairs (the harder ones: same
   microphones and sessions) pass. FAR and FRR are then reported on the **dev + test** speakers.
2. Not-synthetic check on real consent-like recordings. The detector's threshold for consent
   (`ConsentConfig.detector_threshold`) is chosen on the **train** speakers' recordings: the
   lowest multiple of 0.01, not below the detector's own threshold, at which at most
   `--detector-frr` of them are called synthetic. Reported on the held-out speakers: how many
   the watermark or the detector would refuse (each a false reject), at the detector's own
   threshold and at the chosen one; section 3b gives what the higher threshold lets through.
3. Phrase check. (a) Replays: every held-out consent-like recording, transcribed once by
   Whisper-base, against 50 random challenges each: how often are 4 (or 3) of the 4 words heard
   in order? (b) There are no real recordings of challenge sentences, so how well Whisper-base
   hears the words is measured on synthetic readings (Kokoro's 5 bundled packs and Piper, 60
   challenge sentences): per word and per phrase. Real voices are harder: treat it as a bound.
   The same synthetic readings also give the not-synthetic check's catch rate: unwatermarked
   (the detector) and watermarked by the studio (the watermark).

Writes benchmarks/consent_voice.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _output import add_overwrite_flag, refuse_to_overwrite

from deepfake_studio import Studio, StudioConfig
from deepfake_studio.audio import Audio, concatenate, load_audio, speech_seconds, trim_silence
from deepfake_studio.consent import (
    CHALLENGE_WORDS,
    ConsentConfig,
    embedding_clip,
    new_challenge,
    words_heard_in_order,
)
from deepfake_studio.evaluation.machine import cpu_model
from deepfake_studio.evaluation.speakers import (
    SPLIT_FILE,
    Clip,
    data_root,
    load_manifest,
)

OUT = Path(__file__).resolve().parent
CONSENT_MAX_S = 6.0
MIN_S = 2.0  # the studio needs 2 s of speech in a reference
REFERENCE_MAX_S = 10.0
REPLAYS_PER_CLIP = 50
TTS_SENTENCES = 60


def split_of() -> dict[str, str]:
    table = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["splits"]
    return {s: split for split, corpora in table.items() for ss in corpora.values() for s in ss}


def gender_of(manifest: Path) -> dict[str, str]:
    import csv

    found: dict[str, str] = {}
    with open(manifest, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for part in (row.get("info") or "").split(";"):
                if part.startswith("gender="):
                    found[row["speaker"]] = part.split("=", 1)[1]
    return found


def consent_and_reference(speaker: str, clips: list[Clip]) -> tuple[Audio, Audio, str] | str:
    """(consent-like recording, reference, corpus), or why the speaker is skipped:
    "too little audio" (not enough for two recordings) or "consent too short" (less speech
    than the studio accepts in a consent recording). Several clips: the first (by path) make
    the consent recording, joined until it holds the studio's minimum of speech (one session
    read in one go), the rest (up to 10 s) the reference. One clip: the last 5-6 s (from a
    word gap) is the consent part, what comes before the reference."""
    own = sorted((c for c in clips if c.speaker == speaker), key=lambda c: str(c.path))
    needed = ConsentConfig().min_speech_s
    if len(own) == 1:
        audio = trim_silence(load_audio(own[0].path, 16_000))
        cut = quiet_cut(audio, audio.duration - CONSENT_MAX_S, audio.duration - 5.0)
        consent = trim_silence(audio.with_samples(audio.samples[cut:]))
        reference = trim_silence(audio.with_samples(audio.samples[:cut]))
    else:
        pieces = [trim_silence(load_audio(c.path, 16_000)) for c in own]
        consent_parts = [pieces.pop(0)]
        while pieces and speech_seconds(concatenate(consent_parts, 0.3)) < needed:
            consent_parts.append(pieces.pop(0))
        consent = concatenate(consent_parts, 0.3)
        reference_parts: list[Audio] = []
        while pieces and sum(p.duration for p in reference_parts) < REFERENCE_MAX_S:
            reference_parts.append(pieces.pop(0))
        if not reference_parts:
            return "too little audio"
        reference = concatenate(reference_parts, 0.2)
    consent = consent.with_samples(consent.samples[: int(CONSENT_MAX_S * consent.sample_rate)])
    if reference.duration < MIN_S:
        return "too little audio"
    if speech_seconds(consent) < needed:
        return "consent too short"
    return consent, reference, own[0].corpus


def quiet_cut(audio: Audio, lo_s: float, hi_s: float) -> int:
    """Sample index of the quietest 30 ms frame between `lo_s` and `hi_s` (a word gap), so a
    one-clip speaker's consent part starts as a recording would."""
    frame = int(0.03 * audio.sample_rate)
    lo = max(0, int(lo_s * audio.sample_rate))
    hi = max(lo + frame, int(hi_s * audio.sample_rate))
    starts = range(lo, max(lo + 1, min(hi, len(audio.samples) - frame)), frame // 2)
    energy = [float(np.mean(audio.samples[i : i + frame] ** 2)) for i in starts]
    return starts[int(np.argmin(energy))] if energy else lo


def far_frr(genuine: np.ndarray, impostor: np.ndarray, t: float) -> tuple[float, float]:
    return float(np.mean(impostor >= t)), float(np.mean(genuine < t))


def choose_threshold(impostor: np.ndarray, far: float) -> float:
    """The lowest multiple of 0.01 at which at most `far` of the impostor pairs pass."""
    for t in np.round(np.arange(0.30, 1.0, 0.01), 2):
        if np.mean(impostor >= t) <= far:
            return float(t)
    return 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--far", type=float, default=0.005, help="target FAR on choice speakers")
    parser.add_argument(
        "--detector-frr",
        type=float,
        default=0.01,
        help="at most this share of train speakers' real recordings called synthetic",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=0)
    add_overwrite_flag(parser)
    args = parser.parse_args()
    outputs = [args.out / "consent_voice.json", args.out / "consent_voice.md"]
    refuse_to_overwrite(outputs, args.overwrite)
    rng = random.Random(args.seed)
    load_start = os.getloadavg()[0]
    started = time.time()

    clips = load_manifest()
    manifest = data_root() / "speech" / "manifest.csv"
    split, gender = split_of(), gender_of(manifest)
    studio = Studio(StudioConfig(data_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "consent-bench"))
    encoder = studio.encoder

    # -- 1. speaker check -----------------------------------------------------------------
    speakers = sorted({c.speaker for c in clips})
    cases: list[tuple[str, str, Audio, Audio]] = []
    skipped: Counter[str] = Counter()
    for speaker in speakers:
        pair = consent_and_reference(speaker, clips)
        if isinstance(pair, str):
            skipped[f"{split.get(speaker, '?')}: {pair}"] += 1
            continue
        cases.append((speaker, pair[2], pair[1], pair[0]))
    print(f"{len(cases)} speakers with a reference and a consent-like recording", flush=True)

    def embed(audio: Audio) -> np.ndarray:
        clip = embedding_clip(audio)
        return encoder.embed(clip.samples, clip.sample_rate)

    t0 = time.time()
    ref_emb = np.stack([embed(c[2]) for c in cases])
    con_emb = np.stack([embed(c[3]) for c in cases])
    embed_s = (time.time() - t0) / (2 * len(cases))
    sims = con_emb @ ref_emb.T  # [consent i, reference j]
    corpus = np.array([c[1] for c in cases])
    sex = np.array([gender.get(c[0], "?") for c in cases])
    group = np.array([split.get(c[0], "?") for c in cases])

    def pairs(members: np.ndarray) -> dict[str, np.ndarray]:
        idx = np.flatnonzero(members)
        sub = sims[np.ix_(idx, idx)]
        same_corpus = corpus[idx][:, None] == corpus[idx][None, :]
        same_sex = (sex[idx][:, None] == sex[idx][None, :]) & (sex[idx][:, None] != "?")
        off = ~np.eye(len(idx), dtype=bool)
        return {
            "genuine": np.diag(sub),
            "impostor": sub[off],
            "impostor_same_corpus": sub[off & same_corpus],
            "impostor_same_corpus_sex": sub[off & same_corpus & same_sex],
        }

    choice = pairs(group == "train")
    held = pairs((group == "dev") | (group == "test"))
    threshold = choose_threshold(choice["impostor_same_corpus"], args.far)
    shipped = ConsentConfig().speaker_threshold

    def rates(sets: dict[str, np.ndarray], t: float) -> dict[str, object]:
        return {
            "threshold": t,
            "genuine_pairs": len(sets["genuine"]),
            "frr": float(np.mean(sets["genuine"] < t)),
            "false_rejects": int(np.sum(sets["genuine"] < t)),
            **{
                f"far_{k.removeprefix('impostor').strip('_') or 'all'}": {
                    "pairs": len(v),
                    "accepted": int(np.sum(v >= t)),
                    "rate": float(np.mean(v >= t)) if len(v) else float("nan"),
                }
                for k, v in sets.items()
                if k.startswith("impostor")
            },
        }

    held_out = (group == "dev") | (group == "test")
    genuine_all = np.diag(sims)
    per_corpus = {}
    for name in sorted(set(corpus[held_out])):
        members = held_out & (corpus == name)
        g = genuine_all[members]
        per_corpus[name] = {
            "speakers": int(members.sum()),
            "false_rejects": int(np.sum(g < shipped)),
            "frr": float(np.mean(g < shipped)),
        }
    # Length matters (a short reference holds little of the voice): every consent recording
    # here has the studio's minimum of speech; references are 2-10 s.
    ref_s = np.array([c[2].duration for c in cases])
    long_enough = held_out & (ref_s >= 5.0)
    by_length = {
        "reference_at_least_5s": {
            "speakers": int(long_enough.sum()),
            "false_rejects": int(np.sum(genuine_all[long_enough] < shipped)),
        },
        "reference_shorter": {
            "speakers": int((held_out & ~long_enough).sum()),
            "false_rejects": int(np.sum(genuine_all[held_out & ~long_enough] < shipped)),
        },
    }
    speaker_result = {
        "speakers": {k: int(np.sum(group == k)) for k in ("train", "dev", "test")},
        "skipped_too_short": dict(skipped),
        "chosen_on_train": {"target_far": args.far, **rates(choice, threshold)},
        "held_out_at_chosen": rates(held, threshold),
        "held_out_at_shipped": rates(held, shipped),
        "held_out_frr_per_corpus_at_shipped": per_corpus,
        "held_out_false_rejects_by_length_at_shipped": by_length,
        "genuine_median_held_out": float(np.median(held["genuine"])),
        "impostor_same_corpus_p99_held_out": float(np.quantile(held["impostor_same_corpus"], 0.99)),
        "embed_seconds_per_recording": embed_s,
    }
    print(json.dumps(speaker_result, indent=1), flush=True)

    # -- 2. not-synthetic check on real consent-like recordings -------------------------------
    t0 = time.time()
    scored = []  # (speaker, corpus, split, seconds, watermark result, detector probability)
    for (speaker, corpus_name, _, consent), g in zip(cases, group, strict=True):
        scored.append(
            (
                speaker,
                corpus_name,
                g,
                consent.duration,
                studio.watermarker.detect(consent),
                studio.detect(consent).probability,
            )
        )
    synth_s = (time.time() - t0) / len(scored)
    detector_own = float(studio.detector.threshold)
    train_p = np.array([row[5] for row in scored if row[2] == "train"])
    detector_threshold = next(
        float(t)
        for t in np.round(np.arange(np.ceil(detector_own * 100) / 100, 1.0001, 0.01), 2)
        if np.mean(train_p >= t) <= args.detector_frr or t >= 1.0
    )
    detector_shipped = ConsentConfig().detector_threshold
    held_rows = [row for row in scored if row[2] in ("dev", "test")]

    def refusals(t: float) -> dict[str, object]:
        refused = [r for r in held_rows if r[4].present or r[5] >= t]
        return {
            "detector_threshold": t,
            "watermark_present": sum(bool(r[4].present) for r in held_rows),
            "detector_synthetic": sum(bool(r[5] >= t) for r in held_rows),
            "refused": len(refused),
            "refused_recordings": [
                {
                    "speaker": r[0],
                    "corpus": r[1],
                    "seconds": round(r[3], 2),
                    "watermark_score": round(r[4].score, 3),
                    "watermark_found_by": list(r[4].found_by),
                    "detector_probability": round(r[5], 3),
                }
                for r in refused
            ],
        }

    real_result = {
        "recordings": len(held_rows),
        "train_recordings": len(train_p),
        "detector_own_threshold": detector_own,
        "chosen_on_train": {
            "target_frr": args.detector_frr,
            "threshold": detector_threshold,
            "train_called_synthetic": int(np.sum(train_p >= detector_threshold)),
            "train_called_synthetic_at_own": int(np.sum(train_p >= detector_own)),
        },
        "held_out_at_detector_own": refusals(detector_own),
        "held_out_at_shipped": refusals(detector_shipped),
        "seconds_per_recording": synth_s,
    }
    print(json.dumps(real_result, indent=1), flush=True)
    held_cases = [c for c, g in zip(cases, group, strict=True) if g in ("dev", "test")]
    refused_real = {x["speaker"] for x in real_result["held_out_at_shipped"]["refused_recordings"]}
    overall = {
        "pairs": len(held_cases),
        "refused": sum(
            bool(genuine_all[i] < shipped) or cases[i][0] in refused_real
            for i in np.flatnonzero(held_out)
        ),
    }

    # -- 3a. replays: real recordings that are not the phrase ---------------------------------
    t0 = time.time()
    transcripts = []
    for _, _, _, consent in held_cases:
        clip = consent
        transcripts.append(studio.transcriber.transcribe(clip.samples, clip.sample_rate))
    whisper_s = (time.time() - t0) / len(held_cases)
    replay_heard = Counter()
    for text in transcripts:
        for _ in range(REPLAYS_PER_CLIP):
            challenge = new_challenge("Replay")
            replay_heard[words_heard_in_order(challenge.words, text)] += 1
    replays = {
        "recordings": len(transcripts),
        "challenges": sum(replay_heard.values()),
        "words_heard_histogram": {str(k): v for k, v in sorted(replay_heard.items())},
        "accepted_at_4": sum(v for k, v in replay_heard.items() if k >= 4),
        "accepted_at_3": sum(v for k, v in replay_heard.items() if k >= 3),
        "whisper_seconds_per_recording": whisper_s,
    }
    print(json.dumps(replays, indent=1), flush=True)

    # -- 3b. synthetic readings of challenge sentences ----------------------------------------
    from deepfake_studio.synthesizer.base import Conditioning

    kokoro = studio.engine("kokoro")
    piper = studio.engine("piper")
    packs = sorted(kokoro.style_packs)  # type: ignore[attr-defined]
    readers = [("kokoro:" + p, p) for p in packs] + [("piper", None)]
    word_heard: Counter[str] = Counter()
    word_said: Counter[str] = Counter()
    tts_rows = []
    for i in range(TTS_SENTENCES):
        reader, pack = readers[i % len(readers)]
        challenge = new_challenge(rng.choice(["Ana", "Tom", "Priya", "Kenji", "Maria"]))
        if pack is None:
            samples = piper.synthesize(challenge.sentence, piper.default_conditioning())
            audio = Audio(samples, piper.sample_rate)  # type: ignore[attr-defined]
        else:
            style = kokoro.style_packs[pack]  # type: ignore[attr-defined]
            cond = Conditioning(engine="kokoro", arrays={"style": style})
            audio = Audio(kokoro.synthesize(challenge.sentence, cond), kokoro.sample_rate)  # type: ignore[attr-defined]
        text = studio.transcriber.transcribe(audio.samples, audio.sample_rate)
        heard = words_heard_in_order(challenge.words, text)
        for w in challenge.words:
            word_said[w] += 1
            word_heard[w] += words_heard_in_order([w], text)
        det = studio.detect(audio)
        wm = studio.watermarker.detect(studio.watermarker.embed(audio))
        caught = bool(det.probability >= detector_shipped)
        tts_rows.append(
            {
                "reader": reader,
                "sentence": challenge.sentence,
                "transcript": text,
                "words_heard": heard,
                "detector_probability": round(det.probability, 4),
                "detector_synthetic": det.synthetic,
                "refused_by_consent_detector": caught,
                "watermarked_score": round(wm.score, 4),
                "watermarked_present": wm.present,
            }
        )
        print(reader, heard, round(det.probability, 3), round(wm.score, 3), text, flush=True)
    missed_words = {
        w: f"{word_heard[w]}/{n}" for w, n in sorted(word_said.items()) if word_heard[w] < n
    }
    tts = {
        "sentences": len(tts_rows),
        "readers": [r for r, _ in readers],
        "phrases_all_4_heard": sum(r["words_heard"] == 4 for r in tts_rows),
        "phrases_3_or_more_heard": sum(r["words_heard"] >= 3 for r in tts_rows),
        "words_heard": sum(word_heard.values()),
        "words_said": sum(word_said.values()),
        "missed_words": missed_words,
        "unwatermarked_caught_by_detector": sum(r["detector_synthetic"] for r in tts_rows),
        "unwatermarked_caught_at_consent_threshold": sum(
            r["refused_by_consent_detector"] for r in tts_rows
        ),
        "detector_probability_min": min(r["detector_probability"] for r in tts_rows),
        "watermarked_caught_by_watermark": sum(r["watermarked_present"] for r in tts_rows),
        "rows": tts_rows,
    }

    result = {
        "about": "benchmarks/consent_voice.py (issue 22 item 3)",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_at_start": load_start,
        "python": platform.python_version(),
        "challenge_words": len(CHALLENGE_WORDS),
        "speaker_check": speaker_result,
        "held_out_false_rejects": overall,
        "not_synthetic_on_real": real_result,
        "replays": replays,
        "synthetic_readings": tts,
        "minutes": (time.time() - started) / 60,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    # numpy scalars (a probability, a count) are written as plain numbers
    text = json.dumps(result, indent=1, default=lambda o: o.item())
    outputs[0].write_text(text + "\n", encoding="utf-8")
    outputs[1].write_text(markdown(result), encoding="utf-8")
    print(f"wrote {outputs[0]} and {outputs[1]}")


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.2f} %)" if n else "-"


def markdown(r: dict) -> str:
    s = r["speaker_check"]
    ch, ho, hs = s["chosen_on_train"], s["held_out_at_chosen"], s["held_out_at_shipped"]
    real, rep, tts = r["not_synthetic_on_real"], r["replays"], r["synthetic_readings"]
    dc = real["chosen_on_train"]
    lines = [
        "# Consent proven by voice: measured (issue 22 item 3)",
        "",
        f"`benchmarks/consent_voice.py` on {r['cpu']} ({r['cores']} cores, load "
        f"{r['load_at_start']:.1f} at start, {r['minutes']:.1f} min). Speakers of "
        "shared/data/speech split by `evaluation/speaker_split.json`: the threshold is chosen "
        f"on the train speakers ({s['speakers']['train']}), the rates are reported on the dev + "
        f"test speakers ({s['speakers']['dev'] + s['speakers']['test']}), never used to choose "
        "it. Speakers skipped, by split and why (too little audio for two recordings, or "
        f"a consent part under the studio's minimum of speech): {s['skipped_too_short']}.",
        "",
        "## Speaker check (GE2E cosine, consent-like recording vs reference)",
        "",
        f"Chosen on train: the lowest threshold (0.01 grid) with at most "
        f"{100 * ch['target_far']:.1f} % of same-corpus impostor pairs accepted: "
        f"**{ch['threshold']:.2f}** (train: FAR same-corpus "
        f"{pct(ch['far_same_corpus']['accepted'], ch['far_same_corpus']['pairs'])}, "
        f"FRR {pct(ch['false_rejects'], ch['genuine_pairs'])}). "
        f"The studio ships `ConsentConfig.speaker_threshold` = {hs['threshold']:.2f}.",
        "",
        "| held-out (dev + test) | at chosen | at shipped |",
        "|---|---|---|",
    ]
    for key, label in (
        ("far_all", "false accepts, all impostor pairs"),
        ("far_same_corpus", "false accepts, same corpus"),
        ("far_same_corpus_sex", "false accepts, same corpus and gender"),
    ):
        lines.append(
            f"| {label} | {pct(ho[key]['accepted'], ho[key]['pairs'])} | "
            f"{pct(hs[key]['accepted'], hs[key]['pairs'])} |"
        )
    lines += [
        f"| false rejects (genuine pairs) | {pct(ho['false_rejects'], ho['genuine_pairs'])} | "
        f"{pct(hs['false_rejects'], hs['genuine_pairs'])} |",
        "",
        "Held-out false rejects per corpus at the shipped threshold: "
        + ", ".join(
            f"{k} {v['false_rejects']} of {v['speakers']}"
            for k, v in s["held_out_frr_per_corpus_at_shipped"].items()
        )
        + "; by length: "
        + ", ".join(
            f"{k.replace('_', ' ')}: {v['false_rejects']} of {v['speakers']}"
            for k, v in s["held_out_false_rejects_by_length_at_shipped"].items()
        )
        + ". Gender is known only for speechocean762 speakers (the same-gender row).",
        f"Genuine median {s['genuine_median_held_out']:.3f}; same-corpus impostor 99th "
        f"percentile {s['impostor_same_corpus_p99_held_out']:.3f}.",
        "",
        "## Not-synthetic check on real consent-like recordings",
        "",
        f"The detector's threshold for consent, chosen on the train speakers' recordings "
        f"({real['train_recordings']}; at most {100 * dc['target_frr']:.0f} % called synthetic, "
        f"never below the detector's own {real['detector_own_threshold']:.3f}): "
        f"**{dc['threshold']:.2f}** (train called synthetic: {dc['train_called_synthetic']}; at "
        f"the detector's own threshold {dc['train_called_synthetic_at_own']}). The studio ships "
        "`ConsentConfig.detector_threshold` = "
        f"{real['held_out_at_shipped']['detector_threshold']}.",
        "",
        f"Held-out real recordings refused (each a false reject), of {real['recordings']}:",
        "",
        "| detector threshold | watermark present | detector says synthetic | refused |",
        "|---|---|---|---|",
        *(
            f"| {label} ({x['detector_threshold']:.3f}) | {x['watermark_present']} | "
            f"{x['detector_synthetic']} | {pct(x['refused'], real['recordings'])} |"
            for label, x in (
                ("the detector's own", real["held_out_at_detector_own"]),
                ("shipped for consent", real["held_out_at_shipped"]),
            )
        ),
        "",
        "Refused at the shipped consent threshold: "
        + (
            "; ".join(
                f"{x['speaker']} ({x['corpus']}, {x['seconds']:.1f} s: watermark "
                f"{x['watermark_score']:.2f} {'+'.join(x['watermark_found_by']) or '-'}, "
                f"detector {x['detector_probability']:.2f})"
                for x in real["held_out_at_shipped"]["refused_recordings"]
            )
            or "none"
        )
        + f". {real['seconds_per_recording']:.2f} s per recording (watermark + detector).",
        "",
        f"**All checks together** (speaker check at the shipped threshold, or refused above): "
        f"{pct(r['held_out_false_rejects']['refused'], r['held_out_false_rejects']['pairs'])} of "
        "held-out genuine consent recordings refused (the phrase check is not part of it: no "
        "real recording here says a challenge).",
        "",
        "## Phrase check",
        "",
        f"Replays (a real recording of the speaker that is not the phrase): "
        f"{rep['recordings']} held-out recordings x {REPLAYS_PER_CLIP} random challenges: "
        f"accepted at 4 of 4 words {pct(rep['accepted_at_4'], rep['challenges'])}, at 3 of 4 "
        f"{pct(rep['accepted_at_3'], rep['challenges'])}; words heard: "
        f"{rep['words_heard_histogram']}. Whisper-base "
        f"{rep['whisper_seconds_per_recording']:.2f} s per recording.",
        "",
        f"Synthetic readings of {tts['sentences']} challenge sentences "
        f"({', '.join(tts['readers'])}): "
        f"all 4 words heard in {pct(tts['phrases_all_4_heard'], tts['sentences'])}, 3 or more in "
        f"{pct(tts['phrases_3_or_more_heard'], tts['sentences'])} (the studio needs "
        f"{ConsentConfig().words_needed}); words "
        f"{pct(tts['words_heard'], tts['words_said'])}. "
        f"Missed words: {tts['missed_words'] or 'none'}. (A first run of this script "
        "pruned the word list: 13 words Whisper-base misheard or abbreviated were dropped, "
        "e.g. cotton as 'carton', tennis as '10 is', doctor as 'Dr.'; these are fresh "
        "sentences from the pruned list.)"
        " No real speaker read a challenge here: real voices, accents and microphones are harder.",
        "",
        f"The same readings as consent recordings: unwatermarked, the detector refused "
        f"{pct(tts['unwatermarked_caught_by_detector'], tts['sentences'])} at its own threshold "
        f"and {pct(tts['unwatermarked_caught_at_consent_threshold'], tts['sentences'])} at the "
        f"consent threshold (lowest probability {tts['detector_probability_min']:.3f}; Kokoro "
        "packs and Piper are generators it was trained on: optimistic, and a generator it has "
        "never seen is what a higher threshold lets through more easily); watermarked by the "
        f"studio, the watermark refused "
        f"{pct(tts['watermarked_caught_by_watermark'], tts['sentences'])}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

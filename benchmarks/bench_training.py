"""A short real training run of every stage on the shared corpus, on this CPU.

    .venv/bin/python benchmarks/bench_training.py --minutes 30          # per stage
    .venv/bin/python benchmarks/bench_training.py --minutes 5 --stages hifigan,transformer

1. `prepare` the corpus twice: 16 kHz (RTVC mel format: encoder, Tacotron, WaveRNN) and
   22.05 kHz (HiFi-GAN format: transformer, HiFi-GAN); clips per second are recorded.
2. Train each stage for a wall-clock budget, in chunks of steps continued with `--resume`
   (which also exercises resuming on real data), with the stage's default sizes.
3. Write loss curves (benchmarks/training/STAGE.png), steps per second and the last losses
   (benchmarks/training/results.{md,json}), and speak one test sentence with each trained
   pair (benchmarks/training/*.wav, Whisper's transcript and WER when the eval extra is there).

The work folder (prepared data, run folders with checkpoints and TensorBoard logs) is kept,
so a run can be continued: pass the same --work and a larger --minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from _output import add_overwrite_flag, refuse_to_overwrite
from bench_clone import machine

from deepfake_studio.training.common import TrainOptions, read_history

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "training"
SHARED_MANIFEST = ROOT.parent / "shared" / "data" / "speech" / "manifest.csv"
SENTENCE = "The birch canoe slid on the smooth planks."
# Batch sizes (and config overrides) for a 2-core CPU: the trainers' defaults are GPU-sized
# (e.g. HiFi-GAN at batch 16 took ~110 s per step here). Model sizes stay the defaults.
CPU_RUN: dict[str, tuple[int, dict[str, object]]] = {
    "encoder": (16, {}),  # speakers per batch, × 10 utterances
    "tacotron": (8, {}),
    "wavernn": (16, {}),
    "transformer": (8, {}),
    "hifigan": (4, {"segment_frames": 16}),
}

# stage name → (trainer module, prepared sample rate, run file)
STAGES: dict[str, tuple[str, int, str]] = {
    "encoder": ("deepfake_studio.encoder.train", 16_000, "encoder.pt"),
    "tacotron": ("deepfake_studio.synthesizer.train_tacotron", 16_000, "synthesizer.pt"),
    "wavernn": ("deepfake_studio.vocoder.train_wavernn", 16_000, "vocoder.pt"),
    "transformer": ("deepfake_studio.synthesizer.train_transformer", 22_050, "transformer.pt"),
    "hifigan": ("deepfake_studio.vocoder.train_hifigan", 22_050, "hifigan.pt"),
}


def prepare_corpus(manifest: Path, out: Path, sample_rate: int) -> dict[str, object]:
    from deepfake_studio.training.dataset import SPLITS, PreparedData
    from deepfake_studio.training.prepare import prepare

    started = time.perf_counter()
    summary = prepare(manifest, out, sample_rate=sample_rate, config=None, workers=0)
    seconds = time.perf_counter() - started
    data = PreparedData(out)
    counts = {split: len(data.utterances(split)) for split in SPLITS}
    hours = sum(u.n_samples for s in SPLITS for u in data.utterances(s)) / sample_rate / 3600
    return {"seconds": round(seconds, 1), "utterances": counts, "hours": round(hours, 3),
            "summary": str(summary)}  # fmt: skip


def train_for(stage: str, data: Path, run: Path, minutes: float, chunk: int) -> dict[str, object]:
    """Train `stage` in chunks of `chunk` steps until `minutes` of wall clock have passed."""
    module_name, _, run_file = STAGES[stage]
    module = importlib.import_module(module_name)
    batch_size, overrides = CPU_RUN[stage]
    config = None
    if overrides:
        config = run.parent / f"{stage}-config.json"
        config.write_text(json.dumps(overrides))
    options = TrainOptions(
        data_dir=data,
        run_dir=run,
        steps=0,
        batch_size=batch_size,
        learning_rate=module.DEFAULT_OPTIONS.learning_rate,
        checkpoint_every=10 * chunk,
        log_every=max(1, chunk // 5),
        progress=False,
    )
    done = first = _saved_step(run / run_file)
    started = time.perf_counter()
    load = []
    size = min(5, chunk)  # a short first chunk measures the step time
    while (left := 60 * minutes - (time.perf_counter() - started)) > 0:
        options = replace(options, steps=done + size, resume=done > 0)
        began = time.perf_counter()
        module.train(options, config if done == 0 else None)
        per_step = (time.perf_counter() - began) / size
        done += size
        load.append(os.getloadavg()[0])
        size = int(max(1, min(chunk, (left - per_step * size) / per_step)))
    seconds = time.perf_counter() - started
    earliest, last = losses(run / "logs" / _log_name(run, stage) / "history.csv")
    return {
        "steps": done,
        "seconds": round(seconds, 1),
        "steps_per_second": round((done - first) / seconds, 3),
        "batch_size": options.batch_size,
        "config_overrides": overrides,
        "first_logged": earliest,
        "last_logged": last,
        "load_average_median": round(sorted(load)[len(load) // 2], 2) if load else None,
    }


def encoder_eer(data_dir: Path, weights: Path | None) -> float:
    """Speaker-verification EER on the test speakers: cosine of every pair of utterances."""
    import numpy as np

    from deepfake_studio.detector.metrics import equal_error_rate
    from deepfake_studio.encoder import SpeakerEncoder
    from deepfake_studio.training.dataset import PreparedData

    data = PreparedData(data_dir)
    encoder = SpeakerEncoder(weights)
    utterances = data.utterances("test")
    embeddings = np.stack([encoder.embed(data.wav(u), data.sample_rate) for u in utterances])
    speakers = np.array([u.speaker for u in utterances])
    scores = embeddings @ embeddings.T
    upper = np.triu_indices(len(utterances), 1)
    same = (speakers[:, None] == speakers[None, :])[upper]
    eer, _ = equal_error_rate(bona_fide=scores[upper][~same], spoof=scores[upper][same])
    return round(100 * eer, 2)


def _saved_step(path: Path) -> int:
    if not path.exists():
        return 0
    from deepfake_studio.training.common import load_checkpoint

    return int(load_checkpoint(path)["step"])


LOG_FOLDERS = {"encoder": "encoder", "tacotron": "synthesizer", "wavernn": "vocoder",
               "transformer": "transformer", "hifigan": "hifigan"}  # fmt: skip


def _log_name(run: Path, stage: str) -> str:
    """The folder under RUN/logs that the stage's trainer writes."""
    return LOG_FOLDERS[stage]


def losses(history_path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(first, last) logged value of every loss in a history.csv."""
    history = read_history(history_path)
    names = [k for k in history if k not in ("step", "seconds")]
    return ({k: round(history[k][0], 4) for k in names},
            {k: round(history[k][-1], 4) for k in names})  # fmt: skip


def plot(stage: str, history_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(history_path)
    losses = [k for k in history if k not in ("step", "seconds")]
    fig, axes = plt.subplots(len(losses), 1, figsize=(7, 2.2 * len(losses)), sharex=True)
    axes = [axes] if len(losses) == 1 else list(axes)
    for axis, name in zip(axes, losses, strict=True):
        axis.plot(history["step"], history[name], linewidth=1)
        axis.set_ylabel(name, fontsize=8)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    fig.suptitle(f"{stage}: training losses on the shared corpus (2 CPU cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def speak(run: Path, engine_name: str, reference: Path, out: Path) -> dict[str, object]:
    """One sentence through the trained pair via Studio; its transcript when Whisper is there."""
    from deepfake_studio.audio import save_audio
    from deepfake_studio.studio import Studio, StudioConfig
    from deepfake_studio.synthesizer import EngineOptions

    studio = Studio(
        StudioConfig(
            data_dir=out.parent / "studio-home",
            engines=EngineOptions(sv2tts_dir=run, sv2tts_vocoder="wavernn", transformer_dir=run),
        )
    )
    started = time.perf_counter()
    audio = studio.clone(
        SENTENCE, reference=reference, engine=engine_name, consent="LJ Speech, public domain"
    )
    seconds = time.perf_counter() - started
    save_audio(audio, out)
    result: dict[str, object] = {
        "file": out.name,
        "seconds": round(seconds, 1),
        "audio_seconds": round(len(audio.samples) / audio.sample_rate, 2),
    }
    try:
        from deepfake_studio.evaluation.asr import Transcriber, word_error_rate

        words = Transcriber().transcribe(audio.samples, audio.sample_rate)
        result |= {"transcript": words, "wer": round(word_error_rate(SENTENCE, words), 3)}
    except ImportError:
        pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=SHARED_MANIFEST)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "training-bench")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall clock per stage")
    parser.add_argument("--chunk", type=int, default=50, help="steps between resumes")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument(
        "--report", action="store_true", help="only redo plots and tables from --work"
    )
    parser.add_argument(
        "--stage-minutes", default="", help="per-stage budgets overriding --minutes: encoder=3,..."
    )
    add_overwrite_flag(parser)
    args = parser.parse_args()
    refuse_to_overwrite([] if args.report else [OUT / "results.md"], args.overwrite)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    budgets = {stage: args.minutes for stage in stages}
    for item in filter(None, args.stage_minutes.split(",")):
        name, _, minutes = item.partition("=")
        budgets[name.strip()] = float(minutes)
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["machine"] = machine()
    results.setdefault("prepare", {})
    results.setdefault("stages", {})
    if args.report:
        for stage in results["stages"]:
            run = args.work / ("run-16k" if STAGES[stage][1] == 16_000 else "run-22k")
            history = run / "logs" / _log_name(run, stage) / "history.csv"
            first, last = losses(history)
            results["stages"][stage] |= {"first_logged": first, "last_logged": last}
            plot(stage, history, OUT / f"{stage}.png")
        results_path.write_text(json.dumps(results, indent=2))
        write_markdown(results, OUT / "results.md")
        return

    for rate in sorted({STAGES[s][1] for s in stages}):
        data = args.work / f"data-{rate}"
        print(f"prepare {rate} Hz → {data}", flush=True)
        results["prepare"][str(rate)] = prepare_corpus(args.manifest, data, rate)
    for stage in stages:
        rate = STAGES[stage][1]
        run = args.work / ("run-16k" if rate == 16_000 else "run-22k")
        print(f"train {stage} for {budgets[stage]} min → {run}", flush=True)
        results["stages"][stage] = train_for(
            stage, args.work / f"data-{rate}", run, budgets[stage], args.chunk
        )
        plot(stage, run / "logs" / _log_name(run, stage) / "history.csv", OUT / f"{stage}.png")
        results_path.write_text(json.dumps(results, indent=2))

    if "encoder" in stages:
        data16 = args.work / "data-16000"
        results["encoder_test_eer_percent"] = {
            "bundled": encoder_eer(data16, None),
            "fine_tuned": encoder_eer(data16, args.work / "run-16k" / "encoder.pt"),
        }
    reference = ROOT / "examples" / "lj_reference.flac"
    results["samples"] = {}
    if {"tacotron"} <= set(results["stages"]):
        results["samples"]["sv2tts"] = speak(
            args.work / "run-16k", "sv2tts", reference, OUT / "sv2tts.wav"
        )
    if {"transformer"} <= set(results["stages"]):
        results["samples"]["transformer"] = speak(
            args.work / "run-22k", "transformer", reference, OUT / "transformer.wav"
        )
    results_path.write_text(json.dumps(results, indent=2))
    write_markdown(results, OUT / "results.md")
    print((OUT / "results.md").read_text())


def write_markdown(results: dict, out: Path) -> None:  # type: ignore[type-arg]
    m = results["machine"]
    lines = [
        "# Training on the shared corpus, 2 CPU cores",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']}; "
        f"load average at start {m['load_average_at_start']}. Written by "
        "`benchmarks/bench_training.py`.",
        "",
        "## prepare",
        "",
        "| sample rate | utterances train / val / test | hours | seconds |",
        "|---|---|---|---|",
    ]
    for rate, p in results["prepare"].items():
        u = p["utterances"]
        lines.append(f"| {rate} | {u['train']} / {u['val']} / {u['test']} | {p['hours']} "
                     f"| {p['seconds']} |")  # fmt: skip
    lines += [
        "",
        "## training",
        "",
        "| stage | steps | minutes | steps/s | batch | first logged losses | last logged losses "
        "| load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, s in results["stages"].items():
        first = ", ".join(f"{k} {v}" for k, v in s["first_logged"].items())
        last = ", ".join(f"{k} {v}" for k, v in s["last_logged"].items())
        lines.append(
            f"| {stage} | {s['steps']} | {s['seconds'] / 60:.1f} | {s['steps_per_second']} "
            f"| {s['batch_size']} | {first} | {last} | {s['load_average_median']} |"
        )
    if "encoder_test_eer_percent" in results:
        e = results["encoder_test_eer_percent"]
        lines += ["", f"Encoder, speaker-verification EER over all pairs of test-split utterances "
                  f"(speakers never seen in training): bundled weights {e['bundled']} %, after "
                  f"fine-tuning {e['fine_tuned']} %."]  # fmt: skip
    if results.get("samples"):
        lines += ["", "## what the trained pairs say", "", f"Text: “{SENTENCE}”", "",
                  "| engine | file | audio s | synthesis s | Whisper transcript | WER |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for engine, s in results["samples"].items():
            lines.append(
                f"| {engine} | {s['file']} | {s['audio_seconds']} | {s['seconds']} "
                f"| {s.get('transcript', '–')} | {s.get('wer', '–')} |"
            )
    lines += ["", "Loss curves: " + ", ".join(f"`{s}.png`" for s in results["stages"]), ""]
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()

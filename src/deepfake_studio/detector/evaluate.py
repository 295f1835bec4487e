"""Evaluate the detector on the test speakers of a built data set, as ASVspoof would.

* seen: the shipped model on every generator it was trained on (pooled, and per generator);
* leave-one-family-out ("unseen", LOGO by family): for each generator family a model trained
  without any of its members (train.py with `exclude_generators`), tested on real test speech
  against that family's generators. Families, not single generators, are left out because
  near-twins would otherwise stay in training (festival and flite share voices built with the
  same Festvox tools; Kokoro clones and Kokoro packs are the same network): see
  `GENERATOR_FAMILIES`;
* each with and without test-time augmentation (the clean test clips, and their augmented
  copies: noise, codecs, telephone band, pitch, shift, gain), plus EER per augmentation kind;
* the false-positive rate on real test speech at the shipped threshold.

Everything is scored through `infer.Detector`, i.e. the ONNX model and windowing a user gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deepfake_studio.audio import Audio
from deepfake_studio.detector.augment import AUGMENTATIONS, CODECS
from deepfake_studio.detector.data import read_manifest
from deepfake_studio.detector.infer import Detector, DetectorConfig
from deepfake_studio.detector.metrics import det_curve, equal_error_rate, rates_at
from deepfake_studio.errors import StudioError

Log = Callable[[str], None]

# Which generators are near-twins, for the leave-one-family-out protocol. Every generator of
# data.GENERATORS must have a family (tests/detector/test_heldout.py checks it).
GENERATOR_FAMILIES: dict[str, str] = {
    "kokoro-clone": "kokoro",  # the same Kokoro-82M network, a fitted style instead of a pack
    "kokoro": "kokoro",
    "kokoro-varied": "kokoro",  # the same network again, other styles and prosody
    # Today's studio clones at each enrollment quality (data.CLONE_PREFIX), of more speakers
    "kokoro-clone-quick": "kokoro",
    "kokoro-clone-standard": "kokoro",
    "kokoro-clone-best": "kokoro",
    "piper": "piper",  # VITS (end to end)
    "espeak-ng": "espeak-ng",  # formant synthesis
    "flite": "festvox",  # flite and festival: Festvox-built diphone / clustergen / HTS voices
    "festival": "festvox",  # (kal, slt and awb exist in both)
    "world": "world",  # copy-synthesis of real speech, WORLD vocoder
    "griffin-lim": "griffin-lim",  # copy-synthesis of real speech, Griffin-Lim phase recovery
    "hifigan-resynth": "hifigan",  # copy-synthesis of real speech, the project's HiFi-GAN
}


def logo_groups(generators: tuple[str, ...] | list[str]) -> dict[str, tuple[str, ...]]:
    """Family → the generators of a data set left out together in one "unseen" run."""
    unknown = [name for name in generators if name not in GENERATOR_FAMILIES]
    if unknown:
        raise StudioError(
            f"no generator family for {', '.join(unknown)}: add it to GENERATOR_FAMILIES"
        )
    groups: dict[str, tuple[str, ...]] = {}
    for name in generators:
        family = GENERATOR_FAMILIES[name]
        groups[family] = (*groups.get(family, ()), name)
    return groups


@dataclass(frozen=True)
class EvalConfig:
    """What `evaluate` measures."""

    split: str = "test"
    logo: bool = True  # train and test one leave-one-generator-out model per generator
    logo_epochs: int = 6  # shorter than the shipped model's training: 6 runs must fit a session
    threads: int = 2


def score_rows(detector: Detector, data_dir: Path, rows: list[dict[str, object]]) -> np.ndarray:
    """Calibrated probabilities of the clips of `rows`."""
    import soundfile as sf

    out = np.zeros(len(rows))
    for i, row in enumerate(rows):
        samples, rate = sf.read(str(Path(data_dir) / str(row["path"])), dtype="float32")
        out[i] = detector.detect(Audio(samples, rate)).probability
    return out


def _eer_block(rows: list[dict[str, object]], p: np.ndarray, threshold: float) -> dict:
    """EER (pooled and per generator) and rates at the threshold, for one condition."""
    real = np.array([r["label"] == "bonafide" for r in rows])
    generators = sorted({str(r["generator"]) for r in rows} - {"bonafide"})
    gen = np.array([str(r["generator"]) for r in rows])
    eer, _ = equal_error_rate(p[real], p[~real])
    fpr, miss = rates_at(p[real], p[~real], threshold)
    per = {g: equal_error_rate(p[real], p[gen == g])[0] for g in generators}
    missed = {g: rates_at(p[real], p[gen == g], threshold)[1] for g in generators}
    return {
        "real": int(real.sum()),
        "spoof": int((~real).sum()),
        "eer": eer,
        "fpr_at_threshold": fpr,
        "miss_at_threshold": miss,
        "per_generator_eer": per,
        "per_generator_miss_at_threshold": missed,
    }


def held_out_real_rows(
    rows: list[dict[str, object]], sources: tuple[str, ...]
) -> list[dict[str, object]]:
    """Real clips (every split) whose source starts with one of `sources`: recording conditions
    a model was trained without (its card's `train.exclude_real_sources`)."""
    if not sources:
        return []
    return [
        r for r in rows if r["label"] == "bonafide" and str(r.get("source", "")).startswith(sources)
    ]


def held_out_real_result(detector: Detector, data_dir: Path) -> dict | None:
    """False positives at the model's threshold on the real speech it was trained without,
    per corpus and condition (clean / augmented copy); None if it was trained on all of it."""
    sources = tuple(detector.card.get("train", {}).get("exclude_real_sources", ()))
    rows = held_out_real_rows([r for r in read_manifest(data_dir) if "error" not in r], sources)
    if not rows:
        return None
    p = score_rows(detector, data_dir, rows)
    result: dict = {"sources": list(sources)}
    for condition in ("clean", "augmented"):
        keep = np.array([(r["augment"] == "none") == (condition == "clean") for r in rows])
        corpus = np.array([str(r["source"]).split("/")[0] for r in rows])
        result[condition] = {
            str(c): {
                "clips": int((keep & (corpus == c)).sum()),
                "fpr_at_threshold": float((p[keep & (corpus == c)] >= detector.threshold).mean()),
            }
            for c in sorted(set(corpus[keep]))
        }
    return result


def evaluate_model(
    detector: Detector, data_dir: Path, split: str, generators: tuple[str, ...] | None = None
) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Clean and augmented results of one model; also the raw scores for plots. Real clips of
    the sources the model was trained without are left out (`held_out_real_result` has them)."""
    sources = tuple(detector.card.get("train", {}).get("exclude_real_sources", ()))
    every = read_manifest(data_dir)
    held = {id(r) for r in held_out_real_rows(every, sources)}
    rows = [r for r in every if "error" not in r and r["split"] == split and id(r) not in held]
    if generators is not None:
        rows = [r for r in rows if r["label"] == "bonafide" or r["generator"] in generators]
    if not rows:
        raise StudioError(f"no {split} clips in {data_dir}")
    p = score_rows(detector, data_dir, rows)
    clean = np.array([r["augment"] == "none" for r in rows])
    result: dict = {}
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, mask in (("clean", clean), ("augmented", ~clean)):
        subset = [r for r, m in zip(rows, mask, strict=True) if m]
        real = np.array([r["label"] == "bonafide" for r in subset])
        result[name] = _eer_block(subset, p[mask], detector.threshold)
        scores[name] = (p[mask][real], p[mask][~real])
    kinds: dict[str, float] = {}
    for kind in AUGMENTATIONS:  # EER over the augmented clips whose chain included `kind`
        prefix = {"codec": tuple(CODECS), "telephone": ("tel",)}.get(kind, (kind,))
        mask = (
            np.array(
                [
                    any(step.startswith(prefix) for step in str(r["augment"]).split("+"))
                    for r in rows
                ]
            )
            & ~clean
        )
        real = np.array([r["label"] == "bonafide" for r in rows])
        if (mask & real).any() and (mask & ~real).any():
            kinds[kind] = equal_error_rate(p[mask & real], p[mask & ~real])[0]
    result["augmented"]["eer_by_augmentation"] = kinds
    return result, scores


def evaluate(
    data_dir: Path,
    runs_dir: Path,
    config: EvalConfig | None = None,
    *,
    detector: DetectorConfig | None = None,
    log: Log = print,
) -> dict:
    """Seen-generator results of the (shipped) model and, if asked, the LOGO runs (trained
    with the evaluated model's settings, for `logo_epochs`)."""
    config = config or EvalConfig()
    data_dir, runs_dir = Path(data_dir), Path(runs_dir)
    shipped = Detector(replace(detector or DetectorConfig(), threads=config.threads))
    log(f"scoring the {config.split} split with the shipped model")
    seen, scores = evaluate_model(shipped, data_dir, config.split)
    report: dict = {
        "data": str(data_dir),
        "split": config.split,
        "threshold": shipped.threshold,
        "seen": seen,
        "logo": {},
    }
    if (held_out := held_out_real_result(shipped, data_dir)) is not None:
        report["held_out_real"] = held_out
    if config.logo:
        from deepfake_studio.detector.train import config_of, train

        built = json.loads((data_dir / "config.json").read_text(encoding="utf-8"))
        for family, members in logo_groups(built["generators"]).items():
            run = runs_dir / f"logo-family-{family}"
            if not (run / "detector.onnx").exists():
                log(f"training without {', '.join(members)} ({config.logo_epochs} epochs)")
                train_config = replace(
                    config_of(shipped.card),  # trained like the evaluated model, but shorter
                    epochs=config.logo_epochs,
                    exclude_generators=members,
                    threads=config.threads,
                    init_onnx="",  # from scratch: a fine-tuned model's start saw the family
                )
                train(data_dir, run, train_config, resume=True, log=log)
            held_out = Detector(DetectorConfig(weights_dir=run, threads=config.threads))
            result, _ = evaluate_model(held_out, data_dir, config.split, members)
            for generator in members:  # each member against real speech, by the family's model
                report["logo"][generator] = {
                    "family": family,
                    "clean_eer": result["clean"]["per_generator_eer"][generator],
                    "augmented_eer": result["augmented"]["per_generator_eer"][generator],
                }
                unseen = report["logo"][generator]
                log(f"LOGO ({family} left out) {generator}: EER "
                    f"{100 * unseen['clean_eer']:.2f} % clean, "
                    f"{100 * unseen['augmented_eer']:.2f} % augmented")  # fmt: skip
        values = list(report["logo"].values())
        report["logo_mean"] = {
            "clean_eer": float(np.mean([v["clean_eer"] for v in values])),
            "augmented_eer": float(np.mean([v["augmented_eer"] for v in values])),
        }
    report["_scores"] = scores  # for the plot; dropped before writing JSON
    return report


def plot_det(scores: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """DET curves (normal-deviate axes, as in ASVspoof papers) of each condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=100)
    for name, (real, spoof) in scores.items():
        curve = det_curve(real, spoof)
        eer, _ = equal_error_rate(real, spoof)
        fa = np.clip(curve.false_alarm, 5e-4, 1 - 5e-4)
        miss = np.clip(curve.miss, 5e-4, 1 - 5e-4)
        ax.plot(norm.ppf(fa), norm.ppf(miss), label=f"{name} (EER {100 * eer:.2f} %)")
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([0.0008, 0.45])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, color="0.8", lw=0.8)
    ax.set_xlabel("real speech flagged as synthetic (%)")
    ax.set_ylabel("synthetic speech missed (%)")
    ax.set_title("Detector DET curve, test speakers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


REPORT_FILES = ("detector_eval.json", "detector_eval.md", "detector_det.png")  # write_report's


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path, Path]:
    """benchmarks-style outputs: JSON, a markdown table and the DET plot."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = report.pop("_scores")
    json_path = out_dir / "detector_eval.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    png = plot_det(scores, out_dir / "detector_det.png")
    md = out_dir / "detector_eval.md"
    heldout_file = out_dir / "detector_heldout.json"
    heldout = None
    if heldout_file.exists():
        heldout = json.loads(heldout_file.read_text(encoding="utf-8"))
    md.write_text(markdown_table(report, heldout), encoding="utf-8")
    return json_path, md, png


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def markdown_table(report: dict, heldout: dict | None = None) -> str:
    """The report as markdown; with `heldout` (benchmarks/detector_heldout.json, written by
    benchmarks/detector_heldout.py) also the held-out figures next to the test ones."""
    seen = report["seen"]
    by_family = all("family" in v for v in report["logo"].values())
    lines = [
        "**Measured after selection.** The LFCC settings, the shipped checkpoint and the "
        "threshold rule were chosen by comparing results on these test speakers, so the seen "
        "figures below are optimistic. The frozen held-out set (`detector/heldout.json`, "
        "speakers and generator settings outside all tuning) gives the unselected figures: "
        "benchmarks/detector_heldout.md.",
        "",
        "Unseen columns: "
        + (
            "one model per generator family (`evaluate.GENERATOR_FAMILIES`), trained without "
            "every member of the family and tested on each member."
            if by_family or not report["logo"]
            else "one model per single generator left out, with its near-twin still in "
            "training (flite for festival and back; Kokoro packs for Kokoro clones and back), "
            "so these understate how unseen generators fare. The leave-one-family-out runs "
            "`eval detect` now makes (`evaluate.GENERATOR_FAMILIES`) are **not yet measured**."
        ),
        "",
        "| generator | seen EER, clean | seen EER, augmented "
        + (
            "| unseen EER (family left out), clean | unseen EER (family left out), augmented |"
            if by_family
            else "| LOGO EER (one generator left out), clean | LOGO EER, augmented |"
        ),
        "|---|---|---|---|---|",
    ]
    for g in sorted(seen["clean"]["per_generator_eer"]):
        logo = report["logo"].get(g, {})
        lines.append(
            f"| {g} | {_pct(seen['clean']['per_generator_eer'][g])} "
            f"| {_pct(seen['augmented']['per_generator_eer'].get(g, float('nan')))} "
            f"| {_pct(logo['clean_eer']) if logo else '-'} "
            f"| {_pct(logo['augmented_eer']) if logo else '-'} |"
        )
    mean = report.get("logo_mean")
    lines.append(
        f"| **all (pooled)** | **{_pct(seen['clean']['eer'])}** "
        f"| **{_pct(seen['augmented']['eer'])}** "
        f"| **{_pct(mean['clean_eer']) if mean else '-'}** (mean) "
        f"| **{_pct(mean['augmented_eer']) if mean else '-'}** (mean) |"
    )
    lines += [
        "",
        f"At the shipped threshold ({report['threshold']:.3f}): false positives on real "
        "test speech "
        f"{_pct(seen['clean']['fpr_at_threshold'])} clean ({seen['clean']['real']} clips), "
        f"{_pct(seen['augmented']['fpr_at_threshold'])} augmented; synthetic missed "
        f"{_pct(seen['clean']['miss_at_threshold'])} clean, "
        f"{_pct(seen['augmented']['miss_at_threshold'])} augmented "
        f"({seen['clean']['spoof']} synthetic clips per condition).",
        "",
        "EER on augmented test clips by augmentation in the chain: "
        + ", ".join(f"{k} {_pct(v)}" for k, v in seen["augmented"]["eer_by_augmentation"].items())
        + ".",
        "",
    ]
    if "held_out_real" in report:
        held = report["held_out_real"]
        lines += [
            "False positives at the threshold on real speech of sources kept out of training "
            "(all splits; clean / augmented copies): "
            + ", ".join(
                f"{corpus} {_pct(v['fpr_at_threshold'])} / "
                f"{_pct(held['augmented'][corpus]['fpr_at_threshold'])} ({v['clips']} clips)"
                for corpus, v in held["clean"].items()
            )
            + ".",
            "",
        ]
    if heldout is not None:
        c, a = heldout["clean"], heldout["augmented"]
        per = c["per_generator_miss_at_threshold"]
        lines += [
            "## Held-out set (never used for any choice)",
            "",
            "| | test split (after selection) | held-out (detector/heldout.json) |",
            "|---|---|---|",
            f"| EER, clean | {_pct(seen['clean']['eer'])} | {_pct(c['eer'])} |",
            f"| EER, augmented | {_pct(seen['augmented']['eer'])} | {_pct(a['eer'])} |",
            f"| false positives at {report['threshold']:.3f}, clean "
            f"| {_pct(seen['clean']['fpr_at_threshold'])} ({seen['clean']['real']} clips) "
            f"| {_pct(c['fpr_at_threshold'])} ({c['real']} clips) |",
            f"| false positives, augmented | {_pct(seen['augmented']['fpr_at_threshold'])} "
            f"| {_pct(a['fpr_at_threshold'])} |",
            f"| synthetic missed, clean | {_pct(seen['clean']['miss_at_threshold'])} "
            f"({seen['clean']['spoof']} clips) | {_pct(c['miss_at_threshold'])} "
            f"({c['spoof']} clips) |",
            f"| synthetic missed, augmented | {_pct(seen['augmented']['miss_at_threshold'])} "
            f"| {_pct(a['miss_at_threshold'])} |",
            "",
            "Held-out synthetic missed at the threshold, clean, per generator (settings training "
            "never used): " + ", ".join(f"{g} {_pct(v)}" for g, v in sorted(per.items())) + ".",
            "Held-out real speech is EmoDB's 10 German actors (acted, 2 s clips): the only real "
            "speakers outside every split"
            + (
                f"; on their neutral clips alone {_pct(c['fpr_at_threshold_neutral'])} "
                f"({c['real_neutral']} clips) are flagged, on angry ones "
                f"{_pct(c['fpr_by_emotion']['angry']['fpr_at_threshold'])}"
                if "fpr_by_emotion" in c
                else ""
            )
            + ". Details: benchmarks/detector_heldout.md.",
            "",
        ]
    return "\n".join(lines)

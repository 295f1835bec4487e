"""Zero-shot voice fitting for Kokoro: find the style table that sounds most like a reference.

Kokoro has no speaker encoder of its own: a voice is a [510, 256] style table. We treat
voice cloning as black-box optimisation in style space, scored by our GE2E speaker encoder:

1. Screen the bundled style packs (and a GE2E-weighted mix of them) by the cosine between
   the embedding of Kokoro's speech (short probe sentences) and the reference embedding.
   The best is the *start*.
2. Evolution strategy over a low-dimensional basis of style space — the principal
   directions of the packs plus random directions scaled by the packs' per-dimension spread
   — maximising the mean probe cosine minus a penalty on the step's norm. The result is the
   start table plus one 256-d delta applied to every row (rows only differ by utterance
   length), clipped to the range the packs span.
3. Guard against fooling GE2E (a few short probes are a noisy, gameable objective): re-score
   the winner and the start on a held-out sentence and keep the winner only if it is better.
4. Match the speaking rate (`rate.match_rate`).

Everything random comes from one `numpy.random.Generator(seed)`, so a fit is repeatable.
The cost is dominated by Kokoro runs; `FitConfig` sets how many (about 30 s on 2 cores
with the defaults).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from deepfake_studio.synthesizer.base import Conditioning, ProgressCallback
from deepfake_studio.synthesizer.rate import match_rate

if TYPE_CHECKING:
    from deepfake_studio.audio import Audio
    from deepfake_studio.encoder import SpeakerEncoder
    from deepfake_studio.synthesizer.kokoro import KokoroEngine

# Short, phonetically varied sentences (Harvard lists). Short keeps each Kokoro run cheap;
# two of them keep the search from tuning a voice to one sentence.
PROBE_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
)
HOLDOUT_SENTENCE = "It's easy to tell the depth of a well, when the water is clear."


@dataclass(frozen=True)
class FitConfig:
    """Budget and search settings of `fit_voice` (the defaults fit ~30 s on 2 cores)."""

    probe_sentences: tuple[str, ...] = PROBE_SENTENCES
    holdout_sentence: str | None = HOLDOUT_SENTENCE  # None: skip the held-out check
    try_mix: bool = True  # also score a GE2E-weighted mix of the packs as a start
    mix_temperature: float = 0.02  # softmax temperature over pack cosines for that mix
    principal_directions: int = 4  # of the packs (5 packs span at most 4)
    random_directions: int = 8
    generations: int = 2
    population: int = 4  # candidates per generation (antithetic pairs: keep it even)
    elite: int = 2  # candidates recombined into the next mean
    step: float = 0.6  # initial ES step, in units of the packs' spread per direction
    step_decay: float = 0.75  # per generation: later generations refine
    norm_penalty: float = 0.01  # fitness -= penalty * |coords|^2: stay near real voices
    max_radius: float = 3.0  # coordinates are kept inside this ball
    clip_margin: float = 0.5  # table clipped to pack range ± margin x per-dim spread
    min_holdout_gain: float = 0.0  # the fit must beat the start by this on the held-out
    match_speed: bool = True
    time_limit: float | None = None  # seconds; stops the search early (then not repeatable)


def fit_voice(
    engine: KokoroEngine,
    reference: Audio,
    encoder: SpeakerEncoder,
    *,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    config: FitConfig | None = None,
) -> Conditioning:
    """Style table (+ speed) that makes `engine` sound like the speaker of `reference`."""
    cfg = config or FitConfig()
    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    packs = engine.style_packs
    names = sorted(packs)
    probes = [_phonemes(engine, s) for s in cfg.probe_sentences]
    target = encoder.embed(reference.samples, reference.sample_rate)

    n_packs = len(names) + int(cfg.try_mix)
    total = (n_packs + cfg.generations * cfg.population) * len(probes) + 2 * bool(
        cfg.holdout_sentence
    ) + 2 * cfg.match_speed
    counter = _Counter(total, progress)

    def score(tables: list[np.ndarray], phoneme_list: list[str]) -> np.ndarray:
        """(n_tables, n_sentences) GE2E cosines to the reference."""
        clips = []
        for table in tables:
            for ph in phoneme_list:
                clips.append(engine.synthesize_phonemes(ph, table, 1.0))
                counter.step("searching for the voice", len(clips[-1]) / engine.sample_rate)
        embeds = encoder.embed_batch(clips, engine.sample_rate)
        return (embeds @ target).reshape(len(tables), len(phoneme_list))

    # 1. The start: best bundled pack, or a mix of packs weighted by how close each sounds.
    pack_scores = score([packs[n] for n in names], probes).mean(axis=1)
    best = int(np.argmax(pack_scores))
    start_name, start, start_score = names[best], packs[names[best]], float(pack_scores[best])
    if cfg.try_mix:
        weights = np.exp((pack_scores - pack_scores.max()) / cfg.mix_temperature)
        weights /= weights.sum()
        mix = np.tensordot(weights, np.stack([packs[n] for n in names]), axes=1)
        mix_score = float(score([mix], probes).mean())
        if mix_score > start_score:
            start_name, start, start_score = "mix", mix.astype(np.float32), mix_score

    # 2. Evolution strategy in a small basis around the start.
    basis = style_basis(packs, cfg.principal_directions, cfg.random_directions, rng)
    low, high = _plausible_range(packs, cfg.clip_margin)

    def table_for(coords: np.ndarray) -> np.ndarray:
        return np.clip(start + coords @ basis, low, high).astype(np.float32)

    dim = basis.shape[0]
    mean = np.zeros(dim)
    best_coords, best_fitness, best_cos = mean.copy(), start_score, start_score
    sigma = cfg.step
    log_w = np.log(cfg.elite + 0.5) - np.log(np.arange(1, cfg.elite + 1))
    recomb = log_w / log_w.sum()  # CMA-ES style weights: the best counts most
    evaluations = 0
    for _gen in range(cfg.generations):
        if cfg.time_limit is not None and time.monotonic() - t0 > cfg.time_limit:
            break
        half = rng.standard_normal((cfg.population // 2 + cfg.population % 2, dim))
        # Antithetic pairs cancel the first-order noise of a tiny population.
        steps = np.concatenate([half, -half])[: cfg.population]
        cands = [_in_ball(mean + sigma * z, cfg.max_radius) for z in steps]
        cos = score([table_for(c) for c in cands], probes).mean(axis=1)
        fitness = cos - cfg.norm_penalty * np.array([c @ c for c in cands])
        evaluations += len(cands)
        order = np.argsort(-fitness)
        if fitness[order[0]] > best_fitness:
            best_coords, best_fitness = cands[order[0]], float(fitness[order[0]])
            best_cos = float(cos[order[0]])
        mean = np.sum([recomb[i] * cands[j] for i, j in enumerate(order[: cfg.elite])], axis=0)
        sigma *= cfg.step_decay

    fitted = table_for(best_coords)
    chosen, name = fitted, "fit"
    holdout = {}
    # 3. Held-out check: the search may have found a table that only fools GE2E on the probes.
    if cfg.holdout_sentence and evaluations and best_fitness > start_score:
        h = score([start, fitted], [_phonemes(engine, cfg.holdout_sentence)])[:, 0]
        holdout = {"holdout_start": float(h[0]), "holdout_fit": float(h[1])}
        if h[1] <= h[0] + cfg.min_holdout_gain:
            chosen, name = start, start_name
    elif not evaluations or best_fitness <= start_score:
        chosen, name = start, start_name

    conditioning = Conditioning(engine=engine.name, arrays={"style": chosen})
    # 4. Speaking rate, measured with the chosen voice itself.
    if cfg.match_speed:
        counter.step("matching the speaking rate")
        conditioning.speed = match_rate(engine, reference, conditioning)
        counter.step("matching the speaking rate")
    conditioning.info = {
        "method": "kokoro-fit-es",
        "result": name,
        "best_pack": names[best],
        "ge2e_best_pack": round(float(pack_scores[best]), 4),
        "start": start_name,
        "ge2e_start": round(start_score, 4),
        "ge2e_fit": round(best_cos, 4),
        "evaluations": counter.done,
        "audio_seconds": round(counter.audio_seconds, 1),
        "basis": dim,
        "seed": seed,
        "delta_norm": round(float(np.linalg.norm(best_coords @ basis)), 4),
        "seconds": round(time.monotonic() - t0, 2),
        **{k: round(v, 4) for k, v in holdout.items()},
    }
    if progress:
        progress(1.0, "voice fitted")
    return conditioning


def style_basis(
    packs: dict[str, np.ndarray], principal: int, random: int, rng: np.random.Generator
) -> np.ndarray:
    """(principal + random, 256) search directions, each of norm ~ one typical pack spread.

    Principal directions of the pack means capture what already varies between real voices;
    random directions (scaled per dimension by the packs' spread, so they respect which
    dimensions the model actually uses) let the search leave the packs' span.
    """
    means = np.stack([packs[n].mean(axis=0) for n in sorted(packs)]).astype(np.float64)
    centred = means - means.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    principal = min(principal, int(np.sum(sing > 1e-6 * sing[0])))
    spread = centred.std(axis=0)
    # Unit of a step: the RMS distance of a pack from the pack centroid.
    unit = float(np.sqrt(np.mean(np.sum(centred**2, axis=1))))
    directions = [vt[k] for k in range(principal)]
    for _ in range(random):
        d = rng.standard_normal(spread.shape) * spread
        directions.append(d / np.linalg.norm(d))
    return (np.stack(directions) * unit * 0.5).astype(np.float32)


def _plausible_range(packs: dict[str, np.ndarray], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (256,) bounds: the packs' range widened by `margin` x their spread."""
    stacked = np.stack(list(packs.values()))  # [packs, 510, 256]
    spread = stacked.mean(axis=1).std(axis=0)
    low = stacked.min(axis=(0, 1)) - margin * spread
    high = stacked.max(axis=(0, 1)) + margin * spread
    return low, high


def _in_ball(x: np.ndarray, radius: float) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x if norm <= radius else x * (radius / norm)


def _phonemes(engine: KokoroEngine, sentence: str) -> str:
    """A probe sentence as one Kokoro phoneme string."""
    return " ".join(engine.phonemes(sentence))


class _Counter:
    """Counts Kokoro runs and reports progress as their fraction of the planned total."""

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.total, self.done, self.progress = max(total, 1), 0, progress
        self.audio_seconds = 0.0  # Kokoro's output: the machine-independent cost

    def step(self, text: str, audio_seconds: float = 0.0) -> None:
        self.done += 1
        self.audio_seconds += audio_seconds
        if self.progress:
            self.progress(min(0.99, self.done / self.total), text)

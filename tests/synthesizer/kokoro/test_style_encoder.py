"""The style encoder: fitted train voices → a style table for a new reference, by d-vector.

The targets here are made by hand from real clips (a fit takes minutes): what is checked is
how a table is read from them and how the builder recovers what a fit stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfake_studio.audio import load_audio, trim_silence
from deepfake_studio.errors import EngineError
from deepfake_studio.synthesizer.kokoro.style_encoder import (
    PACK_BY_CLASS,
    StyleEncoder,
    StyleEncoderConfig,
)
from deepfake_studio.synthesizer.kokoro.train_style_encoder import build_encoder, target_files


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _packs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.normal(size=(510, 256)).astype(np.float32) for name in PACK_BY_CLASS.values()}


def test_the_table_is_the_class_pack_moved_by_the_nearest_voices() -> None:
    packs = _packs()
    rng = np.random.default_rng(1)
    embeddings = np.stack([_unit(rng.normal(size=256)) for _ in range(4)])
    moves = rng.normal(size=(4, 256)).astype(np.float32)
    rows = np.array([10, 50, 90, 130])
    male = np.array([False, False, True, True])
    styles = np.stack(
        [packs[PACK_BY_CLASS[bool(m)]][r] + d for m, r, d in zip(male, rows, moves, strict=True)]
    )
    encoder = StyleEncoder(
        speakers=np.array(["a", "b", "c", "d"]),
        embeddings=embeddings,
        male=male,
        styles=styles,
        rows=rows,
        config=StyleEncoderConfig(neighbours=1),
    )
    # The nearest female voice is "b": its move from the female pack, on every row.
    table, info = encoder.style_table(embeddings[1], False, packs)
    np.testing.assert_allclose(table, packs["jf_alpha"] + moves[1], atol=1e-5)
    assert info["neighbours"] == "b" and info["pack"] == "jf_alpha"
    # A male reference only borrows from male voices, even when a female one is nearer.
    table, info = encoder.style_table(embeddings[0], True, packs)
    assert info["neighbours"] in ("c", "d") and info["pack"] == "jm_kumo"
    # Two neighbours: a weighted mean of their moves, weights summing to one.
    both = StyleEncoder(**{**encoder.__dict__, "config": StyleEncoderConfig(neighbours=2)})
    table, info = both.style_table(_unit(embeddings[0] + embeddings[1]), False, packs)
    weights = [float(w) for w in str(info["neighbour_weights"]).split(",")]
    assert sum(weights) == pytest.approx(1.0, abs=1e-3)
    assert set(str(info["neighbours"]).split(",")) == {"a", "b"}
    between = table - packs["jf_alpha"]
    assert np.allclose(between[0], between[300])  # one move for every row
    assert np.abs(between[0] - 0.5 * (moves[0] + moves[1])).max() < np.abs(moves).max()


def test_a_saved_encoder_loads_back_and_a_damaged_file_is_one_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    encoder = StyleEncoder(
        speakers=np.array(["x"]),
        embeddings=_unit(rng.normal(size=256))[None],
        male=np.array([True]),
        styles=rng.normal(size=(1, 256)).astype(np.float32),
        rows=np.array([7]),
    )
    encoder.save(tmp_path / "enc.npz")
    loaded = StyleEncoder.load(tmp_path / "enc.npz")
    np.testing.assert_array_equal(loaded.styles, encoder.styles)
    assert list(loaded.speakers) == ["x"] and bool(loaded.male[0]) and int(loaded.rows[0]) == 7
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(EngineError) as err:
        StyleEncoder.load(tmp_path / "bad.npz")
    assert "\n" not in str(err.value) and "cannot read the style encoder" in str(err.value)
    with pytest.raises(EngineError, match="empty"):
        StyleEncoder(
            speakers=np.array([]),
            embeddings=np.zeros((0, 256)),
            male=np.array([]),
            styles=np.zeros((0, 256)),
            rows=np.array([]),
        )


def test_the_builder_recovers_each_fits_row_class_and_style(
    studio, speech_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    packs = studio.engine("kokoro").style_packs
    clips = {
        "VCC16_SF1": ("vcc2016/VCC16_SF1", "jf_nezumi", 120, False),
        "VCC16_SM1": ("vcc2016/VCC16_SM1", "jm_kumo", 80, True),
    }
    rng = np.random.default_rng(3)
    for speaker, (folder, pack, row, _) in clips.items():
        path = sorted((speech_dir / folder).glob("*.flac"))[0]
        reference = trim_silence(load_audio(path, 16_000))
        np.savez(
            tmp_path / f"{speaker}.npz",
            reference=reference.samples.astype(np.float16),
            start_pack=np.array(pack),
            start_row=packs[pack][row],
            delta=rng.normal(scale=0.1, size=256).astype(np.float32),
        )
    (tmp_path / "LS1.part.npz").write_bytes(b"a fit that was stopped")
    assert [p.stem for p in target_files(tmp_path)] == ["VCC16_SF1", "VCC16_SM1"]
    encoder = build_encoder(tmp_path, studio.encoder, packs)
    for i, (speaker, (_, pack, row, male)) in enumerate(clips.items()):
        assert encoder.speakers[i] == speaker
        assert int(encoder.rows[i]) == row  # the row the fit started from
        assert bool(encoder.male[i]) == male  # by the reference's pitch
        with np.load(tmp_path / f"{speaker}.npz") as data:
            np.testing.assert_allclose(encoder.styles[i], packs[pack][row] + data["delta"])
        assert np.linalg.norm(encoder.embeddings[i]) == pytest.approx(1.0, abs=1e-4)


def test_quick_enrollment_is_the_encoders_table_or_its_pack_whichever_the_guard_hears_closer(
    studio, speech_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    engine = studio.engine("kokoro")
    # A dev speaker (male): never among the fitted train voices the shipped table holds.
    clips = sorted((speech_dir / "vctk" / "VCTK_p227").glob("*.flac"))[:2]
    reference = trim_silence(load_audio(clips[0], 16_000))
    voice = engine.condition(reference, studio.encoder, quality="quick")
    info = voice.info
    assert info["method"] == "kokoro-style-encoder" and info["quality"] == "quick"
    assert info["pack"] == "jm_kumo"  # the male class's base pack
    shipped = engine.style_encoder
    wanted = min(shipped.config.neighbours, int(shipped.male.sum()))  # male voices only
    assert len(str(info["neighbours"]).split(",")) == wanted
    assert len(shipped.speakers) >= 20 and "VCTK_p227" not in set(shipped.speakers)
    table, _ = shipped.style_table(
        studio.encoder.embed(reference.samples, reference.sample_rate), True, engine.style_packs
    )
    pack = engine.style_packs["jm_kumo"]
    chosen = voice.arrays["style"]
    # The guard kept whichever scored higher on its held-out sentence, and said which.
    if info["score_encoder"] >= info["score_pack"]:
        assert info["result"] == "encoder"
        np.testing.assert_allclose(chosen, table, atol=1e-6)
        assert np.abs(chosen - pack).max() > 0.05
    else:
        assert info["result"] == "pack"
        np.testing.assert_array_equal(chosen, pack)
    assert 0.5 < voice.speed < 2.0 and voice.speed != 1.0  # matched to the reference's rate
    audio = engine.synthesize("The quick voice speaks a sentence of its own.", voice)
    assert 1.5 < len(audio) / engine.sample_rate < 6.0
    assert 0.02 < float(np.sqrt(np.mean(audio**2))) < 0.5


def test_a_missing_style_encoder_or_unknown_quick_method_is_a_one_line_error(
    studio, tmp_path: Path, example_reference: Path
) -> None:  # type: ignore[no-untyped-def]
    from deepfake_studio.synthesizer.kokoro import KokoroConfig, KokoroEngine

    with pytest.raises(EngineError, match="unknown quick method 'guess'"):
        KokoroEngine(KokoroConfig(quick_method="guess"))
    missing = KokoroConfig(
        quick_method="style-encoder", style_encoder=tmp_path / "none.npz", threads=1
    )
    engine = KokoroEngine(missing)
    reference = load_audio(example_reference, 16_000)
    with pytest.raises(EngineError) as err:
        engine.condition(reference, studio.encoder, quality="quick")
    assert "cannot read the style encoder" in str(err.value) and "\n" not in str(err.value)


def test_a_seed_table_competes_with_the_packs_as_the_standard_fits_start(kokoro_engine) -> None:  # type: ignore[no-untyped-def]
    from deepfake_studio.synthesizer.kokoro.engine import load_vocab
    from deepfake_studio.synthesizer.kokoro.reconstruct import (
        choose_start_pack,
        reference_tokens,
        speak_tokens,
    )

    model = kokoro_engine.torch_path.model
    packs = kokoro_engine.style_packs
    ids = reference_tokens("The birch canoe slid on the smooth planks.", kokoro_engine.phonemes,
                           load_vocab())  # fmt: skip
    # A voice between two female packs, and a "reference" spoken by it: as a seed it is the
    # nearest start by far; without it, a bundled pack of the class starts the fit.
    seed = (0.5 * packs["jf_alpha"] + 0.5 * packs["jf_nezumi"]).astype(np.float32)
    reference24, _ = speak_tokens(model, ids, seed[len(ids) - 1])
    name, _, _ = choose_start_pack(model, {**packs, "seed": seed}, ids, reference24, ("seed",))
    assert name == "seed"
    name, _, _ = choose_start_pack(model, {**packs, "seed": seed}, ids, reference24)
    assert name.startswith("jf_")

"""Kokoro in each language it was trained on: is the speech intelligible to Whisper-base?

    .venv/bin/python benchmarks/bench_languages.py [--packs jf_alpha,jm_kumo] [--overwrite]

For every language in `synthesizer/languages.py`, three sentences are spoken with each bundled
style pack (the five Japanese packs of the model package; cloned voices are not measured
here) and transcribed by Whisper-base told the language. WER for languages written with
spaces, CER for Japanese and Mandarin (and Hindi, whose words Whisper splits differently).
Also counts the phoneme symbols Kokoro does not know in each language's sentences.
Writes benchmarks/languages.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402

# (Whisper's language code, three sentences). Plain everyday sentences, no names Whisper
# could not know how to spell.
SENTENCES: dict[str, tuple[str, list[str]]] = {
    "en-us": (
        "en",
        [
            "The old lighthouse keeper climbed the stairs every evening.",
            "Please call me back after lunch, I will be at home.",
            "Nine small boats sailed past the harbour in the morning.",
        ],
    ),
    "en-gb": (
        "en",
        [
            "The weather in London was rather cold, so we stayed at home.",
            "Could you pass me the butter and a cup of tea, please?",
            "The last train to the city leaves at half past ten.",
        ],
    ),
    "es": (
        "es",
        [
            "¿Dónde está la biblioteca? Vivo en Madrid con mi familia.",
            "El perro corre por el parque cuando hace buen tiempo.",
            "Mañana vamos a comprar pan y leche en el mercado.",
        ],
    ),
    "fr": (
        "fr",
        [
            "Bonjour, je m'appelle Marie. J'habite à Paris depuis l'année dernière.",
            "Le chat dort sur le canapé pendant que nous préparons le dîner.",
            "Demain matin, nous irons au marché acheter du pain.",
        ],
    ),
    "it": (
        "it",
        [
            "Buongiorno, mi chiamo Giulia. Abito a Roma con la mia famiglia.",
            "Il gatto dorme sul divano mentre prepariamo la cena.",
            "Domani andiamo al mercato a comprare il pane.",
        ],
    ),
    "pt-br": (
        "pt",
        [
            "Olá, meu nome é João. Eu moro no Rio de Janeiro com a minha família.",
            "O cachorro corre no parque quando faz sol.",
            "Amanhã vamos ao mercado comprar pão e leite.",
        ],
    ),
    "hi": (
        "hi",
        [
            "नमस्ते, मेरा नाम राहुल है। मैं दिल्ली में रहता हूँ।",
            "आज मौसम बहुत अच्छा है।",
            "कल हम बाज़ार जाएंगे और फल खरीदेंगे।",
        ],
    ),
    "ja": (
        "ja",
        [
            "こんにちは。今日はとても良い天気ですね。",
            "明日の朝、駅の前で友達に会います。",
            "この本はとても面白いです。",
        ],
    ),
    "zh": (
        "zh",
        [
            "你好，我叫小明。今天天气很好。",
            "我们明天早上去公园散步吧！",
            "这本书非常有意思。",
        ],
    ),
}
CHARACTER_LANGUAGES = ("ja", "zh", "hi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packs", default="", help="comma-separated packs (default: all five)")
    parser.add_argument("--languages", default="", help="comma-separated codes (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "languages")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    md, js = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    refuse_to_overwrite([md, js], args.overwrite)

    import numpy as np

    from deepfake_studio.evaluation.asr import (
        Transcriber,
        character_error_rate,
        word_error_rate,
    )
    from deepfake_studio.synthesizer.base import Conditioning
    from deepfake_studio.synthesizer.kokoro import KokoroEngine
    from deepfake_studio.synthesizer.kokoro.engine import load_vocab
    from deepfake_studio.synthesizer.languages import create_phonemizer, unknown_symbols

    load = os.getloadavg()[0]
    engine = KokoroEngine()
    transcriber = Transcriber()
    vocab = load_vocab()
    packs = [p for p in args.packs.split(",") if p] or sorted(engine.style_packs)
    languages = [c for c in args.languages.split(",") if c] or list(SENTENCES)
    runs: list[dict[str, object]] = []
    unknown: dict[str, dict[str, int]] = {}
    for code in languages:
        whisper_code, sentences = SENTENCES[code]
        phonemizer = create_phonemizer(code)
        counted: dict[str, int] = {}
        for sentence in sentences:
            for phonemes in phonemizer.sentences(sentence):
                for symbol, n in unknown_symbols(phonemes, vocab).items():
                    counted[symbol] = counted.get(symbol, 0) + n
        unknown[code] = counted
        measure = character_error_rate if code in CHARACTER_LANGUAGES else word_error_rate
        for pack in packs:
            conditioning = Conditioning(engine="kokoro", arrays={"style": engine.style_packs[pack]})
            for sentence in sentences:
                start = time.perf_counter()
                audio = engine.synthesize(sentence, conditioning, 1.0, code)
                seconds = time.perf_counter() - start
                heard = transcriber.transcribe(audio, engine.sample_rate, language=whisper_code)
                runs.append(
                    {
                        "language": code,
                        "pack": pack,
                        "text": sentence,
                        "heard": heard,
                        "error": round(measure(sentence, heard), 4),
                        "measure": "CER" if code in CHARACTER_LANGUAGES else "WER",
                        "audio_s": round(len(audio) / engine.sample_rate, 2),
                        "rtf": round(seconds / max(len(audio) / engine.sample_rate, 1e-6), 3),
                    }
                )
                print(code, pack, runs[-1]["error"], heard, flush=True)

    def mean_error(code: str, pack: str | None = None) -> float:
        errors = [
            float(r["error"])  # type: ignore[arg-type]
            for r in runs
            if r["language"] == code and (pack is None or r["pack"] == pack)
        ]
        return float(np.mean(errors)) if errors else float("nan")

    model = cpu_model()
    lines = [
        "# Kokoro per language: Whisper-base error on three sentences per language",
        "",
        f"CPU: {model} ({os.cpu_count()} cores), load average at start {load:.2f}; "
        f"Python {platform.python_version()}. Packs: the bundled (Japanese-trained) style packs "
        "in the columns; cloned voices are not in this table. Whisper-base is told the "
        "language. Error = word error rate, or character error rate for ja, zh and hi.",
        "",
        "Where Whisper-base is the weak part: for Hindi it mostly writes Urdu script (the same "
        "spoken words, e.g. میں دلی میں رہتا ہوں for मैं दिल्ली में रहता हूँ), so the Devanagari "
        "CER is above 100 % and says nothing about the speech; for Mandarin it writes "
        "traditional characters (們, 園, 氣), each counted as an error against the simplified "
        "text. French and Portuguese depend strongly on the pack (jf_alpha, the default, is "
        "worst): the packs were made for Japanese.",
        "",
        "| language | measure | unknown symbols | " + " | ".join(packs) + " | best pack | median |",
        "|---|---|---|" + "---|" * len(packs) + "---|---|",
    ]
    for code in languages:
        per_pack = {p: mean_error(code, p) for p in packs}
        best = min(per_pack, key=lambda p: per_pack[p])
        measure = "CER" if code in CHARACTER_LANGUAGES else "WER"
        unknown_text = ", ".join(f"{s} x{n}" for s, n in unknown[code].items()) or "0"
        lines.append(
            f"| {code} | {measure} | {unknown_text} | "
            + " | ".join(f"{100 * per_pack[p]:.1f} %" for p in packs)
            + f" | {best} | {100 * statistics.median(per_pack.values()):.1f} % |"
        )
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js.write_text(
        json.dumps({"cpu": model, "load": load, "unknown": unknown, "runs": runs}, indent=1) + "\n",
        encoding="utf-8",
    )
    print(md.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()

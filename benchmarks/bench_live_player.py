"""The web studio's live player (issue 24): time from a click on Generate to the first sound
in a real browser, beside the API's first audio byte for the same text, in one run.

    .venv/bin/python benchmarks/bench_live_player.py --runs 5

A real `deepfake-studio serve` in its own process (it warms streaming up in the background at
start; the runs begin once /api/v1/health lists `kokoro-streaming`), Debian's Chromium under
Playwright. Per run, the page's player reports (performance.now(), the page's clock): the
click, the streaming route's answer (headers), the first body chunk, and when the first
scheduled buffer starts sounding (its start on the Web Audio clock plus the context's output
latency). The API's first audio byte is timed by an HTTP client in this process (not the
server's), alternating with the page's runs. Writes benchmarks/live_player.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bundled_voice import bundled_kokoro_voice  # noqa: E402
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402
from bench_streaming import LONG_TEXT, ONE_SENTENCE  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.service.browser import launch_chromium  # noqa: E402  (the tests' launch recipe)
from tests.service.serve import WARM, free_port, start_serve, wait_until_warm  # noqa: E402

VOICE_NAME = "Bench Live"
_WATCH_JS = """() => {
    window.clickedAt = null;
    document.querySelector("#clone-generate").addEventListener("click", () => {
        window.clickedAt = performance.now();
    }, true);
}"""


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def enroll_bundled_voice(data_dir: Path) -> str:
    """The bundled Kokoro pack as an enrolled voice in `data_dir` (no fit: fast)."""
    from deepfake_studio import Studio, StudioConfig

    return bundled_kokoro_voice(Studio(StudioConfig(data_dir=data_dir)), VOICE_NAME).id


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`serve` on a free loopback port, once it is warm (the tests' recipe)."""
    port = free_port()
    server = start_serve(data_dir, port)
    answers = wait_until_warm(server, port)
    if server.poll() is not None:
        raise SystemExit("the server exited")
    if not answers or WARM not in answers[-1].json().get("models_loaded", []):
        server.kill()
        raise SystemExit("the server did not warm up within 300 s")
    return server, f"http://127.0.0.1:{port}"


def api_first_byte(http: httpx.Client, url: str, voice_id: str, text: str) -> float:
    """Seconds from the request to the first audio byte (past the 44-byte header)."""
    start = time.perf_counter()
    got, elapsed = 0, None
    with http.stream(
        "POST",
        url + "/api/v1/synthesize/stream",
        json={"text": text, "voice_id": voice_id},
        timeout=300,
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():  # read it all: the next run starts on quiet cores
            got += len(chunk)
            if elapsed is None and got > 44:
                elapsed = time.perf_counter() - start
    if elapsed is None:
        raise SystemExit("the stream had no audio")
    return elapsed


def page_run(page: Any, text: str) -> dict[str, Any]:
    page.evaluate(_WATCH_JS)
    page.locator("#clone-text textarea").fill(text)
    page.locator("#clone-generate").click()
    # Polled every 100 ms, not on every animation frame (Playwright's default): a page that
    # draws frames only to be polled would take CPU from the synthesis it is timing.
    page.wait_for_function(
        "window.studioLive.stats && window.studioLive.stats.state === 'done'",
        timeout=300_000,
        polling=100,
    )
    # The job's result and plots come next: wait, so runs do not overlap.
    page.wait_for_function(
        "/Speaker similarity|failed/.test(document.querySelector('#clone-status').innerText)",
        timeout=300_000,
        polling=100,
    )
    stats = page.evaluate("window.studioLive.stats")
    clicked = page.evaluate("window.clickedAt")
    return {
        "first_sound_s": (stats["firstSoundAt"] - clicked) / 1000,
        "answer_s": (stats["responseAt"] - clicked) / 1000,
        "first_chunk_s": (stats["firstChunkAt"] - clicked) / 1000,
        "fetch_started_s": (stats["startedAt"] - clicked) / 1000,
        "audio_s": stats["samples"] / stats["sampleRate"],
        "underruns": stats["underruns"],
        "underruns_at_s": stats["underrunsAt"],
        "underrun_gaps_s": stats["underrunGaps"],
    }


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    lines = [
        "# Web studio live player: first sound in the browser",
        "",
        f"CPU: {result['cpu']}. Load average at start {result['load_start']}, at end "
        f"{result['load_end']} (2 cores shared with other work: above ~1 every time here is "
        "inflated; compare rows of this run only). A real `deepfake-studio serve` (warmed up "
        "at start), Chromium headless under Playwright; the bundled voice as an enrolled "
        f"voice; {result['runs']} runs per text, the page's and the API's alternating.",
        "",
        "Page times are from the click on Generate (performance.now()): the streaming route's "
        "answer, its first body chunk, and the first buffer's start on the Web Audio clock "
        "plus the output latency (first sound). API: an HTTP client's first audio byte.",
        "",
        "| text | page: first sound s (median) | runs | answer s | first chunk s | "
        "underruns (median) | where in the audio, gap (s) | "
        "API first audio byte s (median) | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        page, api = row["page"], row["api_first_byte_s"]
        sounds = ", ".join(f"{r['first_sound_s']:.2f}" for r in page)
        lines.append(
            f"| {row['text']} | {statistics.median(r['first_sound_s'] for r in page):.2f} | "
            f"{sounds} | {statistics.median(r['answer_s'] for r in page):.2f} | "
            f"{statistics.median(r['first_chunk_s'] for r in page):.2f} | "
            f"{statistics.median(r['underruns'] for r in page):.0f} | "
            + ", ".join(
                f"{t:.2f} ({g:.2f})"
                for r in page
                for t, g in zip(r["underruns_at_s"], r["underrun_gaps_s"], strict=True)
            )
            + " | "
            f"{statistics.median(api):.2f} | {', '.join(f'{x:.2f}' for x in api)} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "live_player")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    md, js = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    refuse_to_overwrite([md, js], args.overwrite)

    from playwright import sync_api

    data_dir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    voice_id = enroll_bundled_voice(data_dir)
    server, url = start_server(data_dir)
    result: dict[str, Any] = {"cpu": cpu_model(), "load_start": load(), "runs": args.runs}
    rows = []
    http = httpx.Client()  # made once: a new client costs 10-30 ms (its TLS context)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
            page.goto(url + "/")
            page.wait_for_selector("#clone-generate")
            page.locator("#clone-voice input").click()
            page.get_by_role("option", name=f"{VOICE_NAME} (kokoro)").click()
            for label, text in (("one sentence", ONE_SENTENCE), ("long text", LONG_TEXT)):
                page_rows, api_rows = [], []
                for _ in range(args.runs):
                    page_rows.append(page_run(page, text))
                    api_rows.append(api_first_byte(http, url, voice_id, text))
                    print(label, page_rows[-1], f"api {api_rows[-1]:.3f}", load(), flush=True)
                rows.append(
                    {
                        "text": f"{label} ({len(text)} chars)",
                        "page": page_rows,
                        "api_first_byte_s": api_rows,
                    }
                )
            browser.close()
    finally:
        http.close()
        server.terminate()
        server.wait(30)
    result["rows"] = rows
    result["load_end"] = load()
    js.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(md, result)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()

"""Where the streaming route's first audio byte goes (issue 24): the request's arrival, the
call to `speak_stream`, its first piece, the response's first bytes on the server, and the
client's first byte, against `speak_stream`'s first piece called directly, alternating run by
run (the same work at the same load).

    .venv/bin/python benchmarks/streaming_server_split.py --runs 14

uvicorn in this process with a pure-ASGI wrapper that notes when a request arrives and when
its first bytes leave; `speak_stream` wrapped to note its call and first piece; one HTTP
client made before the clock starts; each stream is read to its end before the next run.
Writes benchmarks/streaming_server_split.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from deepfake_studio.evaluation.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bundled_voice import bundled_kokoro_voice  # noqa: E402
from _output import add_overwrite_flag, refuse_to_overwrite  # noqa: E402
from bench_streaming import ONE_SENTENCE  # noqa: E402

STEPS = ["arrived", "speak_called", "first_piece", "response_start", "client_first_byte"]


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=14)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "streaming_server_split")
    add_overwrite_flag(parser)
    args = parser.parse_args()
    md, js = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    refuse_to_overwrite([md, js], args.overwrite)

    import uvicorn

    from deepfake_studio import Studio, StudioConfig
    from deepfake_studio.service.api import create_app

    studio = Studio(StudioConfig(data_dir=Path(tempfile.mkdtemp(prefix="bench-split-"))))
    voice = bundled_kokoro_voice(studio, "Bench Split")
    studio.warm_streaming(speak=True)

    marks: dict[str, float] = {}
    speak_stream = studio.speak_stream

    def noted(*a: Any, **k: Any) -> Iterator[Any]:
        marks["speak_called"] = time.perf_counter()
        for piece in speak_stream(*a, **k):
            marks.setdefault("first_piece", time.perf_counter())
            yield piece

    studio.speak_stream = noted  # type: ignore[method-assign]  # the server's calls are noted
    app = create_app(studio)

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        marks["arrived"] = time.perf_counter()

        async def noting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                marks["response_start"] = time.perf_counter()
            await send(message)

        return await app(scope, receive, noting_send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/synthesize/stream"
    server = uvicorn.Server(uvicorn.Config(wrapper, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    result: dict[str, Any] = {"cpu": cpu_model(), "load_start": load(), "runs": args.runs}
    rows = []
    http = httpx.Client()
    try:
        for _ in range(args.runs):
            marks.clear()
            start = time.perf_counter()
            body = {"text": ONE_SENTENCE, "voice_id": voice.id}
            with http.stream("POST", url, json=body, timeout=300) as response:
                for _chunk in response.iter_raw():
                    marks.setdefault("client_first_byte", time.perf_counter())
            row = {step: marks[step] - start for step in STEPS}
            direct = speak_stream(ONE_SENTENCE, voice)
            began = time.perf_counter()
            next(direct)
            row["in_process_first_piece"] = time.perf_counter() - began
            for _piece in direct:  # the whole stream, as the server's
                pass
            rows.append(row)
            print({k: round(v, 3) for k, v in row.items()}, load(), flush=True)
    finally:
        http.close()
        server.should_exit = True
        thread.join(30)
        sock.close()
    result["rows"] = rows
    result["load_end"] = load()
    js.write_text(json.dumps(result, indent=2) + "\n")

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    lines = [
        "# Where the streaming route's first audio byte goes",
        "",
        f"CPU: {result['cpu']}. Load average at start {result['load_start']}, at end "
        f"{result['load_end']} (2 cores shared with other work: above ~1 every time is "
        f"inflated; compare within this run). One sentence ({len(ONE_SENTENCE)} chars), the "
        f"bundled voice, {args.runs} requests, each followed by the same first piece "
        "called directly. Seconds from the client's request (medians).",
        "",
        "| step | s (median) |",
        "|---|---|",
        *(f"| {step} | {median(step):.3f} |" for step in STEPS),
        f"| in-process first piece (speak_stream called directly) | "
        f"{median('in_process_first_piece'):.3f} |",
        "",
        "The server's own share: request to `speak_stream` "
        f"{1000 * median('speak_called'):.0f} ms, first piece to the client's first byte "
        f"{1000 * statistics.median(r['client_first_byte'] - r['first_piece'] for r in rows):.0f}"
        " ms; the rest is the first piece's synthesis.",
    ]
    md.write_text("\n".join(lines) + "\n")
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()

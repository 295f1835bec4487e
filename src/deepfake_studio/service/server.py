"""`serve`: run the REST API with uvicorn, refusing to expose it unauthenticated."""

from __future__ import annotations

import ipaddress
import logging
import threading

from deepfake_studio.errors import StudioError
from deepfake_studio.studio import Studio

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, 'localhost')."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name: it may resolve to a public address
        return False


def _warm_streaming(studio: Studio) -> None:
    try:
        studio.warm_streaming(speak=True)
    except Exception:  # a server that cannot stream still serves everything else
        log.exception("warming up streaming speech failed")


def serve(
    studio: Studio,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    workers: int = 1,
    log_level: str = "info",
    web: bool = True,
    broker: str | None = None,
    voice_consent: bool | None = None,
) -> None:
    """Serve the API on host:port until interrupted; `workers` job threads (default 1);
    with `web`, the web studio at `/` too. With `broker` (a Redis URL), jobs are sent to
    Celery workers (`deepfake-studio worker`) instead of running in this process.

    A host other than loopback needs a token: the API can clone any voice it is given.
    `voice_consent` (None: on unless the host is loopback): enrolling needs consent proven by
    the speaker's voice (`consent.py`).
    """
    if not token and not is_loopback(host):
        raise StudioError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could "
            "clone voices; set a token or use 127.0.0.1"
        )
    if not 0 < port < 65536:
        raise StudioError(f"port {port} is out of range (1-65535)")
    try:
        import uvicorn

        from deepfake_studio.service.api import create_app
        from deepfake_studio.service.runner import EmbeddedRunner, JobRunner
        from deepfake_studio.service.store import JobStore

        if web:
            import gradio  # noqa: F401 - the web studio's dependency, checked up front
    except ImportError as e:
        raise StudioError(
            f"the server needs the 'server' extra ({e.name} is missing): "
            "pip install 'deepfake-studio[server]'"
        ) from e
    runner: JobRunner
    if broker:
        try:
            import celery  # noqa: F401 - imported lazily later; check it up front
            import redis  # noqa: F401

            from deepfake_studio.service.distributed import CeleryRunner, QueueConfig
        except ImportError as e:
            raise StudioError(
                f"--broker needs the 'queue' extra ({e.name} is missing): "
                "pip install 'deepfake-studio[queue]'"
            ) from e
        celery_runner = CeleryRunner(studio, JobStore(studio.data_dir), QueueConfig(broker))
        celery_runner.check()  # an unreachable broker is one line now, not a log loop later
        runner = celery_runner
    else:
        runner = EmbeddedRunner(studio, JobStore(studio.data_dir), workers=workers)
    if voice_consent is None:
        voice_consent = not is_loopback(host)
    app = create_app(
        studio, runner=runner, token=token or None, web=web, voice_consent=voice_consent
    )
    # The first stream would pay seconds of one-off set-up (the float Kokoro, kernels, the
    # watermark's model): pay it now, beside the start-up, not when someone is listening.
    threading.Thread(target=_warm_streaming, args=(studio,), daemon=True).start()
    # One uvicorn process: embedded job workers live in it and share its loaded models.
    # An open web page holds a connection that never ends (Gradio's heartbeat): without a
    # limit, Ctrl+C would wait for it forever. After 5 s the shutdown goes on without it.
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, workers=1, timeout_graceful_shutdown=5
    )

"""The web studio: a Gradio UI at `/` of the REST API's FastAPI app, installable as a PWA.

A thin layer over `Studio` and the job store. Generating and enrolling are jobs in the same
store and runner as `/api/v1` (they appear in `GET /api/v1/jobs`); the page polls the job and
shows its progress, then the result with plots of the audio and of the speaker embeddings.
An enrolled voice's clone job is streamed instead: the page's own player (`_LIVE_PLAYER_JS`)
posts it to /api/v1/synthesize/stream as a job and plays the chunked WAV through the Web
Audio API as it arrives; its file and record are stored as the runner stores them.

Tabs: Clone (enrolled voice or a reference upload/recording → speech), Voices (library with
each voice's enrollment quality, enroll with a consent statement and a quality, delete),
Face swap (source photo + target image or video → result, side by side; a video can get a
cloned soundtrack), Detect (the synthetic-speech detector's probability, label and
per-window timeline, and the watermark verdict).

PWA: `/manifest.json`, the service worker `/sw.js` (scope `/`, caches the app shell so the
installed app starts without the server; jobs and audio are never cached) and icons under
`/pwa/`, all public. Gradio serves a manifest but no service worker; ours replaces its manifest.

Auth: with a token the UI is behind Gradio's login form: any user name, the token as the
password (a session cookie follows). The REST API keeps its Bearer header; the page's player
streams with a key the page gets at load (`StreamKeys`: that route only), not the token.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from matplotlib.figure import Figure
from starlette.routing import Mount, get_route_path
from starlette.types import Receive, Scope, Send

from deepfake_studio import __version__
from deepfake_studio import audio as audio_io
from deepfake_studio.audio import Audio
from deepfake_studio.consent import ConsentError
from deepfake_studio.detector import DetectionResult
from deepfake_studio.encoder.features import mel_spectrogram
from deepfake_studio.encoder.model import EncoderConfig
from deepfake_studio.errors import AudioError, EngineError, MediaError, StudioError, VoiceError
from deepfake_studio.faceswap.config import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from deepfake_studio.service.runner import JobRunner
from deepfake_studio.service.shared import API_PREFIX, StreamKeys, check_faceswap
from deepfake_studio.service.store import Job, JobStore
from deepfake_studio.studio import (
    ENROLL_QUALITIES,
    REFERENCE_RATE,
    Studio,
    check_consent,
    enrollment_quality,
)
from deepfake_studio.synthesizer import ENGINES
from deepfake_studio.synthesizer.emotion import (
    DEFAULT_EMOTION,
    EMOTIONS,
    check_emotion,
    check_engine_emotion,
    emotion_fields,
)
from deepfake_studio.synthesizer.kokoro.engine import QUALITY_CARDS
from deepfake_studio.synthesizer.languages import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    check_engine_language,
    check_language,
)
from deepfake_studio.text import check_text
from deepfake_studio.voices import Voice, check_name, voice_id

PWA_DIR = Path(__file__).with_name("pwa")
THEME_COLOR = "#1e1b4b"
ENGINE_AUTO = "auto"
SOURCE_VOICE = "Enrolled voice"
SOURCE_REFERENCE = "Reference recording"
POLL_S = 0.25
HEAT_SIDE = 16  # the 256-d d-vector drawn as 16 x 16
DISPLAY_MELS = EncoderConfig(n_mels=80)  # the encoder's STFT (25 ms / 10 ms), finer mel axis
_MAX_PLOT_POINTS = 20_000
VOICE_COLUMNS = [
    "id",
    "name",
    "engine",
    "quality",
    "created",
    "consent",
    "reference",
    "seconds",
    "speed",
]
WORDS_LABEL = "Words spoken in the recording (optional; standard and best, else transcribed)"
QUALITY_DEFAULT = "default"  # the quality radio's "the engine's default" (nothing is sent)
# The quality radio's labels: what each quality does, costs and gives (kokoro's QUALITY_CARDS).
QUALITY_LABELS = {
    q: f"{q.capitalize()}: {card.time}; similarity {card.similarity:.2f} ({card.method})"
    for q, card in QUALITY_CARDS.items()
}

DETECTOR_NOTICE = (
    "The detector (a small SpecRNet-like network trained here; see its model card) gives the "
    "probability that a clip is synthetic speech, and a timeline of 3 s windows. It errs, "
    "especially on generators and recording conditions it never saw. The watermark check "
    "looks for the mark every Deepfake Studio clip carries; a missing watermark does **not** "
    "mean a recording is real."
)

# The Clone tab's live player: markup (in a gr.HTML) and its script (in the page's <head>).
_LIVE_PLAYER_HTML = (
    '<div class="live-player">'
    '<button type="button" id="clone-live-stop" disabled>Stop</button> '
    '<span id="clone-live-state">Live: an enrolled voice plays here as it is made.</span>'
    "</div>"
)
# `window.studioLive.start(body, key)` posts the request to the streaming route as a job and
# resolves once the first audio is scheduled ("job:ID"), or with "error:MESSAGE" (the API's
# JSON); the body is read as it comes, each chunk of 16-bit PCM scheduled on a Web Audio
# clock right after the previous one. Stop aborts the fetch: the server stops the
# synthesis and fails the job. `stats` is what the page measured (read by the tests).
_LIVE_PLAYER_JS = """
(() => {
  // The first buffer (or one after the stream fell behind) starts this far ahead of the
  // audio clock; later ones follow the previous buffer's end exactly.
  const LEAD_S = 0.01;
  const live = { ctx: null, controller: null, sources: [], next: 0, stats: null };
  const el = (id) => document.getElementById(id);
  const show = (text) => { const s = el("clone-live-state"); if (s) s.textContent = text; };
  const stopButton = (enabled) => {
    const button = el("clone-live-stop");
    if (button) button.disabled = !enabled;
  };

  live.stop = () => {
    if (live.controller) live.controller.abort();
    live.controller = null;
    for (const source of live.sources) { try { source.stop(); } catch (e) {} }
    live.sources = [];
    stopButton(false);
  };

  function schedule(samples, rate, onFirst) {
    const ctx = live.ctx, stats = live.stats;
    const buffer = ctx.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const now = ctx.currentTime;
    if (live.next < now + 0.005) {  // the first buffer, or the stream fell behind
      if (stats.samples > 0) {
        stats.underruns += 1;
        stats.underrunsAt.push(stats.samples / rate);  // where in the audio the gap fell, s
        stats.underrunGaps.push(now + LEAD_S - live.next);  // and how long it was, s
      }
      live.next = now + LEAD_S;
    }
    source.start(live.next);
    if (stats.firstSoundAt === null) {
      const latency = (ctx.baseLatency || 0) + (ctx.outputLatency || 0);
      stats.latency = latency;
      stats.firstSoundAt = performance.now() + (live.next - now + latency) * 1000;
      show("Playing…");
      onFirst();
    }
    source.onended = () => { live.sources = live.sources.filter((s) => s !== source); };
    live.sources.push(source);
    live.next += buffer.duration;
    stats.samples += samples.length;
    stats.buffers += 1;
  }

  async function play(response, controller, onFirst) {
    const stats = live.stats, reader = response.body.getReader();
    let pending = new Uint8Array(0), rate = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (stats.firstChunkAt === null) stats.firstChunkAt = performance.now();
        const bytes = new Uint8Array(pending.length + value.length);
        bytes.set(pending); bytes.set(value, pending.length);
        let at = 0;
        if (!rate) {  // the 44-byte WAV header of the stream (sizes unknown)
          if (bytes.length < 44) { pending = bytes; continue; }
          const view = new DataView(bytes.buffer);
          if (view.getUint32(0, false) !== 0x52494646) throw new Error("not a WAV stream");
          rate = view.getUint32(24, true);
          stats.sampleRate = rate;
          at = 44;
        }
        const count = Math.floor((bytes.length - at) / 2);
        pending = bytes.slice(at + 2 * count);  // an odd byte waits for the next chunk
        if (count === 0) continue;
        const view = new DataView(bytes.buffer, at, 2 * count);
        const samples = new Float32Array(count);
        for (let i = 0; i < count; i++) {
          const x = view.getInt16(2 * i, true) / 32767;
          samples[i] = x;
          stats.sumSquares += x * x;
        }
        schedule(samples, rate, onFirst);
      }
      stats.state = "done";
      const left = Math.max(0, live.next - live.ctx.currentTime);
      setTimeout(() => { if (live.stats === stats) show("Finished."); }, left * 1000);
    } catch (error) {
      stats.state = controller.signal.aborted ? "stopped" : "failed";
      stats.error = controller.signal.aborted ? null : String(error);
      show(controller.signal.aborted ? "Stopped." : "Error: " + error);
    } finally {
      if (live.controller === controller) { live.controller = null; stopButton(false); }
      onFirst();  // a stream with no audio, or one that failed, lets Gradio go on too
    }
  }

  live.start = async (body, key) => {
    live.stop();
    live.stats = { startedAt: performance.now(), responseAt: null, firstChunkAt: null,
      firstSoundAt: null, samples: 0, buffers: 0, sumSquares: 0,
      underruns: 0, underrunsAt: [], underrunGaps: [],
      sampleRate: null, latency: null, state: "waiting", error: null, job: null };
    const stats = live.stats;
    // Made (or resumed) inside the click's user activation, as autoplay rules ask.
    if (!live.ctx) live.ctx = new AudioContext({ latencyHint: "interactive" });
    if (live.ctx.state !== "running") live.ctx.resume();
    live.next = 0;
    const controller = new AbortController();
    live.controller = controller;
    stopButton(true);
    show("Starting…");
    const headers = { "Content-Type": "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    let response;
    try {
      response = await fetch("/api/v1/synthesize/stream", { method: "POST", headers,
        body: JSON.stringify({ ...body, job: true }), signal: controller.signal });
    } catch (error) {
      stats.state = "failed"; stats.error = String(error); stopButton(false);
      show("Error: " + error);
      return "error:" + error;
    }
    stats.responseAt = performance.now();
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error || message; } catch (e) {}
      if (response.status === 401) message += " (reload the page)";
      stats.state = "failed"; stats.error = message; stopButton(false);
      show("Error: " + message);
      return "error:" + message;
    }
    stats.state = "playing";
    stats.job = response.headers.get("X-Job-Id");
    // Gradio gets the job once the first sound is scheduled: its own work on the page's
    // thread (sending the event, redrawing) would otherwise hold up the first chunk.
    await new Promise((first) => play(response, controller, first));
    return "job:" + stats.job;
  };

  window.studioLive = live;
  document.addEventListener("click", (event) => {
    if (event.target && event.target.id === "clone-live-stop") live.stop();
  });
})();
"""
# Generate's page side: an enrolled voice (engine auto) goes to the page's player first, and
# run_clone gets what it answered in its last input; anything else reaches run_clone as is.
_GENERATE_JS = f"""
async (...args) => {{
  const [text, source, voice, , engine, speed, , language, , , emotion, strength, key] = args;
  let live = "";
  if (source === {json.dumps(SOURCE_VOICE)} && voice && engine === {json.dumps(ENGINE_AUTO)}
      && window.studioLive) {{
    live = await window.studioLive.start({{ text, voice_id: voice, speed, language, emotion,
      emotion_strength: strength }}, key);
  }}
  args[args.length - 1] = live;
  return args;
}}
"""

# In the page <head>: colour and icon for installed apps (the manifest link is Gradio's own),
# and the live player's script.
_HEAD = (
    f'<meta name="theme-color" content="{THEME_COLOR}">'
    '<link rel="apple-touch-icon" href="/pwa/apple-touch-icon.png">'
    f"<script>{_LIVE_PLAYER_JS}</script>"
)
# Runs once the page has loaded: register the service worker, then hand it the URLs the page
# loaded so far so lazily loaded script chunks are cached for offline start too.
_REGISTER_JS = """
() => {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/sw.js", { scope: "/" })
    .then(() => navigator.serviceWorker.ready)
    .then((registration) => {
      const urls = performance.getEntriesByType("resource").map((entry) => entry.name);
      if (registration.active) registration.active.postMessage({ type: "cache-shell", urls });
    })
    .catch((error) => console.warn("service worker not registered:", error));
}
"""


# -- the thin layer over Studio and the job store ---------------------------------------------
@dataclass
class Analysis:
    """What the Clone tab shows once a job is done."""

    summary: str
    signals: Figure
    embedding: Figure
    projection: Figure


class StudioWeb:
    """The UI's actions, independent of Gradio so they can be tested directly."""

    def __init__(
        self,
        studio: Studio,
        store: JobStore,
        runner: JobRunner,
        max_upload_bytes: int = 20 * 2**20,
        voice_consent: bool = False,
        stream_keys: StreamKeys | None = None,
    ) -> None:
        self.studio, self.store, self.runner = studio, store, runner
        self.max_upload_bytes = max_upload_bytes
        self.voice_consent = voice_consent  # enrolling needs consent proven by voice
        self.stream_keys = stream_keys  # None: the streaming route needs no key (no token)

    def stream_key(self) -> str:
        """A key for the page's player to stream with ("" when the server has no token)."""
        return self.stream_keys.issue() if self.stream_keys is not None else ""

    # -- voices -------------------------------------------------------------------------------
    def voices(self) -> list[Voice]:
        return [v for v in self.studio.voices() if isinstance(v, Voice)]

    def voice_choices(self) -> list[tuple[str, str]]:
        """(label, id) of every usable voice, for dropdowns."""
        return [(f"{v.name} ({v.engine})", v.id) for v in self.voices()]

    def voice_rows(self) -> tuple[list[list[Any]], list[str]]:
        """The library as table rows, and the errors of unusable voice folders."""
        rows, errors = [], []
        for entry in self.studio.voices():
            if isinstance(entry, Voice):
                rows.append(
                    [
                        entry.id,
                        entry.name,
                        entry.engine,
                        enrollment_quality(entry) or "",
                        entry.created,
                        entry.consent,
                        entry.source_name,
                        entry.reference_seconds,
                        entry.conditioning.speed,
                    ]
                )
            else:
                errors.append(str(entry))
        return rows, errors

    def delete_voice(self, voice: str | None) -> str:
        if not voice or not self.studio.has_voice(voice):
            raise VoiceError("pick a voice to delete")
        self.studio.delete_voice(voice)
        return f"Deleted voice `{voice_id(voice)}`."

    # -- jobs ---------------------------------------------------------------------------------
    def submit_clone(
        self,
        text: str,
        source: str,
        voice: str | None,
        reference: str | None,
        engine: str | None,
        speed: float,
        consent: str | None = None,
        language: str | None = None,
        quality: str | None = None,
        reference_text: str | None = None,
        emotion: str | None = None,
        emotion_strength: float | None = None,
    ) -> Job:
        """Check the request now (like POST /synthesize), then queue a clone job. A reference
        recording needs the speaker's consent statement, as enrolling does; `quality` and
        `reference_text` (kokoro's enrollment options) go with a recording only. (An enrolled
        voice is normally streamed by the page's player instead: see `_LIVE_PLAYER_JS`.)"""
        text = check_text(text or "")
        chosen_engine = _engine(engine)
        chosen_language = check_language(language)
        feeling, strength = check_emotion(emotion, emotion_strength)
        chosen_quality, words = _quality(quality), _words(reference_text)
        low, high = self.studio.config.min_speed, self.studio.config.max_speed
        if not low <= float(speed) <= high:
            raise EngineError(f"speed {speed} is out of range ({low}-{high})")
        inputs: dict[str, Path] = {}
        statement = None
        if source == SOURCE_REFERENCE:
            statement = check_consent(consent, "cloning from a recording")
            self.studio.check_enroll_options(chosen_engine, chosen_quality, words)
            check_engine_language(chosen_engine or self.studio.config.default_engine, language)
            check_engine_emotion(
                chosen_engine or self.studio.config.default_engine, feeling, strength
            )
            path, name = self._receive(reference)
            inputs[name] = path
            chosen_voice, reference_name = None, name
        else:
            if not voice:
                raise VoiceError("pick an enrolled voice, or choose 'Reference recording'")
            if chosen_quality is not None or words is not None:
                raise VoiceError(
                    "a quality and the reference's words go with a reference recording "
                    "(an enrolled voice is already fitted)"
                )
            resolved = self.studio.resolve_voice(voice, None, chosen_engine)
            check_engine_language(resolved.engine, chosen_language)
            check_engine_emotion(resolved.engine, feeling, strength)
            chosen_voice, reference_name = resolved.id, None
        request = {
            "text": text,
            "voice": chosen_voice,
            "reference": reference_name,
            "engine": chosen_engine,
            "speed": float(speed),
            "seed": 0,
            "format": "wav",
            **({"consent": statement} if statement else {}),
            **({"language": chosen_language} if chosen_language != DEFAULT_LANGUAGE else {}),
            **_enroll_options(chosen_quality, words),
            **emotion_fields(feeling, strength),
        }
        return self._queue("clone", request, inputs)

    def streamed_job(self, marker: str) -> Job:
        """The clone job the page's player started ("job:ID" from its JS), or its error
        ("error:MESSAGE", the API's JSON message) as a StudioError."""
        kind, _, value = marker.partition(":")
        if kind == "error":
            raise StudioError(value or "the stream failed")
        job = self.store.get(value) if kind == "job" else None
        if job is None or job.kind != "clone":
            raise StudioError(f"no streamed clone job {value!r}")
        return job

    def consent_phrase(self, name: str) -> tuple[str, str]:
        """A fresh consent challenge for `name`: (what to show, its id)."""
        challenge = self.studio.consent_phrase(check_name(name or ""))
        shown = (
            f"**Read aloud and record:** {challenge.sentence}  \n"
            f"(valid once, until {challenge.expires[:16].replace('T', ' ')} UTC)"
        )
        return shown, challenge.id

    def submit_enroll(
        self,
        reference: str | None,
        name: str,
        consent: str,
        engine: str | None,
        overwrite: bool = False,
        quality: str | None = None,
        reference_text: str | None = None,
        consent_audio: str | None = None,
        challenge_id: str | None = None,
    ) -> Job:
        """Check the request now (like POST /voices), then queue an enroll job. With
        `consent_audio` (the speaker reading the phrase of `consent_phrase`, whose id is
        `challenge_id`), consent is proven by voice first; required with `voice_consent`."""
        name = check_name(name or "")
        if self.voice_consent and not consent_audio:
            raise ConsentError(
                "this server needs consent proven by voice: get a consent phrase, record the "
                "speaker reading it, then enroll"
            )
        if consent_audio and not challenge_id:
            raise ConsentError("get a consent phrase first, then record the speaker reading it")
        if not consent_audio and not (consent or "").strip():
            raise VoiceError("enrolling a voice needs the speaker's consent statement")
        chosen_engine = _engine(engine)
        chosen_quality, words = _quality(quality), _words(reference_text)
        self.studio.check_enroll_options(chosen_engine, chosen_quality, words)
        if not overwrite and self.studio.has_voice(name):
            raise VoiceError(f"a voice with id {voice_id(name)!r} already exists (tick overwrite)")
        path, source = self._receive(reference)
        statement, evidence = (consent or "").strip(), None
        if consent_audio:
            try:
                evidence = self._check_consent(consent_audio, challenge_id, name, path)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            statement = statement or evidence["challenge"]["sentence"]
        request = {
            "name": name,
            "consent": statement,
            **({"consent_evidence": evidence} if evidence else {}),
            "engine": chosen_engine,
            "seed": 0,
            "overwrite": bool(overwrite),
            "reference": source,
            **_enroll_options(chosen_quality, words),
        }
        return self._queue("enroll", request, {source: path})

    def submit_faceswap(
        self,
        source: str | None,
        target_image: str | None,
        target_video: str | None,
        face: float | None = None,
        voice: str | None = None,
        text: str | None = None,
    ) -> Job:
        """Check the request now (like POST /faceswap: files decoded, faces found), then
        queue a face-swap job."""
        if not source:
            raise MediaError("upload a source photo with the face to use")
        if bool(target_image) == bool(target_video):
            raise MediaError("give a target image or a target video (one of them)")
        target = target_image or target_video
        assert target is not None
        index = None if face is None or face == "" else int(face)
        text = (text or "").strip() or None
        voice = voice or None
        if text is not None:
            text = check_text(text)
        if (voice is None) != (text is None):
            raise VoiceError("a new soundtrack needs both a voice and a text (or neither)")
        if voice is not None and not target_video:
            raise MediaError("a new soundtrack needs a target video")
        inputs: dict[str, Path] = {}
        names: dict[Path, str] = {}
        try:
            for role, upload, allowed in (
                ("source", source, IMAGE_SUFFIXES),
                ("target", target, IMAGE_SUFFIXES + VIDEO_SUFFIXES),
            ):
                path = Path(upload)
                suffix = path.suffix.lower().replace(".jpeg", ".jpg")
                if suffix not in allowed:
                    raise MediaError(
                        f"the {role} has an unsupported file type {suffix or '(none)'!r}; "
                        f"use {', '.join(allowed)}"
                    )
                if path.stat().st_size > self.max_upload_bytes:
                    raise MediaError(
                        f"the {role} is over the {self.max_upload_bytes >> 20} MB upload limit"
                    )
                copy = self.store.incoming_path(suffix)
                shutil.copyfile(path, copy)
                inputs[f"{role}{suffix}"] = copy
                names[copy] = path.name
            source_copy, target_copy = inputs.values()
            found = check_faceswap(self.studio, source_copy, target_copy, index, names)
        except BaseException:
            for path in inputs.values():
                path.unlink(missing_ok=True)
            raise
        source_name, target_name = inputs
        is_video = Path(target_name).suffix in VIDEO_SUFFIXES
        request = {
            "source": source_name,
            "target": target_name,
            "source_name": names[source_copy],
            "target_name": names[target_copy],
            "face": index,
            "voice": voice,
            "text": text,
            "format": "mp4" if is_video else "png",
            **found,
        }
        return self._queue("faceswap", request, inputs)

    def follow(self, job_id: str, interval: float = POLL_S) -> Iterator[Job]:
        """The job's record every `interval` seconds until it is done or failed."""
        while True:
            job = self.store.get(job_id)
            yield job
            if job.finished:
                return
            time.sleep(interval)

    def _queue(self, kind: str, request: dict[str, Any], inputs: dict[str, Path]) -> Job:
        try:
            job = self.store.create(kind, request, inputs=inputs)
        except BaseException:
            for path in inputs.values():
                path.unlink(missing_ok=True)
            raise
        self.runner.submit(job.id)
        return job

    def _check_consent(
        self, recording: str, challenge_id: str | None, name: str, reference: Path
    ) -> dict[str, Any]:
        """Use up the challenge and check the recording against it and the reference (a
        one-line ConsentError naming each failed check); the evidence."""
        source = Path(recording)
        if source.suffix.lower() not in audio_io.SUPPORTED_INPUT:
            raise AudioError(f"unsupported consent recording type {source.suffix!r}")
        if source.stat().st_size > self.max_upload_bytes:
            raise AudioError(f"the upload is over the {self.max_upload_bytes >> 20} MB limit")
        challenge = self.studio.challenges.take(challenge_id, name)
        return self.studio.verify_consent(challenge, source, reference).as_dict()

    def _receive(self, upload: str | None) -> tuple[Path, str]:
        """Copy a Gradio upload/recording into the store's incoming folder and check it has
        enough speech: (its path, the plain file name the job keeps)."""
        if not upload:
            raise AudioError("upload or record a reference first")
        source = Path(upload)
        suffix = source.suffix.lower()
        if suffix not in audio_io.SUPPORTED_INPUT:
            raise AudioError(
                f"unsupported file type {suffix or '(none)'!r}; "
                f"use {', '.join(audio_io.SUPPORTED_INPUT)}"
            )
        if source.stat().st_size > self.max_upload_bytes:
            raise AudioError(f"the upload is over the {self.max_upload_bytes >> 20} MB limit")
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.stem).strip("._")[:80]
        name = f"{stem or 'reference'}{suffix}"
        path = self.store.incoming_path(suffix)
        shutil.copyfile(source, path)
        try:
            self.studio.load_reference(path)
        except StudioError as e:
            path.unlink(missing_ok=True)
            raise type(e)(str(e).replace(path.name, name)) from None
        return path, name

    # -- results ------------------------------------------------------------------------------
    def result_path(self, job: Job) -> Path:
        default = "png" if job.kind == "faceswap" else "wav"
        return self.store.output_path(job.id, (job.result or {}).get("format", default))

    def faceswap_summary(self, job: Job) -> str:
        """One Markdown line about a finished face-swap job."""
        r = job.result or {}
        found = r.get("faces_found", 0)
        if r.get("media") == "video":
            return (
                f"**Done**: {r.get('faces_swapped')}/{r.get('frames')} frames swapped at "
                f"{r.get('fps')} fps ({found} face track{'s' if found != 1 else ''}), "
                f"audio: {r.get('audio')}; every frame watermarked, with a signed record."
            )
        return (
            f"**Done**: found {found} face{'s' if found != 1 else ''} in the target, swapped "
            f"{r.get('faces_swapped')}; watermarked, with a signed provenance record."
        )

    def analyse(self, job: Job, reference: str | None) -> Analysis:
        """Plots of a finished clone job: the reference (upload, or the enrolled voice's
        embedding: its recording is not kept) next to the result."""
        result = audio_io.load_audio(self.result_path(job))
        clip: Audio | None = None
        ref_embedding: np.ndarray | None = None
        if job.request.get("voice"):
            ref_embedding = self.studio.voice(job.request["voice"]).embedding
            ref_label = f"voice {job.request['voice']}"
        elif reference:
            clip = self.studio.load_reference(reference)[0]
            ref_embedding = self.studio.encoder.embed(clip.samples, clip.sample_rate)
            ref_label = "reference"
        res_embedding = self.studio.encoder.embed(result.samples, result.sample_rate)
        engine = (job.result or {}).get("engine", "?")
        marked = "watermarked" if self.studio.config.watermark else "not watermarked"
        lines = [
            f"**Done**: {result.duration:.1f} s at {result.sample_rate} Hz "
            f"({engine} engine), {marked}, with a signed provenance record."
        ]
        if ref_embedding is not None:
            similarity = float(np.dot(_unit(ref_embedding), _unit(res_embedding)))
            lines.append(
                f"Speaker similarity (GE2E cosine, {ref_label} vs result): {similarity:.3f}"
            )
        voices = [(v.name, np.asarray(v.embedding, np.float32)) for v in self.voices()]
        return Analysis(
            summary="  \n".join(lines),
            signals=signals_figure(clip, result),
            embedding=embedding_figure(ref_embedding, res_embedding),
            projection=projection_figure(voices, ref_embedding, res_embedding),
        )

    def detect(self, upload: str | None) -> tuple[str, Figure]:
        """Detector and watermark verdicts of an uploaded or recorded clip: Markdown and the
        per-window timeline."""
        if not upload:
            raise AudioError("upload or record a clip first")
        audio = audio_io.load_audio(upload)
        result = self.studio.detect(audio)
        found = self.studio.watermarker.detect(audio)
        threshold = found.threshold  # PerthNet's, for this clip's length
        if found.present:
            layers = "; ".join(
                f"{layer.name} {layer.score:.2f} {'≥' if layer.present else '<'} "
                f"{layer.threshold:.2f}"
                for layer in found.layers
            )
            keyed = "spread-spectrum" in found.found_by
            verdict = (
                f"**Watermark found** by {' and '.join(found.found_by)} ({layers}): this clip "
                + (
                    "was generated by this Deepfake Studio (its keyed layer)."
                    if keyed
                    else "was generated by Deepfake Studio (or another tool using the same "
                    "PerthNet watermark)."
                )
            )
        else:
            verdict = (
                f"**No watermark found** (score {found.score:.2f} < threshold {threshold:.2f}). "
                "This does not show the clip is real."
            )
        label = "**Synthetic speech**" if result.synthetic else "**Real speech**"
        detector = (
            f"Detector: {label} (probability {result.probability:.2f}; "
            f"threshold {result.threshold:.2f}; {len(result.segments)} "
            f"window{'s' if len(result.segments) != 1 else ''})."
        )
        return f"{detector}\n\n{verdict}", timeline_figure(result)


def _engine(engine: str | None) -> str | None:
    if engine in (None, "", ENGINE_AUTO):
        return None
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r} (available: {', '.join(ENGINES)})")
    return engine


def _quality(quality: str | None) -> str | None:
    """The radio's choice: None for the engine's default (checked by Studio later)."""
    return None if quality in (None, "", QUALITY_DEFAULT) else quality


def _words(reference_text: str | None) -> str | None:
    """The reference's words as typed; an empty box means "transcribe them"."""
    return (reference_text or "").strip() or None


def _enroll_options(quality: str | None, reference_text: str | None) -> dict[str, str]:
    """The enrollment options a job request carries (only those given, as the API does)."""
    given = {"quality": quality, "reference_text": reference_text}
    return {key: value for key, value in given.items() if value is not None}


def quality_choices(studio: Studio) -> list[tuple[str, str]]:
    """(label, value) of the quality radio: the engine's default (and what it costs) first,
    then each quality."""
    default = studio.config.engines.kokoro.quality
    card = QUALITY_CARDS.get(default)
    cost = card.time if card else "time not measured"
    return [
        (f"Default ({default}, {cost})", QUALITY_DEFAULT),
        *((QUALITY_LABELS.get(q, q.capitalize()), q) for q in ENROLL_QUALITIES),
    ]


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, np.float64).ravel()
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


# -- plots (matplotlib Figures without pyplot: no global state, safe in worker threads) -------
def _decimated(audio: Audio) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, len(audio.samples) // _MAX_PLOT_POINTS)
    samples = audio.samples[::step]
    return np.arange(len(samples)) * step / audio.sample_rate, samples


def timeline_figure(result: DetectionResult) -> Figure:
    """The detector's probability per window over time, with the threshold."""
    fig = Figure(figsize=(10, 2.6), layout="constrained")
    ax = fig.add_subplot()
    for seg in result.segments:
        colour = "#d62728" if seg.probability >= result.threshold else "#2ca02c"
        ax.plot(
            [seg.start, seg.end],
            [seg.probability] * 2,
            color=colour,
            lw=3,
            alpha=1.0 if seg.speech else 0.35,
        )
    ax.axhline(result.threshold, color="grey", ls="--", lw=1, label="threshold")
    ax.set(
        xlim=(0, max(result.duration, 0.1)),
        ylim=(-0.02, 1.02),
        xlabel="s",
        ylabel="P(synthetic)",
        title="Detector timeline (faint: little speech)",
    )
    ax.legend(loc="upper right", fontsize=8)
    return fig


def signals_figure(reference: Audio | None, result: Audio) -> Figure:
    """Waveform and log-mel spectrogram of the reference (when there is one) and the result."""
    rows = (
        [("Reference", reference), ("Result", result)]
        if reference is not None
        else [("Result", result)]
    )
    fig = Figure(figsize=(10, 2.4 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (title, audio), (wave_ax, mel_ax) in zip(rows, axes, strict=True):
        assert audio is not None
        times, samples = _decimated(audio)
        wave_ax.plot(times, samples, linewidth=0.5, color="#4f46e5")
        wave_ax.set(title=f"{title}: waveform", xlabel="s", xlim=(0, audio.duration), ylim=(-1, 1))
        mono16 = audio_io.resample(audio, REFERENCE_RATE).samples
        mel = mel_spectrogram(mono16, DISPLAY_MELS)
        db = 10 * np.log10(np.maximum(mel, 1e-10))
        mel_ax.imshow(
            db.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=db.max() - 80,
            extent=(0, audio.duration, 0, DISPLAY_MELS.n_mels),
        )
        mel_ax.set(title=f"{title}: mel spectrogram (dB)", xlabel="s", ylabel="mel band")
    if reference is None:
        fig.suptitle("An enrolled voice keeps no recording: only the result is shown", fontsize=9)
    return fig


def embedding_figure(reference: np.ndarray | None, result: np.ndarray) -> Figure:
    """The 256-d d-vectors as 16 x 16 heat maps on one colour scale."""
    panels = (
        [("Reference", reference), ("Result", result)]
        if reference is not None
        else [("Result", result)]
    )
    grids = [np.asarray(v, np.float32).reshape(HEAT_SIDE, HEAT_SIDE) for _, v in panels]
    low = min(0.0, *(float(g.min()) for g in grids))
    high = max(float(g.max()) for g in grids)
    fig = Figure(figsize=(3.2 * len(panels) + 1, 3.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for (title, _), grid, ax in zip(panels, grids, axes, strict=True):
        image = ax.imshow(grid, cmap="viridis", vmin=low, vmax=high)
        ax.set(title=f"{title} d-vector", xticks=[], yticks=[])
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    return fig


def pca_2d(points: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates of `points` on their first two principal components (zeros where
    there are fewer than two directions of spread)."""
    centred = points - points.mean(axis=0)
    _, spread, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    # A direction with (numerically) no spread carries rounding noise only: flatten it.
    negligible = np.ones(2, bool)
    negligible[: len(spread)] = spread[:2] <= 1e-6 * max(float(spread[0]), 1e-12)
    coords[:, negligible] = 0.0
    return coords


def projection_figure(
    voices: list[tuple[str, np.ndarray]], reference: np.ndarray | None, result: np.ndarray
) -> Figure:
    """Enrolled voices, the reference and the result on one 2-D PCA plane (fitted on all the
    points shown)."""
    named = [*voices]
    if reference is not None:
        named.append(("reference", reference))
    named.append(("result", result))
    coords = pca_2d(np.stack([_unit(v) for _, v in named]))
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    n = len(voices)
    if n:
        ax.scatter(coords[:n, 0], coords[:n, 1], c="#9ca3af", s=30, label="enrolled voices")
        for (name, _), (x, y) in zip(voices[:40], coords[:40], strict=False):
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if reference is not None:
        ax.scatter(*coords[-2], marker="*", s=220, c="#f59e0b", label="reference", zorder=3)
        ax.plot(coords[-2:, 0], coords[-2:, 1], color="#6b7280", linestyle=":", linewidth=1)
    ax.scatter(*coords[-1], marker="D", s=70, c="#4f46e5", label="result", zorder=3)
    ax.set(title="Speaker embeddings (PCA, 2-D)", xlabel="PC 1", ylabel="PC 2")
    ax.legend(loc="best", fontsize=8)
    return fig


# -- the Gradio page ----------------------------------------------------------------------------
def _status(job: Job) -> str:
    line = f"Job `{job.id}`: **{job.state}**, {job.progress:.0%}"
    if job.message and job.message not in (job.state, "queued"):
        line += f": {job.message}"
    if job.error:
        line += f"  \nError: {job.error}"
    return line


def _error_text(error: StudioError) -> str:
    return f"**Error**: {error}"


def build_blocks(web: StudioWeb) -> gr.Blocks:
    """The page: Clone, Voices and Detect tabs wired to `web`."""
    config = web.studio.config
    engines = [ENGINE_AUTO, *ENGINES]
    qualities = quality_choices(web.studio)
    hidden: dict[str, Any] = {"api_visibility": "private"}  # no Gradio API endpoints

    # delete_cache: Gradio keeps its own copies of uploads and results (someone's voice);
    # every 10 minutes, drop those older than an hour.
    with gr.Blocks(
        title="Deepfake Studio", analytics_enabled=False, delete_cache=(600, 3600)
    ) as blocks:
        gr.Markdown(
            "# Deepfake Studio\nClone a voice you have consent for. Every clip is watermarked "
            "and signed. REST API: [/docs](/docs)."
        )
        with gr.Tab("Clone", id="clone"):
            with gr.Row():
                with gr.Column():
                    source = gr.Radio(
                        [SOURCE_VOICE, SOURCE_REFERENCE],
                        value=SOURCE_VOICE,
                        label="Voice from",
                        elem_id="clone-source",
                    )
                    voice = gr.Dropdown(
                        choices=[], value=None, label="Enrolled voice", elem_id="clone-voice"
                    )
                    reference = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Reference recording (upload or record, at least 2 s of speech)",
                        elem_id="clone-reference",
                    )
                    clone_consent = gr.Textbox(
                        label="Consent statement of the reference's speaker (required for a "
                        "recording)",
                        lines=2,
                        elem_id="clone-consent",
                    )
                    clone_quality = gr.Radio(
                        qualities,
                        value=QUALITY_DEFAULT,
                        label="Voice fit for a recording (kokoro)",
                        elem_id="clone-quality",
                    )
                    clone_words = gr.Textbox(
                        label=WORDS_LABEL, lines=2, elem_id="clone-reference-text"
                    )
                with gr.Column():
                    text = gr.Textbox(
                        label="Text", lines=4, max_length=20_000, elem_id="clone-text"
                    )
                    engine = gr.Radio(
                        engines,
                        value=ENGINE_AUTO,
                        label="Engine (auto: the voice's own, or the default for a recording)",
                        elem_id="clone-engine",
                    )
                    language = gr.Dropdown(
                        [(spec.name, code) for code, spec in LANGUAGES.items()],
                        value=DEFAULT_LANGUAGE,
                        label="Language of the text (other than English: kokoro voices)",
                        elem_id="clone-language",
                    )
                    speed = gr.Slider(
                        config.min_speed,
                        config.max_speed,
                        value=1.0,
                        step=0.05,
                        label="Speed",
                        elem_id="clone-speed",
                    )
                    emotion = gr.Dropdown(
                        [(name.capitalize(), name) for name in EMOTIONS],
                        value=DEFAULT_EMOTION,
                        label="Emotion (kokoro and transformer voices)",
                        elem_id="clone-emotion",
                    )
                    emotion_strength = gr.Slider(
                        0.0,
                        1.0,
                        value=1.0,
                        step=0.05,
                        label="Emotion strength (0 = neutral)",
                        elem_id="clone-emotion-strength",
                    )
                    generate = gr.Button("Generate", variant="primary", elem_id="clone-generate")
            status = gr.Markdown("Ready.", elem_id="clone-status")
            # An enrolled voice plays here while it is made (the page's own player: Gradio's
            # streaming audio goes through AAC over HLS, 3-6 s late); the Result is the file.
            gr.HTML(_LIVE_PLAYER_HTML, elem_id="clone-live")
            # What the page's player hands run_clone ("job:ID" or "error:MESSAGE"), and the
            # key it streams with: in the page, never shown.
            live_job = gr.Textbox(visible="hidden", elem_id="clone-live-job")
            stream_key = gr.Textbox(visible="hidden", elem_id="clone-stream-key")
            result = gr.Audio(
                type="filepath",
                label="Result",
                interactive=False,
                buttons=["download"],
                elem_id="clone-result",
            )
            signals = gr.Plot(
                label="Waveform and mel spectrogram", show_label=False, elem_id="clone-signals"
            )
            with gr.Row():
                embedding = gr.Plot(
                    label="Speaker embedding", show_label=False, elem_id="clone-embedding"
                )
                projection = gr.Plot(
                    label="Voices (PCA)", show_label=False, elem_id="clone-projection"
                )

        with gr.Tab("Voices", id="voices"):
            table = gr.Dataframe(
                headers=VOICE_COLUMNS,
                value=[],
                interactive=False,
                label="Voice library",
                elem_id="voices-table",
            )
            library_errors = gr.Markdown("", elem_id="voices-errors")
            refresh = gr.Button("Refresh", size="sm")
            with gr.Accordion("Enroll a voice", open=True):
                with gr.Row():
                    enroll_audio = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Recording of the speaker (at least 2 s of speech)",
                        elem_id="enroll-audio",
                    )
                    with gr.Column():
                        enroll_name = gr.Textbox(label="Name", elem_id="enroll-name")
                        consent = gr.Textbox(
                            label="Consent statement (required)",
                            placeholder="e.g. 'I, Ada Lovelace, agree that this recording of "
                            "my voice may be used to clone it, on 2026-05-01.'",
                            lines=2,
                            elem_id="enroll-consent",
                        )
                        enroll_engine = gr.Radio(
                            engines, value=ENGINE_AUTO, label="Engine", elem_id="enroll-engine"
                        )
                        enroll_quality = gr.Radio(
                            qualities,
                            value=QUALITY_DEFAULT,
                            label="Quality (kokoro)",
                            elem_id="enroll-quality",
                        )
                        enroll_words = gr.Textbox(
                            label=WORDS_LABEL, lines=2, elem_id="enroll-reference-text"
                        )
                        overwrite = gr.Checkbox(
                            label="Replace a voice with the same name", elem_id="enroll-overwrite"
                        )
                        with gr.Group():
                            phrase_button = gr.Button(
                                "Get a consent phrase"
                                + (" (required)" if web.voice_consent else ""),
                                size="sm",
                                elem_id="enroll-phrase-button",
                            )
                            phrase_text = gr.Markdown(
                                "Consent proven by voice: the speaker reads a fresh phrase "
                                "aloud; the studio checks the words, that it is the same "
                                "voice as the recording above, and that it is not synthetic.",
                                elem_id="enroll-phrase",
                            )
                            challenge_state = gr.State(None)
                            consent_audio = gr.Audio(
                                sources=["upload", "microphone"],
                                type="filepath",
                                label="Consent recording: the speaker reading the phrase",
                                elem_id="enroll-consent-audio",
                            )
                        enroll = gr.Button("Enroll", variant="primary", elem_id="enroll-button")
                enroll_status = gr.Markdown("", elem_id="enroll-status")
            with gr.Accordion("Delete a voice", open=False):
                with gr.Row():
                    to_delete = gr.Dropdown(choices=[], label="Voice", elem_id="delete-voice")
                    delete = gr.Button("Delete", variant="stop", elem_id="delete-button")
                delete_status = gr.Markdown("", elem_id="delete-status")

        with gr.Tab("Face swap", id="faceswap"):
            gr.Markdown(
                "Put the face from a source photo onto the faces of a target image or video. "
                "Use only faces you have consent for. Every output image and frame carries an "
                "invisible watermark and a signed provenance record."
            )
            with gr.Row():
                fs_source = gr.Image(
                    type="filepath",
                    sources=["upload"],
                    label="Source face",
                    elem_id="faceswap-source",
                )
                with gr.Column():
                    fs_target_image = gr.Image(
                        type="filepath",
                        sources=["upload"],
                        label="Target image",
                        elem_id="faceswap-target-image",
                    )
                    fs_target_video = gr.Video(
                        sources=["upload"],
                        label="…or target video",
                        elem_id="faceswap-target-video",
                    )
                with gr.Column():
                    fs_result_image = gr.Image(
                        type="filepath",
                        label="Result",
                        interactive=False,
                        elem_id="faceswap-result-image",
                    )
                    fs_result_video = gr.Video(
                        label="Result video",
                        interactive=False,
                        elem_id="faceswap-result-video",
                    )
            with gr.Row():
                fs_face = gr.Number(
                    value=None,
                    precision=0,
                    minimum=0,
                    label="Target face (empty: all; 0 = leftmost)",
                    elem_id="faceswap-face",
                )
                fs_voice = gr.Dropdown(
                    choices=[],
                    value=None,
                    label="Video: speak in this voice (optional)",
                    elem_id="faceswap-voice",
                )
                fs_text = gr.Textbox(
                    label="Video: new soundtrack text", lines=2, elem_id="faceswap-text"
                )
            fs_button = gr.Button("Swap faces", variant="primary", elem_id="faceswap-button")
            fs_status = gr.Markdown("", elem_id="faceswap-status")

        with gr.Tab("Detect", id="detect"):
            gr.Markdown(DETECTOR_NOTICE, elem_id="detect-notice")
            suspect = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label="Clip to check",
                elem_id="detect-audio",
            )
            check = gr.Button("Check the clip", elem_id="detect-button")
            verdict = gr.Markdown("", elem_id="detect-verdict")
            timeline = gr.Plot(label="Detector timeline", elem_id="detect-timeline")

        # -- handlers ----------------------------------------------------------------------------
        library_outputs = [table, library_errors, voice, to_delete, fs_voice]

        def library() -> tuple[Any, ...]:
            rows, errors = web.voice_rows()
            choices = web.voice_choices()
            ids = web.studio.library.names()
            note = "\n".join(["Unusable voice folders:", *(f"- {e}" for e in errors)])
            note = note if errors else ""
            return (
                gr.Dataframe(value=rows, headers=VOICE_COLUMNS),
                note,
                gr.Dropdown(choices=choices),
                gr.Dropdown(choices=ids, value=None),
                gr.Dropdown(choices=choices),
            )

        def run_clone(
            text_in: str,
            source_in: str,
            voice_in: str | None,
            reference_in: str | None,
            engine_in: str,
            speed_in: float,
            consent_in: str,
            language_in: str,
            quality_in: str,
            words_in: str,
            emotion_in: str,
            strength_in: float,
            _key_in: str,  # read by the page's player only
            live_in: str,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's injection idiom
        ) -> Iterator[tuple[Any, ...]]:
            skip = gr.skip()
            try:
                if live_in:  # the page's player is streaming it: follow that job
                    started = web.streamed_job(live_in)
                else:  # a recording (or a page without its player): a queued job
                    started = web.submit_clone(
                        text_in,
                        source_in,
                        voice_in,
                        reference_in,
                        engine_in,
                        speed_in,
                        consent_in,
                        language_in,
                        quality_in,
                        words_in,
                        emotion_in,
                        strength_in,
                    )
            except StudioError as e:
                yield _error_text(e), None, None, None, None
                return
            job = started
            yield _status(job), None, None, None, None
            for job in web.follow(started.id):  # ends holding the finished job
                progress(job.progress, desc=job.message or job.state)
                yield _status(job), skip, skip, skip, skip
            if job.state != "done":
                return
            try:
                analysis = web.analyse(job, reference_in if source_in == SOURCE_REFERENCE else None)
            except StudioError as e:
                audio = str(web.result_path(job))
                yield f"{_status(job)}  \nPlots unavailable: {e}", audio, None, None, None
                return
            yield (
                f"{_status(job)}  \n{analysis.summary}",
                str(web.result_path(job)),
                analysis.signals,
                analysis.embedding,
                analysis.projection,
            )

        def run_enroll(
            audio_in: str | None,
            name_in: str,
            consent_in: str,
            engine_in: str,
            overwrite_in: bool,
            quality_in: str,
            words_in: str,
            consent_audio_in: str | None,
            challenge_in: str | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Iterator[tuple[Any, ...]]:
            skip = gr.skip()
            try:
                queued = web.submit_enroll(
                    audio_in,
                    name_in,
                    consent_in,
                    engine_in,
                    overwrite_in,
                    quality_in,
                    words_in,
                    consent_audio=consent_audio_in,
                    challenge_id=challenge_in,
                )
            except StudioError as e:
                yield _error_text(e), *(skip for _ in library_outputs)
                return
            job = queued
            for job in web.follow(queued.id):  # ends holding the finished job
                progress(job.progress, desc=job.message or job.state)
                yield _status(job), *(skip for _ in library_outputs)
            if job.state == "done":
                voice_name = (job.result or {}).get("voice", "")
                yield f"{_status(job)}  \nEnrolled voice `{voice_name}`.", *library()

        def run_phrase(name_in: str) -> tuple[str, str | None]:
            try:
                return web.consent_phrase(name_in)
            except StudioError as e:
                return _error_text(e), None

        def run_delete(voice_in: str | None) -> tuple[Any, ...]:
            try:
                message = web.delete_voice(voice_in)
            except StudioError as e:
                return _error_text(e), *(gr.skip() for _ in library_outputs)
            return message, *library()

        def run_faceswap(
            source_in: str | None,
            image_in: str | None,
            video_in: str | None,
            face_in: float | None,
            voice_in: str | None,
            text_in: str | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Iterator[tuple[Any, ...]]:
            skip = gr.skip()
            try:
                queued = web.submit_faceswap(
                    source_in, image_in, video_in, face_in, voice_in, text_in
                )
            except StudioError as e:
                yield _error_text(e), None, None
                return
            job = queued
            for job in web.follow(queued.id):  # ends holding the finished job
                progress(job.progress, desc=job.message or job.state)
                yield _status(job), skip, skip
            if job.state != "done":
                return
            result = str(web.result_path(job))
            video = (job.result or {}).get("media") == "video"
            yield (
                f"{_status(job)}  \n{web.faceswap_summary(job)}",
                None if video else result,
                result if video else None,
            )

        def run_detect(audio_in: str | None) -> tuple[Any, Any]:
            try:
                return web.detect(audio_in)
            except StudioError as e:
                return _error_text(e), gr.skip()

        # Giving a recording or picking a voice switches "Voice from" to match.
        for event in (reference.upload, reference.stop_recording):
            event(lambda: SOURCE_REFERENCE, None, source, queue=False, **hidden)
        voice.select(lambda: SOURCE_VOICE, None, source, queue=False, **hidden)
        blocks.load(library, None, library_outputs, **hidden)
        refresh.click(library, None, library_outputs, **hidden)
        generate.click(
            run_clone,
            [
                text,
                source,
                voice,
                reference,
                engine,
                speed,
                clone_consent,
                language,
                clone_quality,
                clone_words,
                emotion,
                emotion_strength,
                stream_key,
                live_job,
            ],
            [status, result, signals, embedding, projection],
            js=_GENERATE_JS,
            # No Gradio overlays (a timer from the click on, then a pulse on five outputs):
            # drawing them kept Chromium at ~40 % of a core while the first audio was being
            # made on the same 2 cores. The status line shows the job's progress in words.
            show_progress="hidden",
            **hidden,
        )
        blocks.load(web.stream_key, None, [stream_key], **hidden)
        enroll.click(
            run_enroll,
            [
                enroll_audio,
                enroll_name,
                consent,
                enroll_engine,
                overwrite,
                enroll_quality,
                enroll_words,
                consent_audio,
                challenge_state,
            ],
            [enroll_status, *library_outputs],
            **hidden,
        )
        phrase_button.click(run_phrase, [enroll_name], [phrase_text, challenge_state], **hidden)
        delete.click(run_delete, [to_delete], [delete_status, *library_outputs], **hidden)
        check.click(run_detect, [suspect], [verdict, timeline], **hidden)
        fs_button.click(
            run_faceswap,
            [fs_source, fs_target_image, fs_target_video, fs_face, fs_voice, fs_text],
            [fs_status, fs_result_image, fs_result_video],
            **hidden,
        )
    return blocks


# -- mounting -----------------------------------------------------------------------------------
def token_auth(token: str) -> Callable[[str, str], bool]:
    """Gradio login check: any user name, the server's token as the password."""

    def check(_username: str, password: str) -> bool:
        return secrets.compare_digest(password.encode(), token.encode())

    return check


def add_pwa_routes(app: FastAPI) -> None:
    """`/manifest.json`, `/sw.js` and `/pwa/*` (public: nothing in them is private)."""
    worker = (PWA_DIR / "sw.js").read_text(encoding="utf-8")
    # Any change to the release, Gradio or these files makes a new worker with a new cache.
    assets = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(PWA_DIR.iterdir())))
    version = f"{__version__}-gradio-{gr.__version__}-{assets.hexdigest()[:8]}"
    worker = worker.replace("__VERSION__", version)

    @app.get("/manifest.json", include_in_schema=False)
    def manifest() -> FileResponse:
        return FileResponse(PWA_DIR / "manifest.json", media_type="application/manifest+json")

    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> Response:
        # no-cache: the browser checks for a new worker on every visit.
        headers = {"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"}
        return Response(worker, media_type="text/javascript", headers=headers)

    app.mount("/pwa", StaticFiles(directory=PWA_DIR), name="pwa")


def mount_web(
    app: FastAPI,
    studio: Studio,
    store: JobStore,
    runner: JobRunner,
    token: str | None = None,
    *,
    max_upload_bytes: int = 20 * 2**20,
    voice_consent: bool = False,
    stream_keys: StreamKeys | None = None,
) -> FastAPI:
    """Mount the web studio at `/` of `app` (after its API routes, which keep precedence).
    With `voice_consent`, enrolling needs consent proven by the speaker's voice. With a
    `token`, the page's player streams with keys from `stream_keys` (the app's)."""
    add_pwa_routes(app)
    keys = stream_keys if token else None
    web = StudioWeb(studio, store, runner, max_upload_bytes, voice_consent, keys)
    blocks = build_blocks(web)
    gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        auth=token_auth(token) if token else None,
        auth_message="Log in with any user name and the server's token as the password."
        if token
        else None,
        # Result audio is served from the job folders; uploads in flight never are.
        allowed_paths=[str(store.jobs_dir)],
        blocked_paths=[str(store.incoming_dir)],
        max_file_size=max_upload_bytes,
        favicon_path=str(PWA_DIR / "icon-192.png"),
        footer_links=["settings"],
        run_history=False,
        ssr_mode=False,
        pwa=True,
        theme=gr.themes.Soft(
            primary_hue="indigo",
            # System fonts: the default theme would fetch web fonts, and this app is offline.
            font=["system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        ),
        head=_HEAD,
        js=_REGISTER_JS,
    )
    _serve_ui_as_fallback(app)
    return app


def _serve_ui_as_fallback(app: FastAPI) -> None:
    """Move Gradio from its Mount at `/` to the router's fallback.

    A Mount at `/` matches every path, so it would answer a wrong method on an API route
    (404 instead of 405) and unknown `/api/v1` paths (with Gradio's error body). As the
    fallback it is reached only when no route matches at all; API paths keep the API's
    JSON 404.
    """
    mount = app.router.routes[-1]
    if not (isinstance(mount, Mount) and mount.path == ""):
        raise RuntimeError("expected Gradio's mount at '/' as the app's last route")
    app.router.routes.pop()
    ui, not_found = mount.app, app.router.default

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path = get_route_path(scope)
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            await not_found(scope, receive, send)
        else:
            await ui(scope, receive, send)

    app.router.default = fallback

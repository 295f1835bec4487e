"""User-facing errors: each carries one line that the CLI prints and the API returns as 4xx."""


class StudioError(Exception):
    """A problem with the user's input or set-up, explained in one line."""


class AudioError(StudioError):
    """Audio that cannot be read, is corrupt, silent, or too short."""


class TextError(StudioError):
    """Text that is empty or longer than the documented limit."""


class VoiceError(StudioError):
    """Unknown, corrupt or partial voice in the library."""


class EngineError(StudioError):
    """Unknown engine, or an engine that cannot run with the given voice."""


class FaceError(StudioError):
    """No face where one is needed, or a face index that does not exist."""


class MediaError(StudioError):
    """An image or video that cannot be read, is of an unsupported type, or is too large."""

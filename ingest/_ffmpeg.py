"""Finding the ffmpeg binary and starting it so it cannot outlive the agent."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
from functools import lru_cache

from .errors import IngestError

FFMPEG_ENV = "EVIDENCE_VAULT_FFMPEG"
_PR_SET_PDEATHSIG = 1


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg to run: $EVIDENCE_VAULT_FFMPEG, then PATH, then imageio-ffmpeg's bundled one.

    Raises IngestError when there is none.
    """
    explicit = os.environ.get(FFMPEG_ENV)
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as error:
        raise IngestError(f"no ffmpeg: install one or set {FFMPEG_ENV} ({error})") from None


def die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the agent dies (Linux), so ffmpeg finishes its
    segment and exits instead of recording on unobserved."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

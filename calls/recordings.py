"""Call recordings (RECORD_CALLS): livekit-agents' session recording, kept as `<recordings dir>/<call id>.ogg`,
and deleted after RECORD_RETENTION_DAYS.

livekit-agents writes each session's audio (the caller on one channel, the assistant on the other) to
`audio.ogg` in the job's temporary folder, which goes when the job's process does: keep_recording() copies it out.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from .store import CallStore, UnknownCall

log = logging.getLogger("calls")
SUFFIX = ".ogg"


def keep_recording(audio: Path, folder: Path, call_id: str) -> Path:
    """Copies the session's recording to `folder` (mode 600: it is what a caller said); the copy's path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = folder / f"{call_id}{SUFFIX}"
    partial = kept.with_suffix(".part")
    shutil.copyfile(audio, partial)
    os.chmod(partial, 0o600)
    partial.replace(kept)  # never half a file under the name the store holds
    return kept


def prune_recordings(store: CallStore, folder: Path, retention_days: int, now: float | None = None) -> int:
    """Deletes recordings older than `retention_days` (0: keeps all) and forgets them in the store; how many."""
    if retention_days <= 0 or not folder.is_dir():
        return 0
    cutoff = (now or time.time()) - retention_days * 86400
    pruned = 0
    for recording in folder.glob(f"*{SUFFIX}"):
        if recording.stat().st_mtime >= cutoff:
            continue
        recording.unlink(missing_ok=True)
        pruned += 1
        try:
            store.set_recording(recording.stem, None)
        except UnknownCall:  # a file the store never knew (or a deleted call's)
            pass
    if pruned:
        log.info("deleted %d recordings older than %d days (RECORD_RETENTION_DAYS)", pruned, retention_days)
    return pruned

"""API key and secret for the self-hosted server: the local equivalent of "Create new key" in the LiveKit dashboard."""

from __future__ import annotations

import secrets
from pathlib import Path

from .files import atomic_write
from .settings import Settings

DEV_KEY, DEV_SECRET = "devkey", "secret"
MIN_SECRET_LENGTH = 32


def ensure_api_credentials(settings: Settings, dev: bool = False) -> tuple[Settings, bool]:
    """Returns settings with credentials, generating and saving them to `.env` on first use.

    The second value says whether new credentials were written.
    """
    if dev:
        return settings.with_credentials(DEV_KEY, DEV_SECRET), False
    if settings.api_key and settings.api_secret:
        return settings, False
    api_key = "API" + secrets.token_hex(6)
    api_secret = secrets.token_urlsafe(36)  # 48 characters
    save_env_values(settings.env_file, LIVEKIT_API_KEY=api_key, LIVEKIT_API_SECRET=api_secret)
    return settings.with_credentials(api_key, api_secret), True


def ensure_local_openai_key(settings: Settings) -> tuple[Settings, bool]:
    """Settings with LOCAL_OPENAI_API_KEY, the key the local endpoint wants, generated into `.env` on first use.

    The second value says whether a new key was written."""
    return _ensure_generated(settings, "LOCAL_OPENAI_API_KEY", prefix="local-")


def ensure_call_webhook_secret(settings: Settings) -> tuple[Settings, bool]:
    """Settings with CALL_WEBHOOK_SECRET, the key the end-of-call webhook is signed with, generated into `.env` on
    first use (whether or not a CALL_WEBHOOK_URL is set yet, so the receiver can be given it beforehand).

    The second value says whether a new secret was written."""
    return _ensure_generated(settings, "CALL_WEBHOOK_SECRET", prefix="whsec_")


def _ensure_generated(settings: Settings, key: str, *, prefix: str) -> tuple[Settings, bool]:
    field = key.lower()
    if getattr(settings, field):
        return settings, False
    value = prefix + secrets.token_urlsafe(32)
    save_env_values(settings.env_file, **{key: value})
    return settings.with_generated(field, value), True


def save_env_values(env_file: Path, **values: str) -> None:
    """Writes keys into `.env` (`KEY=value`, replacing a line that sets the key, else appended), keeping the rest of
    the file as it was. All at once: the new file is written beside the old one, private (mode 600) from its first
    byte, and renamed over it, so no reader ever sees half a file or a key without its secret."""
    try:
        lines = env_file.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    pending = dict(values)
    for index, line in enumerate(lines):
        key = line.split("=", 1)[0].strip().removeprefix("export ").strip() if "=" in line else None
        if key in pending and not line.lstrip().startswith("#"):
            lines[index] = f"{key}={pending.pop(key)}"
    lines += [f"{key}={value}" for key, value in pending.items()]
    atomic_write(env_file, "\n".join(lines) + "\n", mode=0o600)


def weak_secret_warning(settings: Settings) -> str | None:
    if settings.api_secret and len(settings.api_secret) < MIN_SECRET_LENGTH and settings.api_secret != DEV_SECRET:
        return (
            f"LIVEKIT_API_SECRET is {len(settings.api_secret)} characters; livekit-server wants at least "
            f"{MIN_SECRET_LENGTH}. Delete it from {settings.env_file} and run `python cli.py up` to generate one."
        )
    return None

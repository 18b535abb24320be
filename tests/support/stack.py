"""A test stack's folder (its own .env, ports and credentials) and the helpers tests share to drive it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stack.credentials import (
    ensure_api_credentials,
    ensure_call_webhook_secret,
    ensure_local_openai_key,
    save_env_values,
)
from stack.settings import REPO_ROOT, Settings, settings_for_port_block

ARTIFACTS = REPO_ROOT / "test-artifacts"  # screenshots, and the stacks' logs for a failed CI run
LOCAL_ENDPOINT_KEY = "local-test-" + secrets.token_urlsafe(24)  # the key of the `local_endpoint` fixture's endpoint


@dataclass
class RunningStack:
    env_file: Path
    run_dir: Path

    @property
    def settings(self) -> Settings:
        return Settings.load(self.env_file, self.run_dir)

    def env_for_processes(self) -> dict[str, str]:
        return self.settings.env_for_processes()

    def cli(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Runs `python cli.py ARGS` against this stack."""
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "cli.py"), *args],
            env={**os.environ, "PHONE_ENV_FILE": str(self.env_file), "PHONE_RUN_DIR": str(self.run_dir),
                 "COLUMNS": "200", **(env or {})},
            capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
        )


def make_stack_dir(base_dir: Path, port_base: int, **extra: str) -> RunningStack:
    """A stack folder with its own .env (own ports, fresh credentials)."""
    env_file = base_dir / ".env"
    save_env_values(env_file, **settings_for_port_block(port_base, **extra))
    stack = RunningStack(env_file=env_file, run_dir=base_dir / "run")
    ensure_api_credentials(stack.settings)
    ensure_local_openai_key(stack.settings)
    ensure_call_webhook_secret(stack.settings)
    return stack


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)

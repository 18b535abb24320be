"""A systemd unit for production: the stack starts at boot and supervisord itself is restarted if it dies.

`cli.py up` starts supervisord and leaves it running (Type=forking, its pid file the unit's main process); systemd
restarts the whole stack, through `cli.py up` again, if supervisord dies. The components' own restarts, backoff and
health checks stay supervisord's and the watchdog's (stack/supervision.py): one place for them, tested by
`make test`, rather than a unit per component.
"""

from __future__ import annotations

import getpass
import sys

from .settings import REPO_ROOT, Settings
from .supervision import pid_file_path

UNIT_NAME = "phone-assistant.service"


def _quote(value: object) -> str:
    """A value for an Exec or Environment line: quoted, with systemd's specifiers (%) and quotes escaped."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{text}"'


def _path(value: object) -> str:
    """A path setting (WorkingDirectory, PIDFile): unquoted, its specifiers (%) escaped."""
    return str(value).replace("%", "%%")


def unit(settings: Settings, user: str | None = None) -> str:
    cli = [sys.executable, str(REPO_ROOT / "cli.py")]
    command = " ".join(_quote(part) for part in cli)
    env_file = settings.env_file
    return "\n".join([
        "[Unit]",
        "Description=Phone assistant: LiveKit, SIP and the AI agent, under supervisord",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=forking",
        f"User={user or getpass.getuser()}",
        f"WorkingDirectory={_path(REPO_ROOT)}",
        f"Environment={_quote(f'PHONE_ENV_FILE={env_file}')} {_quote(f'PHONE_RUN_DIR={settings.run_dir}')}",
        f"ExecStart={command} up",
        f"ExecStop={command} down",
        f"PIDFile={_path(pid_file_path(settings))}",
        "Restart=on-failure",
        "RestartSec=10",
        "TimeoutStartSec=15min",  # a first start assembles the local model and waits up to 10 min for it
        "TimeoutStopSec=2min",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])

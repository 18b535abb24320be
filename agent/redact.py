"""Callers' numbers out of the agent's log above debug level.

Our own lines name a caller only at debug level. livekit-agents' lines carry more at info: the participant identity
(`sip_+15550123`, in its `lk.pii.*` fields) and the room, which the SIP dispatch rule names after the caller
(`call-_+15550123_xYz`), on every line of a job. A filter on the worker's log handlers (every job process's records
pass through them) masks numbers in what is logged above debug level: `+15550123` becomes `+•••••23`, and the
`lk.pii.*` fields are dropped. Debug level keeps everything (LOG_LEVEL=debug, for a developer).
"""

from __future__ import annotations

import logging
import re

NUMBER = re.compile(r"\+\d{6,15}")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def mask(text: str) -> str:
    return NUMBER.sub(lambda found: "+" + "•" * (len(found.group()) - 3) + found.group()[-2:], text)


class RedactCallers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        for key in [key for key in vars(record) if key.startswith("lk.pii.")]:
            del record.__dict__[key]
        message = record.getMessage()
        if NUMBER.search(message):
            record.msg, record.args = mask(message), ()
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str) and NUMBER.search(value):
                record.__dict__[key] = mask(value)
        return True


def filter_root_handlers() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactCallers) for f in handler.filters):
            handler.addFilter(RedactCallers())


def install() -> None:
    """Adds the filter to the handlers livekit-agents' CLI sets up when it runs (cli.run_app configures logging
    itself, in `_legacy._configure_logger` or `cli.setup_logging` depending on the path)."""
    from livekit.agents.cli import _legacy, cli

    for module, name in ((_legacy, "_configure_logger"), (cli, "setup_logging")):
        configure = getattr(module, name, None)
        if configure is None or getattr(configure, "redacts_callers", False):
            continue

        def configured(*args, _configure=configure, **kwargs):
            _configure(*args, **kwargs)
            filter_root_handlers()

        configured.redacts_callers = True
        setattr(module, name, configured)

"""Who the assistant answers for: the business's name, hours, facts and transfer number.

Read from `.env` keys, or from a TOML file named by BUSINESS_CONFIG (its keys are the same, lower-case).
Nothing business-specific lives in the prompt itself.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class BusinessProfile:
    business_name: str = "Example Company"
    business_hours: str = "Monday to Friday, 9 am to 5 pm"
    business_timezone: str = "UTC"
    business_facts: str = ""
    transfer_number: str = ""
    agent_language: str = "en"
    greeting: str = ""
    farewell: str = ""

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> BusinessProfile:
        env = os.environ if env is None else env
        values: dict[str, str] = {}
        if config_file := env.get("BUSINESS_CONFIG"):
            path = Path(config_file).expanduser()
            if not path.is_file():
                raise ValueError(f"BUSINESS_CONFIG={config_file} is not a file")
            values.update({k: str(v) for k, v in tomllib.loads(path.read_text()).items()})
        for field in fields(cls):
            if env.get(field.name.upper()):
                values[field.name] = env[field.name.upper()]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def greeting_text(self) -> str:
        return self.greeting or f"Thanks for calling {self.business_name}. How can I help you today?"

    @property
    def farewell_text(self) -> str:
        return self.farewell or f"Thank you for calling {self.business_name}. Goodbye!"

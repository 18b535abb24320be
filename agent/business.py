"""Who the assistant answers for: the business's name, hours, facts and transfer number.

Read from `.env` keys, or from a TOML file named by BUSINESS_CONFIG (its keys are the same, lower-case).
Nothing business-specific lives in the prompt itself.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from opening_hours import OpeningHours, UnknownCountryError


def spoken_clock(moment: datetime) -> str:
    """"9 AM", "5:30 PM": a time as it is said."""
    return moment.strftime("%I:%M %p").lstrip("0").replace(":00", "")


@dataclass(frozen=True)
class BusinessProfile:
    business_name: str = "Example Company"
    business_hours: str = "Monday to Friday, 9 am to 5 pm"
    opening_hours: str = ""  # the same hours in OpenStreetMap syntax ("Mo-Fr 09:00-17:00"); empty: not known
    business_timezone: str = "UTC"
    # ISO code ("US", "GB"): which public holidays "PH" in opening_hours means; empty: unknown
    business_country: str = ""
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
        profile = cls(**{k: v for k, v in values.items() if k in known})
        profile.opening_schedule()  # a typo fails at start, not in the middle of a call
        return profile

    def opening_schedule(self) -> OpeningHours | None:
        if not self.opening_hours:
            return None
        try:
            return OpeningHours(self.opening_hours, country=self.business_country.upper() or None)
        except UnknownCountryError:
            raise ValueError(f"BUSINESS_COUNTRY={self.business_country!r} is not an ISO country code the opening-hours "
                             f"library knows; write it like 'US' or 'GB'") from None
        except Exception as error:  # the library raises its own SyntaxError type, with a multi-line diagram
            reason = str(error).strip().splitlines()[-1].strip(" =")
            raise ValueError(f"OPENING_HOURS={self.opening_hours!r} is not OpenStreetMap opening_hours syntax "
                             f"({reason}); write it like 'Mo-Fr 09:00-17:00; Sa 10:00-14:00'") from None

    def open_state(self, now: datetime) -> str:
        """"We're open until 5 PM." / "We're closed now; we open again Monday at 9 AM." / "" when not known."""
        schedule = self.opening_schedule()
        if schedule is None:
            return ""
        local = now.replace(tzinfo=None)  # the library works in the business's local wall-clock time
        change = schedule.next_change(local)
        if schedule.is_open(local):
            return f"We're open now, until {spoken_clock(change)}." if change else "We're open now."
        if change is None:
            return "We're closed."
        day = "today" if change.date() == local.date() else change.strftime("%A")
        return f"We're closed right now; we open again {day} at {spoken_clock(change)}."

    @property
    def greeting_text(self) -> str:
        return self.greeting or f"Thanks for calling {self.business_name}. How can I help you today?"

    @property
    def farewell_text(self) -> str:
        return self.farewell or f"Thank you for calling {self.business_name}. Goodbye!"

"""Who the assistant answers for: the business's name, hours, facts and transfer number.

Read from the settings (stack/settings.py), or from a TOML file named by BUSINESS_CONFIG (its keys are the same,
lower-case); a key set in the settings wins over the file. Nothing business-specific lives in the prompt itself.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import get_args

from opening_hours import OpeningHours, UnknownCountryError

from stack.settings import Settings, TransferMode

from .keypad import parse_keypad


def spoken_clock(moment: datetime) -> str:
    """"9 AM", "5:30 PM": a time as it is said."""
    return moment.strftime("%I:%M %p").lstrip("0").replace(":00", "")


TRANSFER_MODES = get_args(TransferMode)  # a business file's value is checked like the setting


@dataclass(frozen=True)
class BusinessProfile:
    # Each field is the setting of the same name; its default is the setting's.
    business_name: str = Settings.default("business_name")
    business_hours: str = Settings.default("business_hours")
    # the same hours in OpenStreetMap syntax ("Mo-Fr 09:00-17:00"); empty: not known
    opening_hours: str = Settings.default("opening_hours")
    business_timezone: str = Settings.default("business_timezone")
    # ISO code ("US", "GB"): which public holidays "PH" in opening_hours means; empty: unknown
    business_country: str = Settings.default("business_country")
    business_facts: str = Settings.default("business_facts")
    transfer_number: str = Settings.default("transfer_number")
    transfer_mode: str = Settings.default("transfer_mode")  # auto, warm or cold
    agent_language: str = Settings.default("agent_language")
    greeting: str = Settings.default("greeting")
    farewell: str = Settings.default("farewell")
    # phone keypad shortcuts, like "0=person, 9=hours" (agent/keypad.py)
    keypad: str = Settings.default("keypad")

    @classmethod
    def load(cls, settings: Settings | None = None) -> BusinessProfile:
        """The profile in `settings` (default: Settings.load()); ValueError, in one line, for a bad value."""
        settings = Settings.load() if settings is None else settings
        values: dict[str, str] = {}
        if path := settings.business_config:
            path = path.expanduser()
            if not path.is_file():
                raise ValueError(f"BUSINESS_CONFIG={settings.business_config} is not a file")
            values.update({k: str(v) for k, v in tomllib.loads(path.read_text()).items()})
        known = [f.name for f in fields(cls)]
        values.update(settings.set_values(known))
        profile = cls(**{k: v for k, v in values.items() if k in known})
        profile.opening_schedule()  # a typo fails at start, not in the middle of a call
        profile.keypad_shortcuts()
        if profile.transfer_mode not in TRANSFER_MODES:
            raise ValueError(f"transfer_mode={profile.transfer_mode!r} is not one of {', '.join(TRANSFER_MODES)}")
        return profile

    def keypad_shortcuts(self) -> dict[str, str]:
        return parse_keypad(self.keypad)

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

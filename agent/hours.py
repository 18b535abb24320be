"""Opening-hours questions answered from the schedule, so the assistant says the hours instead of a model's guess.

`answer_hours_question` reads which day, date or time a caller asks about ("on Sunday", "on Christmas Day", "at 6 pm
on Thursday", "this weekend") and speaks the answer computed from the OpenStreetMap schedule. `hours_from_text` turns
common free-text hours ("Mon-Sat 8:30am-6pm, Sun 10-2") into that syntax when only free text was configured.

Everything works in the business's local wall-clock time, as `BusinessProfile.open_state` does.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import holidays
import opening_hours
from opening_hours import OpeningHours, State

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
DAY = timedelta(days=1)
SUMMARY_WEEKS = 5  # a weekday's usual hours: the commonest over its next five dates, so one holiday doesn't count
LOOKAHEAD = timedelta(days=400)  # how far to look for the next opening
EVENING = time(18, 0)
# Where a holiday name is looked up when the business's own country doesn't know it (Easter Monday for a US business).
FALLBACK_CALENDARS = (("US", None), ("GB", "ENG"), ("CA", None), ("AU", None))


# ---------------------------------------------------------------------------------------------------------------------
# The schedule, day by day


@dataclass(frozen=True)
class Span:
    begin: datetime
    end: datetime  # may be after midnight: overnight hours belong to the day they start on
    continued: bool = False  # began the day before (the tail of last night's hours)


@dataclass(frozen=True)
class DayHours:
    day: date
    spans: tuple[Span, ...]

    @property
    def is_open(self) -> bool:
        return bool(self.spans)

    @property
    def all_day(self) -> bool:
        start = datetime.combine(self.day, time())
        return any(span.begin <= start and span.end >= start + DAY for span in self.spans)

    @property
    def usual_key(self) -> tuple:
        """What makes two days' hours the same, whatever their date."""
        if self.all_day:
            return ("all day",)
        return tuple((s.begin.time(), s.end.time(), (s.end.date() - s.begin.date()).days) for s in self.spans
                     if not s.continued)


def day_hours(schedule: OpeningHours, day: date) -> DayHours:
    start = datetime.combine(day, time())
    spans = []
    # From the day before, to learn whether the first open span is the tail of last night's hours.
    for begin, end, state, _comment in schedule.intervals(start - DAY, start + 2 * DAY):
        begin, end = _naive(begin), _naive(end)
        if state == State.OPEN and end > start and begin < start + DAY:
            spans.append(Span(begin=max(begin, start), end=end, continued=begin < start))
    return DayHours(day=day, spans=tuple(spans))


def usual_hours(schedule: OpeningHours, weekday: int, *, today: date) -> tuple:
    first = today + timedelta(days=(weekday - today.weekday()) % 7)
    keys = [day_hours(schedule, first + timedelta(weeks=n)).usual_key for n in range(SUMMARY_WEEKS)]
    return Counter(keys).most_common(1)[0][0]


def is_usual_day(schedule: OpeningHours, day: date, *, today: date) -> bool:
    """Whether `day` has its weekday's usual hours (not a holiday or other exception)."""
    return day_hours(schedule, day).usual_key == usual_hours(schedule, day.weekday(), today=today)


def next_opening(schedule: OpeningHours, after: datetime) -> datetime | None:
    for begin, _end, state, _comment in schedule.intervals(after, after + LOOKAHEAD):
        if state == State.OPEN:
            return _naive(begin)
    return None


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------------------------------
# Saying times and days


def clock(moment: datetime | time) -> str:
    """"9 AM", "5:30 PM", "noon", "midnight"."""
    if (moment.hour, moment.minute) == (0, 0):
        return "midnight"
    if (moment.hour, moment.minute) == (12, 0):
        return "noon"
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{moment.hour % 12 or 12}{minutes} {'AM' if moment.hour < 12 else 'PM'}"


def day_name(day: date, *, today: date, with_date: bool = False) -> str:
    """"today", "tomorrow", "Friday", "Friday, December 25" (the date once it is over a week away, or when asked)."""
    if day == today:
        return "today"
    if day == today + DAY:
        return "tomorrow"
    if with_date or day - today > 6 * DAY:
        return f"{WEEKDAYS[day.weekday()]}, {MONTHS[day.month - 1]} {day.day}"
    return WEEKDAYS[day.weekday()]


def spans_words(hours: DayHours) -> str:
    """"from 8 AM to noon and from 1 PM to 5 PM", "from Friday night until 3 AM", "24 hours"."""
    if hours.all_day:
        return "24 hours"
    parts = []
    for span in hours.spans:
        if span.continued:  # the tail of last night's hours
            parts.append(f"from {WEEKDAYS[(hours.day.weekday() - 1) % 7]} night until {clock(span.end)}")
        elif span.end - span.begin >= DAY:
            parts.append(f"from {clock(span.begin)} on, around the clock")
        else:
            parts.append(f"from {clock(span.begin)} to {clock(span.end)}")
    return " and ".join(parts)


def usual_words(key: tuple) -> str:
    if key == ("all day",):
        return "24 hours"
    return " and ".join(f"from {clock(begin)} to {clock(end)}" for begin, end, _days in key)


def days_list(weekdays: list[int]) -> str:
    """[0, 1, 2, 3, 4] -> "Monday to Friday"; [0, 2, 4] -> "Monday, Wednesday and Friday"."""
    runs: list[list[int]] = []
    for weekday in sorted(weekdays):
        if runs and runs[-1][-1] == weekday - 1:
            runs[-1].append(weekday)
        else:
            runs.append([weekday])
    names: list[str] = []
    for run in runs:
        if len(run) >= 3:
            names.append(f"{WEEKDAYS[run[0]]} to {WEEKDAYS[run[-1]]}")
        else:
            names.extend(WEEKDAYS[d] for d in run)
    return join_and(names)


def join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def closes_on_holidays(schedule: OpeningHours) -> bool:
    return re.search(r"\bPH\s+(off|closed)\b", str(schedule)) is not None


def holiday_on(day: date, country: str) -> str:
    """The public holiday on that date in the business's country, "" if none or the country is unknown."""
    calendar = _calendar(country, None, public_only=True, years=(day.year,))
    names = [n for n in (calendar.get(day) or "").split("; ") if n and "observed" not in n]
    return names[0] if names else ""


@functools.lru_cache(maxsize=64)  # a calendar costs milliseconds to build; calls ask the same few
def _calendar(country: str, subdiv: str | None, *, public_only: bool, years: tuple[int, ...]) -> dict[date, str]:
    if not country:
        return {}
    try:
        country = country.upper()
        calendar = holidays.country_holidays(country, subdiv=subdiv)
    except NotImplementedError:  # a country `holidays` doesn't know
        return {}
    categories = ("public",) if public_only else tuple(c for c in calendar.supported_categories if c != "school")
    return holidays.country_holidays(country, subdiv=subdiv, years=years, categories=categories)


# ---------------------------------------------------------------------------------------------------------------------
# Reading the question

ORDINAL_WORDS = {w: n for n, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth".split(), start=1)}
ORDINAL_WORDS |= {f"twenty {w}": 20 + n for w, n in list(ORDINAL_WORDS.items())[:9]}
ORDINAL_WORDS |= {"thirtieth": 30, "thirty first": 31}
_ORDINAL = "|".join(sorted(ORDINAL_WORDS, key=len, reverse=True))
_MONTH = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|" \
         r"nov(?:ember)?|dec(?:ember)?"
_DAY_OF_MONTH = rf"(\d{{1,2}})(?:st|nd|rd|th)?|({_ORDINAL})"
_WEEKDAY = "|".join(w.lower() for w in WEEKDAYS)

MONTH_FIRST = re.compile(rf"\b({_MONTH})\.?\s+(?:the\s+)?(?:{_DAY_OF_MONTH})\b")
DAY_FIRST = re.compile(rf"\b(?:the\s+)?(?:{_DAY_OF_MONTH})\s+(?:of\s+)?({_MONTH})\b")
DAY_OF_MONTH_ONLY = re.compile(rf"\bthe\s+(?:(\d{{1,2}})(?:st|nd|rd|th)|({_ORDINAL}))\b")
WEEKDAY_NAMED = re.compile(rf"\b(next|this|coming)?\s*({_WEEKDAY})(s)?\b")
WEEKEND = re.compile(r"\b(this|the|next|coming)?\s*(weekend)(s)?\b")
RELATIVE_DAY = re.compile(r"\b(today|tonight|tomorrow)\b")
EVENING_WORDS = re.compile(rf"\btonight\b|\bthis evening\b|\b(?:today|tomorrow|{_WEEKDAY})s? (?:night|evening)\b")
CLOCK_WITH_MERIDIEM = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s*m\b\.?")
CLOCK_AFTER_AT = re.compile(r"\b(at|around|by|after|till|until|til)\s+(\d{1,2})(?::(\d{2}))?\b(?!\s*(?:st|nd|rd|th)\b)")
CLOSING_TIME_WORDS = ("after", "till", "until", "til")  # "open until 9?" means 9 PM
CLOCK_WORDS = re.compile(r"\b(noon|midday|midnight)\b")
ASKS_SUMMARY = re.compile(r"\bhours\b|\bschedule\b|\bwhen are you open\b|\bwhat days\b|\bwhich days\b|\btimes\b"
                          r"|\bdays (?:are|do) you\b|24/7|\baround the clock\b|\bevery day\b|\bweekly\b")
ASKS_NOW = re.compile(r"\bnow\b|\bstill\b|\bcurrently\b|\bat the moment\b|\bright now\b")
THROUGH = re.compile(r"\b(?:until|till|til)\s+(?:\d|noon|midnight)")  # "open until 9 pm?": open up to then
# "When do you close?" asks for one moment, answered from now; "What are your ...?" asks for the hours themselves.
ASKS_MOMENT = re.compile(r"\b(?:when|what time|how late|how early|until when|till when)\b")
WH_WORD = re.compile(rf"{ASKS_MOMENT.pattern}|\b(?:what hours|what are)\b")
# Words that name a day or date we may fail to place; then the weekly summary is safer than a guess.
DATE_HINT = re.compile(rf"\b(?:{_MONTH.replace('may|', '')})\b|\bholidays?\b|\beve\b|\bweek\b|\bmonth\b|\bday\b"
                       r"|\b\d{1,2}(?:st|nd|rd|th)\b|\d+/\d+")


@dataclass(frozen=True)
class HoursQuestion:
    days: tuple[date, ...] = ()  # the days asked about; empty: no day named
    named_as: str = ""  # "relative", "weekday", "next weekday", "date", "holiday", "weekend"
    holiday: str = ""  # the holiday the caller named
    plural: bool = False  # "on Sundays", "on weekends": the weekday in general
    at: time | None = None  # a time of day asked about ("at 6 pm")
    through: bool = False  # "until 9 pm": open up to that time, not at it
    evening: bool = False  # "tonight", "Friday night"
    yes_no: bool = True  # "are you open...?" rather than "when do you...?"
    wants_summary: bool = False
    wants_now: bool = False
    unresolved: bool = False  # names a day or date that could not be placed


def normalized(text: str) -> str:
    text = text.lower().replace("’", "'").replace("-", " ")
    text = re.sub(r"'s\b", "", text)
    text = re.sub(r"\b(new year|mother|father|valentine|patrick)s\b", r"\1", text)
    text = re.sub(r"[^a-z0-9:/ ]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def read_question(text: str, *, now: datetime, country: str = "") -> HoursQuestion:
    today = now.date()
    raw = text.lower().replace("’", "'")
    words = normalized(text)
    found = dict(at=_time_asked(raw, words), through=bool(THROUGH.search(raw)),
                 evening=bool(EVENING_WORDS.search(words)), yes_no=not WH_WORD.search(words),
                 wants_now=bool(ASKS_NOW.search(words)))
    if holiday := _holiday_asked(words, today=today, country=country):
        name, day = holiday
        return HoursQuestion(days=(day,), named_as="holiday", holiday=name, **found)
    if day := _date_asked(words, today=today):
        return HoursQuestion(days=(day,), named_as="date", **found)
    if match := WEEKEND.search(words):
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        if today.weekday() == 6:
            saturday = today - DAY  # on a Sunday, "this weekend" is what is left of it: today
        if match.group(1) == "next" and today.weekday() >= 5:
            saturday += timedelta(weeks=1)  # said during a weekend, "next weekend" is the following one
        days = tuple(day for day in (saturday, saturday + DAY) if day >= today)
        return HoursQuestion(days=days, named_as="weekend", plural=bool(match.group(3)), **found)
    if match := WEEKDAY_NAMED.search(words):
        weekday = WEEKDAYS.index(match.group(2).capitalize())
        ahead = (weekday - today.weekday()) % 7
        is_next = match.group(1) == "next"
        if is_next and ahead == 0:
            ahead = 7
        return HoursQuestion(days=(today + timedelta(days=ahead),), named_as="next weekday" if is_next else "weekday",
                             plural=bool(match.group(3)), **found)
    if match := RELATIVE_DAY.search(words):
        day = today + DAY if match.group(1) == "tomorrow" else today
        return HoursQuestion(days=(day,), named_as="relative", **found)
    if found["at"] is not None or found["evening"]:
        return HoursQuestion(**found)
    if DATE_HINT.search(words):
        return HoursQuestion(unresolved=True, **found)
    # A misheard "What are your opening hours?" ("... opening nowers?") still asks for the week, not for now.
    asks_week = ASKS_SUMMARY.search(words) or not (found["yes_no"] or ASKS_MOMENT.search(words))
    return HoursQuestion(wants_summary=bool(asks_week) and not found["wants_now"], **found)


def _time_asked(raw: str, words: str) -> time | None:
    if match := CLOCK_WITH_MERIDIEM.search(raw):
        hour, minute = int(match.group(1)) % 12, int(match.group(2) or 0)
        return time(hour + (12 if match.group(3) == "p" else 0), minute) if minute < 60 else None
    if match := CLOCK_WORDS.search(words):
        return time(0) if match.group(1) == "midnight" else time(12)
    if match := CLOCK_AFTER_AT.search(raw):
        hour, minute = int(match.group(2)), int(match.group(3) or 0)
        if hour > 23 or minute > 59:
            return None
        if 1 <= hour <= 11:  # no AM/PM: "at 8 in the morning", "at 6" and "until 9" as a shop's caller means them
            if "morning" in words:
                evening = False
            elif re.search(r"\b(evening|night|afternoon)\b", words) or match.group(1) in CLOSING_TIME_WORDS:
                evening = True
            else:
                evening = hour <= 6
            hour += 12 if evening else 0
        return time(hour, minute)
    return None


def _date_asked(words: str, *, today: date) -> date | None:
    for pattern, month_group in ((MONTH_FIRST, 1), (DAY_FIRST, 3)):
        if match := pattern.search(words):
            month_word = match.group(month_group)
            day_digits, day_word = (match.group(2), match.group(3)) if month_group == 1 else match.group(1, 2)
            month = next(i for i, m in enumerate(MONTHS, 1) if m.lower().startswith(month_word[:3]))
            return _next_date(today, month=month, day=int(day_digits) if day_digits else ORDINAL_WORDS[day_word])
    if match := DAY_OF_MONTH_ONLY.search(words):
        day = int(match.group(1)) if match.group(1) else ORDINAL_WORDS[match.group(2)]
        return _next_date(today, month=None, day=day)
    return None


def _next_date(today: date, *, month: int | None, day: int) -> date | None:
    """The first such date from today on ("the 1st": of this month or the next)."""
    for offset in range(0, 24 if month is None else 5 * 12, 1 if month is None else 12):
        index = today.month - 1 + offset if month is None else month - 1 + offset
        year, month_number = today.year + index // 12, index % 12 + 1
        try:
            candidate = date(year, month_number, day)
        except ValueError:  # the 31st of a short month, February 29th
            continue
        if candidate >= today:
            return candidate
    return None


def _holiday_asked(words: str, *, today: date, country: str) -> tuple[str, date] | None:
    """("Christmas Day", date) for "open on christmas?", from the country's calendar first, then common ones."""
    years = (today.year, today.year + 1)
    calendars = [(country.upper(), None)] if country else []
    calendars += [c for c in FALLBACK_CALENDARS if c != (country.upper(), None)]
    best: tuple[int, int, date, str] | None = None  # (-matched length, calendar rank, date, name): the smallest wins
    for rank, (code, subdiv) in enumerate(calendars):
        for day, names in _calendar(code, subdiv, public_only=False, years=years).items():
            if not today <= day <= today + timedelta(days=366):
                continue
            for name in names.split("; "):
                if "observed" in name:
                    continue
                for variant in _name_variants(name):
                    if re.search(rf"\b{re.escape(variant)}\b", words):
                        candidate = (-len(variant), rank, day, name)
                        best = candidate if best is None or candidate < best else best
    return (best[3], best[2]) if best else None


def _name_variants(name: str) -> list[str]:
    """"Christmas Day" is also "christmas"; "Easter Sunday" is also "easter"."""
    full = normalized(name)
    short = re.sub(r" (day|sunday)$", "", full)
    return [full, short] if short != full and short not in {"new", "labor", "labour"} else [full]


# ---------------------------------------------------------------------------------------------------------------------
# Answering


def answer_hours_question(text: str, *, schedule: OpeningHours, now: datetime, country: str = "") -> str:
    """One or two short spoken sentences that answer a caller's question about the opening hours."""
    local = _naive(now)
    question = read_question(text, now=local, country=country)
    if question.unresolved or (question.wants_summary and not question.days):
        return weekly_summary(schedule, today=local.date(), country=country)
    if question.holiday and closes_on_holidays(schedule) and not country:
        # The schedule closes on public holidays but doesn't know which country's: don't promise the regular hours.
        return (f"I can't confirm our hours on {question.holiday}. "
                f"{weekly_summary(schedule, today=local.date(), country=country)}")
    if question.at is not None:
        return _answer_for_time(question, schedule=schedule, now=local, country=country)
    if question.evening:
        return _answer_for_evening(question, schedule=schedule, now=local)
    if len(question.days) > 1:
        return _answer_for_weekend(question, schedule=schedule, now=local)
    if question.days:
        return _answer_for_day(question, schedule=schedule, now=local, country=country)
    return _answer_for_now(question, schedule=schedule, now=local)


def weekly_summary(schedule: OpeningHours, *, today: date, country: str = "") -> str:
    """"We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."."""
    by_hours: dict[tuple, list[int]] = {}
    for weekday in range(7):
        by_hours.setdefault(usual_hours(schedule, weekday, today=today), []).append(weekday)
    closed = by_hours.pop((), [])
    holidays_note = " We're closed on public holidays." if country and closes_on_holidays(schedule) else ""
    if not by_hours:
        return "We're closed at the moment."
    if list(by_hours) == [("all day",)] and not closed:
        return "We're open 24 hours a day, seven days a week." + holidays_note
    if len(by_hours) == 1 and not closed:
        return f"We're open every day {usual_words(next(iter(by_hours)))}." + holidays_note
    open_parts = [f"{days_list(days)} {usual_words(key)}" for key, days in by_hours.items()]
    closed_part = f", and closed {days_list(closed)}" if closed else ""
    return f"We're open {join_and(open_parts)}{closed_part}." + holidays_note


def _answer_for_now(question: HoursQuestion, *, schedule: OpeningHours, now: datetime) -> str:
    yes, no = ("Yes, ", "No, ") if question.yes_no else ("", "")
    if schedule.is_open(now):
        change = schedule.next_change(now)
        if change is None:
            return sentence(f"{yes}we're open now, around the clock.")
        change = _naive(change)
        until = clock(change) if change - now < timedelta(hours=18) else \
            f"{day_name(change.date(), today=now.date())} at {clock(change)}"
        return sentence(f"{yes}we're open now, until {until}.")
    return sentence(f"{no}we're closed right now.") + _opens_again(schedule, after=now, today=now.date())


def _opens_again(schedule: OpeningHours, *, after: datetime, today: date) -> str:
    opening = next_opening(schedule, after)
    if opening is None:
        return ""
    return f" We open again {day_name(opening.date(), today=today)} at {clock(opening)}."


def _day_phrase(question: HoursQuestion, day: date, *, schedule: OpeningHours, today: date, country: str,
                closed: bool = False) -> str:
    """"on Friday", "on Sundays", "today", "on Christmas Day, Friday, December 25", "on Thursday, Thanksgiving Day"."""
    if question.named_as == "relative" or (day == today and question.named_as != "holiday"):
        return day_name(day, today=today)
    if question.named_as == "holiday":
        return f"on {question.holiday}, {day_name(day, today=today, with_date=True)}"
    usual = is_usual_day(schedule, day, today=today)
    with_date = question.named_as in ("date", "next weekday") or not usual
    named = day_name(day, today=today, with_date=with_date)
    if named == "tomorrow" and question.named_as == "weekday":
        named = WEEKDAYS[day.weekday()]  # "on Friday" when asked about Friday, even if it is tomorrow
    if usual and (question.plural or (closed and question.named_as == "weekday")):
        named = WEEKDAYS[day.weekday()] + "s"  # "we're closed on Sundays": true of every Sunday
    phrase = named if named == "tomorrow" else f"on {named}"
    if not usual and (holiday := holiday_on(day, country)):
        phrase += f", {holiday}"
    return phrase


def _lead_in(phrase: str) -> str:
    """A comma after a phrase that has commas in it: "On Sunday, November 29, we're closed."."""
    return f"{phrase}," if "," in phrase else phrase


def _answer_for_day(question: HoursQuestion, *, schedule: OpeningHours, now: datetime, country: str) -> str:
    day = question.days[0]
    today = now.date()
    hours = day_hours(schedule, day)
    yes, no = ("Yes, ", "No, ") if question.yes_no else ("", "")
    if hours.is_open and day == today and all(span.end <= now for span in hours.spans):
        last = max(span.end for span in hours.spans)
        answer = sentence(f"{no}we closed at {clock(last)} today.")
        if question.named_as == "weekday" and is_usual_day(schedule, day, today=today):
            # "What time do you open on Sunday?" on a Sunday evening asks about Sundays, not only about today.
            answer += f" On {WEEKDAYS[day.weekday()]}s we're open {spans_words(hours)}."
        return answer + _opens_again(schedule, after=now, today=today)
    phrase = _day_phrase(question, day, schedule=schedule, today=today, country=country, closed=not hours.is_open)
    if hours.is_open:
        return sentence(f"{yes}{_lead_in(phrase)} we're open {spans_words(hours)}.")
    after = now if day == today else datetime.combine(day + DAY, time())
    closed = f"{phrase}, we're closed" if "," in phrase else f"we're closed {phrase}"
    return sentence(f"{no}{closed}.") + _opens_again(schedule, after=after, today=today)


def _answer_for_time(question: HoursQuestion, *, schedule: OpeningHours, now: datetime, country: str) -> str:
    today = now.date()
    if question.days:
        day = question.days[0]
    else:  # "are you open at 9 am?" asked at 8 PM means tomorrow
        day = today if question.at > now.time() else today + DAY
        question = HoursQuestion(days=(day,), named_as="relative", at=question.at, through=question.through,
                                 yes_no=question.yes_no)
    moment = datetime.combine(day, question.at)
    if question.at == time(0) and question.through:
        moment += DAY  # "open until midnight on Friday": the midnight that ends Friday
    # "Until 9 PM" asks whether we are open up to 9 PM, so look at the minute before.
    checked = moment - timedelta(minutes=1) if question.through else moment
    hours = day_hours(schedule, day)
    if not hours.is_open:
        return _answer_for_day(question, schedule=schedule, now=now, country=country)
    phrase = _day_phrase(question, day, schedule=schedule, today=today, country=country)
    if schedule.is_open(checked):
        change = schedule.next_change(checked)
        until = f", until {clock(_naive(change))}" if change else ""
        if question.through:
            return sentence(f"Yes, {_lead_in(phrase)} we're open{until.replace(',', '')}.")
        return f"Yes, we're open at {clock(question.at)} {phrase}{until}."
    that_day = sentence(_lead_in(phrase)) if question.through else "Today" if day == today else "That day"
    if question.through:
        return f"No, we're not open until {clock(question.at)}. {that_day} we're open {spans_words(hours)}."
    return f"No, we're closed at {clock(question.at)} {phrase}. {that_day} we're open {spans_words(hours)}."


def _answer_for_evening(question: HoursQuestion, *, schedule: OpeningHours, now: datetime) -> str:
    day = question.days[0] if question.days else now.date()
    today = now.date()
    evening = datetime.combine(day, EVENING)
    name = "tonight" if day == today else f"{day_name(day, today=today)} evening"
    if day == today:
        evening = max(evening, now)
    hours = day_hours(schedule, day)
    late = [span for span in hours.spans if span.end > evening]
    if late:
        span = late[0]
        hours_words = f"until {clock(span.end)}" if span.begin <= evening else \
            f"from {clock(span.begin)} to {clock(span.end)}"
        return sentence(f"{'Yes, ' if question.yes_no else ''}{name} we're open {hours_words}.")
    after = max(now, datetime.combine(day, time()))
    if hours.is_open:
        last = max(span.end for span in hours.spans)
        when = "today" if day == today else f"on {day_name(day, today=today)}"
        closing = f"No, we close at {clock(last)} {when}." if last > now else f"No, we closed at {clock(last)} today."
        return closing + _opens_again(schedule, after=max(after, last), today=today)
    when = "today" if day == today else f"on {day_name(day, today=today)}"
    return f"No, we're closed {when}." + _opens_again(schedule, after=after, today=today)


def _answer_for_weekend(question: HoursQuestion, *, schedule: OpeningHours, now: datetime) -> str:
    days = [day_hours(schedule, day) for day in question.days]
    name = "on weekends" if question.plural else "this weekend"
    today = now.date()
    named = {h.day: day_name(h.day, today=today) if h.day - today > 6 * DAY else WEEKDAYS[h.day.weekday()]
             for h in days}
    open_days = [f"{named[h.day]} {spans_words(h)}" for h in days if h.is_open]
    closed_days = [named[h.day] for h in days if not h.is_open]
    if not open_days:
        after = max(now, datetime.combine(days[-1].day + DAY, time()))
        return f"No, we're closed {name}." + _opens_again(schedule, after=after, today=today)
    closed = f", and closed {join_and(closed_days)}" if closed_days else ""
    return sentence(f"{'Yes, ' if question.yes_no else ''}{name} we're open {join_and(open_days)}{closed}.")


# ---------------------------------------------------------------------------------------------------------------------
# Free text to OpenStreetMap syntax

_TEXT_DAY = (r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:s|nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?"
             r"|sun(?:day)?)s?")
_TEXT_TIME = r"(?:\d{1,2}(?:[:.]\d{2})?\s*(?:[ap]\.?m\.?)?|noon|midday|midnight)"
_RANGE_WORD = r"\s*(?:-|to|through|thru|till|until)\s*"
TEXT_TOKEN = re.compile(
    r"(?P<always>24\s*/\s*7|(?:open\s+)?24\s+hours(?:\s+a\s+day)?(?:,?\s+(?:7|seven)\s+days\s+a\s+week)?"
    r"|around the clock)"
    rf"|(?P<group>weekdays|weekends?|daily|every\s*day|(?:7|seven)\s+days\s+a\s+week|(?:public\s+|bank\s+)?holidays)"
    rf"|(?P<dayrange>\b{_TEXT_DAY}\b\.?{_RANGE_WORD}\b{_TEXT_DAY}\b\.?)"
    rf"|(?P<day>\b{_TEXT_DAY}\b\.?)"
    rf"|(?P<timerange>\b{_TEXT_TIME}{_RANGE_WORD}{_TEXT_TIME}(?![\w:]))"
    rf"|(?P<closed>\bclosed\b|\boff\b|\bshut\b|\bexcept\b)")
FILLER = {"and", "open", "we", "we're", "were", "are", "from", "on", "the", "hours", "is", "also", "our", "at",
          "between", "opening", "business", "otherwise", "all", "but"}
GROUPS = {"weekdays": range(5), "weekend": range(5, 7), "weekends": range(5, 7), "daily": range(7)}
OSM_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
PUBLIC_HOLIDAYS = 7  # stands for "PH" among the weekday numbers


def hours_from_text(business_hours: str) -> str | None:
    """"Monday to Friday, 9 am to 5 pm" -> "Mo-Fr 09:00-17:00"; None where the text doesn't clearly parse."""
    text = business_hours.strip()
    if not text:
        return None
    if opening_hours.validate(text):
        return str(OpeningHours(text))
    lowered = text.lower().replace("–", "-").replace("—", "-")
    tokens, residue, last = [], [], 0
    for match in TEXT_TOKEN.finditer(lowered):
        residue.append(lowered[last:match.start()])
        last = match.end()
        tokens.append(_text_token(match))
    residue.append(lowered[last:])
    leftover = set(re.findall(r"[a-z0-9']+", " ".join(residue))) - FILLER
    if leftover or None in tokens:
        return None  # words we don't understand ("by appointment", "summer"): a wrong schedule is worse than none
    if tokens and all(token == ("times", (0, 24 * 60)) for token in tokens):
        return "24/7"  # "open 24 hours", no days named
    rules = _pair_days_with_times(_runs(tokens))
    if rules is None:
        return None
    expression = _osm_expression(*rules)
    return expression if expression and opening_hours.validate(expression) else None


def _text_token(match: re.Match) -> tuple[str, object] | None:
    kind, value = match.lastgroup, match.group()
    if kind == "always":
        return "times", (0, 24 * 60)
    if kind == "group":
        value = re.sub(r"\s+", "", value)
        if "holiday" in value:
            return "days", {PUBLIC_HOLIDAYS}
        return "days", set(GROUPS.get(value, range(7)))
    if kind == "day":
        return "days", {_text_weekday(value)}
    if kind == "dayrange":
        first, last = re.findall(_TEXT_DAY, value)[:2]
        start, end = _text_weekday(first), _text_weekday(last)
        return "days", {(start + n) % 7 for n in range((end - start) % 7 + 1)}
    if kind == "timerange":
        return ("times", span) if (span := _text_time_range(value)) else None
    return "closed", None


def _text_weekday(word: str) -> int:
    return [w[:3].lower() for w in WEEKDAYS].index(word.strip(".")[:3])


def _text_time_range(text: str) -> tuple[int, int] | None:
    """Minutes from midnight, AM/PM filled in the way people mean "9-5" and "10-2"."""
    first, second = re.split(_RANGE_WORD, text, maxsplit=1)
    start, end = _text_clock(first), _text_clock(second)
    if start is None or end is None:
        return None
    (start_minutes, start_meridiem), (end_minutes, end_meridiem) = start, end
    if start_meridiem is None and end_meridiem is None and max(start_minutes, end_minutes) < 13 * 60:
        start_meridiem = "a" if 6 * 60 <= start_minutes < 12 * 60 else "p"  # "9-5" opens at 9 AM; "1-5" at 1 PM
    if start_meridiem is None and end_meridiem is not None:  # "9-5pm": 9 AM; "1-5pm": 1 PM
        same_half = _apply(start_minutes, end_meridiem) < _apply(end_minutes, end_meridiem)
        start_meridiem = end_meridiem if same_half else "a"
    start_minutes = _apply(start_minutes, start_meridiem)
    if end_meridiem is None and end_minutes < 13 * 60:  # the first time after the opening that the hour can mean
        end_minutes = end_minutes % (12 * 60)
        while end_minutes <= start_minutes and end_minutes + 12 * 60 <= 24 * 60:
            end_minutes += 12 * 60
    else:
        end_minutes = _apply(end_minutes, end_meridiem)
    if end_minutes == 0:
        end_minutes = 24 * 60  # closing at midnight
    return (start_minutes, end_minutes) if start_minutes != end_minutes else None


def _text_clock(text: str) -> tuple[int, str | None] | None:
    text = text.strip()
    if text in ("noon", "midday"):
        return 12 * 60, "p"
    if text == "midnight":
        return 0, "a"
    match = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?\s*(?:([ap])\.?m\.?)?", text)
    if not match or int(match.group(1)) > 24 or int(match.group(2) or 0) > 59:
        return None
    meridiem = match.group(3)
    if meridiem and not 1 <= int(match.group(1)) <= 12:
        return None
    return int(match.group(1)) * 60 + int(match.group(2) or 0), meridiem


def _apply(minutes: int, meridiem: str | None) -> int:
    """12-hour minutes with "a"/"p" -> minutes from midnight (12 AM is 0, 12 PM is noon)."""
    if meridiem is None:
        return minutes
    minutes %= 12 * 60
    return minutes + (12 * 60 if meridiem == "p" else 0)


def _runs(tokens: list[tuple[str, object]]) -> list[tuple[str, list]]:
    """Neighbouring tokens of one kind together: "Mon, Wed and Fri" is one run of days."""
    runs: list[tuple[str, list]] = []
    for kind, value in tokens:
        if runs and runs[-1][0] == kind and kind != "closed":
            runs[-1][1].append(value)
        else:
            runs.append((kind, [value]))
    return runs


def _pair_days_with_times(runs: list[tuple[str, list]]) -> tuple[list, list] | None:
    """(open rules [(days, times)], closed days) from "days times", "times days", "closed days", "days closed"."""
    rules: list[tuple[set[int], list]] = []
    closed: list[set[int]] = []
    pending_days: list[set[int]] = []
    pending_times: list = []
    index = 0
    while index < len(runs):
        kind, values = runs[index]
        following = [k for k, _ in runs[index + 1:index + 3]]
        if kind == "closed":
            if following[:1] == ["days"]:
                days = runs[index + 1][1]
                # "closed Mondays, Tue-Sun 9-5": only the first day is closed when times follow the rest.
                split = 1 if following[1:] == ["times"] and len(days) > 1 else len(days)
                closed.extend(days[:split])
                pending_days = days[split:]
                index += 2
                continue
            if not pending_days:
                return None
            closed.extend(pending_days)
            pending_days = []
        elif kind == "days":
            if pending_times:
                # "9-5 Mon-Fri, Sat closed": the last day before "closed" is the closed one.
                split = len(values) - 1 if following[:1] == ["closed"] and len(values) > 1 else len(values)
                rules.append((set().union(*values[:split]), pending_times))
                pending_times, pending_days = [], values[split:]
            else:
                pending_days = values
        else:
            if pending_days:
                rules.append((set().union(*pending_days), values))
                pending_days = []
            else:
                pending_times = values
        index += 1
    if pending_days or pending_times or not rules:
        return None
    return rules, closed


def _osm_expression(rules: list[tuple[set[int], list]], closed: list[set[int]]) -> str:
    parts = []
    for days, spans in rules:
        if days == set(range(7)) and spans == [(0, 24 * 60)]:
            parts.append("24/7")
        else:
            parts.append(f"{_osm_days(days)} {','.join(f'{_osm_time(a)}-{_osm_time(b)}' for a, b in spans)}")
    # Closing rules last: in OpenStreetMap syntax a later rule overrides an earlier one for the same day.
    parts += [f"{_osm_days(days)} off" for days in closed]
    return "; ".join(parts)


def _osm_days(days: set[int]) -> str:
    names = ["PH"] if PUBLIC_HOLIDAYS in days else []
    runs: list[list[int]] = []
    for day in sorted(days - {PUBLIC_HOLIDAYS}):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names += [OSM_DAYS[r[0]] if len(r) == 1 else f"{OSM_DAYS[r[0]]}-{OSM_DAYS[r[-1]]}" for r in runs]
    return ",".join(names)


def _osm_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"

"""Opening-hours answers computed from the schedule (agent/hours.py), at fixed times in New York."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from opening_hours import OpeningHours

from agent.business import BusinessProfile
from agent.hours import answer_hours_question, hours_from_text
from stack.settings import Settings

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")
WEDNESDAY_MORNING = datetime(2026, 11, 25, 10, 30, tzinfo=NEW_YORK)  # the day before Thanksgiving
WEDNESDAY_EVENING = datetime(2026, 11, 25, 20, 0, tzinfo=NEW_YORK)
SUNDAY_MORNING = datetime(2026, 11, 29, 11, 0, tzinfo=NEW_YORK)
OFFICE = "Mo-Fr 09:00-17:00"
BAKERY = "Tu-Sa 07:00-18:00; Su 08:00-13:00; PH off"


def ask(question: str, hours: str, *, now: datetime = WEDNESDAY_MORNING, country: str = "US") -> str:
    schedule = OpeningHours(hours, country=country or None)
    return answer_hours_question(question, schedule=schedule, now=now, country=country)


@pytest.mark.parametrize("question, answer", [
    # the examples
    ("Are you open on Sunday?", "No, we're closed on Sundays. We open again Monday at 9 AM."),
    ("When do you close on Friday?", "On Friday we're open from 9 AM to 5 PM."),
    ("Are you open on Christmas Day?", "Yes, on Christmas Day, Friday, December 25, we're open from 9 AM to 5 PM."),
    # now
    ("Are you open now?", "Yes, we're open now, until 5 PM."),
    ("are you open?", "Yes, we're open now, until 5 PM."),
    ("When do you close?", "We're open now, until 5 PM."),
    # days and dates
    ("What time do you open tomorrow?", "Tomorrow we're open from 9 AM to 5 PM."),
    ("Are you open today?", "Yes, today we're open from 9 AM to 5 PM."),
    ("Are you open on Saturdays?", "No, we're closed on Saturdays. We open again Monday at 9 AM."),
    ("Are you open on December 24th?", "Yes, on Thursday, December 24, we're open from 9 AM to 5 PM."),
    ("Do you open on the twenty-fourth of December?", "Yes, on Thursday, December 24, we're open from 9 AM to 5 PM."),
    ("Are you open on the 1st?", "Yes, on Tuesday, December 1, we're open from 9 AM to 5 PM."),
    ("Are you open next Tuesday?", "Yes, on Tuesday, December 1, we're open from 9 AM to 5 PM."),
    ("Are you open this weekend?", "No, we're closed this weekend. We open again Monday at 9 AM."),
    ("Are you open tonight?", "No, we close at 5 PM today. We open again tomorrow at 9 AM."),
    ("Are you open on Boxing Day?", "No, on Boxing Day, Saturday, December 26, we're closed. "
                                    "We open again Monday, December 28 at 9 AM."),
    # a time of day
    ("Are you open at 6 pm on Thursday?",
     "No, we're closed at 6 PM on Thursday. That day we're open from 9 AM to 5 PM."),
    ("Are you open at 10 am on Thursday?", "Yes, we're open at 10 AM on Thursday, until 5 PM."),
    ("Are you open until 6 pm today?", "No, we're not open until 6 PM. Today we're open from 9 AM to 5 PM."),
    # the week
    ("What are your hours?", "We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."),
    ("When are you open?", "We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."),
    ("What are your opening times?", "We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."),
    # Whisper's hearing of "What are your opening hours?" in a test call: still the week, not "open now"
    ("What are your opening nowers?", "We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."),
    # something it cannot place: the week rather than a guess
    ("Are you open in December?", "We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."),
])
def test_office(question, answer):
    assert ask(question, OFFICE) == answer


@pytest.mark.parametrize("question, answer", [
    ("Are you open on Sunday?", "Yes, on Sunday we're open from 8 AM to 1 PM."),
    ("Are you open on Monday?", "No, we're closed on Mondays. We open again Tuesday at 7 AM."),
    ("When do you close on Friday?", "On Friday we're open from 7 AM to 6 PM."),
    ("Are you open now?", "Yes, we're open now, until 6 PM."),
    # PH off: closed on US public holidays, named and dated
    ("Are you open on Christmas Day?", "No, on Christmas Day, Friday, December 25, we're closed. "
                                       "We open again Saturday, December 26 at 7 AM."),
    ("Are you open on New Year's Day?", "No, on New Year's Day, Friday, January 1, we're closed. "
                                        "We open again Saturday, January 2 at 7 AM."),
    ("What time do you open tomorrow?", "We're closed tomorrow. We open again Friday at 7 AM."),
    ("Are you open on Thursday?", "No, on Thursday, Thanksgiving Day, we're closed. We open again Friday at 7 AM."),
    ("Open on Thanksgiving?", "No, on Thanksgiving Day, tomorrow, we're closed. We open again Friday at 7 AM."),
    ("Are you open at 10 am on Thursday?",
     "No, on Thursday, Thanksgiving Day, we're closed. We open again Friday at 7 AM."),
    ("Are you open on December 24th?", "Yes, on Thursday, December 24, we're open from 7 AM to 6 PM."),
    ("Are you open this weekend?",
     "Yes, this weekend we're open Saturday from 7 AM to 6 PM and Sunday from 8 AM to 1 PM."),
    ("Are you open on Easter Monday?", "No, on Easter Monday, Monday, March 29, we're closed. "
                                       "We open again Tuesday, March 30 at 7 AM."),
    ("What are your hours on Sunday?", "On Sunday we're open from 8 AM to 1 PM."),
    ("What are your hours?", "We're open Tuesday to Saturday from 7 AM to 6 PM and Sunday from 8 AM to 1 PM, "
                             "and closed Monday. We're closed on public holidays."),
])
def test_bakery(question, answer):
    assert ask(question, BAKERY) == answer


@pytest.mark.parametrize("question, answer", [
    ("Are you open?", "No, we're closed right now. We open again tomorrow at 9 AM."),
    ("When do you close today?", "We closed at 5 PM today. We open again tomorrow at 9 AM."),
    ("Are you open at 9?", "Yes, we're open at 9 AM tomorrow, until 5 PM."),  # 9 AM has passed: tomorrow's
])
def test_office_in_the_evening(question, answer):
    assert ask(question, OFFICE, now=WEDNESDAY_EVENING) == answer


@pytest.mark.parametrize("question, answer", [
    ("Are you open this weekend?", "No, we're closed today. We open again tomorrow at 9 AM."),
    ("Are you open on Sunday?", "No, we're closed today. We open again tomorrow at 9 AM."),
    ("Are you open next Sunday?", "No, on Sunday, December 6, we're closed. We open again Monday, December 7 at 9 AM."),
])
def test_office_on_a_sunday(question, answer):
    assert ask(question, OFFICE, now=SUNDAY_MORNING) == answer


SUNDAY_EVENING = datetime(2026, 11, 29, 19, 0, tzinfo=NEW_YORK)


@pytest.mark.parametrize("question, answer", [
    # The day named is today and its hours are over: the caller hears that day's usual hours too.
    ("What time do you open on Sunday?",
     "We closed at 1 PM today. On Sundays we're open from 8 AM to 1 PM. We open again Tuesday at 7 AM."),
    ("Are you open on Sunday?",
     "No, we closed at 1 PM today. On Sundays we're open from 8 AM to 1 PM. We open again Tuesday at 7 AM."),
    ("When do you close today?", "We closed at 1 PM today. We open again Tuesday at 7 AM."),
])
def test_bakery_on_a_sunday_evening(question, answer):
    assert ask(question, BAKERY, now=SUNDAY_EVENING) == answer


def test_split_hours_say_both_intervals():
    hours = "Mo-Fr 08:00-12:00,13:00-17:00"
    assert ask("Are you open on Friday?", hours) == "Yes, on Friday we're open from 8 AM to noon and from 1 PM to 5 PM."
    assert ask("Are you open now?", hours) == "Yes, we're open now, until noon."
    assert ask("Are you open at 12:30 pm on Friday?", hours).startswith("No, we're closed at 12:30 PM on Friday.")


def test_overnight_hours_belong_to_the_day_they_start():
    hours = "Fr-Sa 22:00-03:00"
    assert ask("Are you open on Friday?", hours) == "Yes, on Friday we're open from 10 PM to 3 AM."
    assert ask("Are you open at 1 am on Saturday?", hours) == "Yes, we're open at 1 AM on Saturday, until 3 AM."
    assert ask("What are your hours?", hours) == ("We're open Friday and Saturday from 10 PM to 3 AM, "
                                                  "and closed Monday to Thursday and Sunday.")
    friday_night = datetime(2026, 11, 27, 23, 30, tzinfo=NEW_YORK)
    assert ask("Are you open?", hours, now=friday_night) == "Yes, we're open now, until 3 AM."


def test_always_open():
    assert ask("What are your hours?", "24/7") == "We're open 24 hours a day, seven days a week."
    assert ask("Are you open on Sunday?", "24/7") == "Yes, on Sunday we're open 24 hours."
    assert ask("Are you open now?", "24/7") == "Yes, we're open now, around the clock."


def test_public_holidays_without_a_country_are_not_promised():
    answer = ask("Are you open on Christmas Day?", BAKERY, country="")
    assert answer.startswith("I can't confirm our hours on Christmas Day.")
    assert "Tuesday to Saturday from 7 AM to 6 PM" in answer


def test_answers_never_use_the_24_hour_clock():
    for question in ("Are you open now?", "What are your hours?", "When do you close on Friday?", "Open at 6 pm?"):
        for hours in (OFFICE, BAKERY, "Mo-Fr 08:30-17:30"):
            assert not re.search(r"\b\d{1,2}:\d{2}\b(?! [AP]M)", ask(question, hours))


@pytest.mark.parametrize("text, expression", [
    ("Monday to Friday, 9 am to 5 pm", "Mo-Fr 09:00-17:00"),
    ("Mon-Sat 8:30am-6pm, Sun 10-2", "Mo-Sa 08:30-18:00; Su 10:00-14:00"),
    ("Tue-Sun 9-5, closed Mondays", "Tu-Su 09:00-17:00; Mo off"),
    ("closed Mondays, Tue-Sun 9-5", "Tu-Su 09:00-17:00; Mo off"),
    ("Mon–Fri: 9am–5pm, Sat: 10am–2pm, Sun: closed", "Mo-Fr 09:00-17:00; Sa 10:00-14:00; Su off"),
    ("Mon-Fri 8am-12pm and 1pm-5pm", "Mo-Fr 08:00-12:00,13:00-17:00"),
    ("Monday through Friday 9:00 to 17:00", "Mo-Fr 09:00-17:00"),
    ("Mon, Wed, Fri 9am-1pm", "Mo,We,Fr 09:00-13:00"),
    ("Weekdays 9:00-17:00, weekends 10:00-16:00", "Mo-Fr 09:00-17:00; Sa-Su 10:00-16:00"),
    ("Fri-Sat 8pm-2am", "Fr-Sa 20:00-02:00"),
    ("Tuesday to Sunday 11am to midnight", "Tu-Su 11:00-24:00"),
    ("Daily 9-5 except Sundays", "Mo-Su 09:00-17:00; Su off"),
    ("Mon-Fri 9-5, except public holidays", "Mo-Fr 09:00-17:00; PH off"),
    ("Open 24 hours", "24/7"),
    ("Mo-Fr 09:00-17:00", "Mo-Fr 09:00-17:00"),
    # not clear enough to turn into a schedule
    ("closed Mondays", None),
    ("9am-5pm", None),
    ("By appointment only", None),
    ("Summer: Mon-Fri 9-5", None),
    ("weekdays nine to five", None),
])
def test_hours_from_text(text, expression):
    assert hours_from_text(text) == expression


def test_the_profile_checks_public_holidays_in_its_country():
    profile = BusinessProfile.load(Settings.of(OPENING_HOURS=BAKERY, BUSINESS_COUNTRY="us"))
    christmas_noon = datetime(2026, 12, 25, 12, 0, tzinfo=NEW_YORK)
    assert profile.open_state(christmas_noon).startswith("We're closed right now")
    assert BusinessProfile(opening_hours=BAKERY).open_state(christmas_noon) == "We're open now, until 6 PM."
    with pytest.raises(ValueError, match="BUSINESS_COUNTRY='XX'"):
        BusinessProfile.load(Settings.of(OPENING_HOURS=BAKERY, BUSINESS_COUNTRY="XX"))

"""When a question points: the time its words name, read against the time it is asked.

"What did I buy four weeks ago?", "from whom last Saturday?", "How many plants did I get in the
last month?", "What did John do the week before August 3, 2023?": the words name a period, and
the turns that told of it were written in it or soon after (people tell of a thing once it has
happened, seldom before). ``when`` reads such an expression and returns the ``Span`` of times a
turn telling of it would carry: from the period's start to its end plus a few days (longer for
longer or farther periods). Recall then prefers the turns written in the span (``ranking``).

Times are epoch milliseconds, read as UTC calendar days (the stored items' ``created_at``; a
data set's dates are written the same way). ``now`` is the time the question is asked: the new
input's time, live. An explicit date in the question ("before August 3, 2023", "on 23 January,
2022") anchors the relative words beside it instead of ``now``.

Only the past is read: "this weekend", "next week" plan ahead and name no earlier turn; a
month or weekday alone is taken as its latest occurrence up to ``now``. The expression's words
stay in the full-text query: a turn often tells of a thing with the same words ("last weekend
we went camping"); leaving them out cost LoCoMo 0.6-1.5 points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY_MS = 86_400_000
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = {name: n + 1 for n, name in enumerate(_MONTHS)} | {
    name[:3]: n + 1 for n, name in enumerate(_MONTHS) if name != "may"
}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a couple": 2,
    "couple of": 2, "a few": 3, "few": 3, "several": 4,
}  # fmt: skip
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_SEASONS = {"spring": (3, 5), "summer": (6, 8), "fall": (9, 11), "autumn": (9, 11), "winter": (12, 2)}

_NUMBER = (
    r"(?P<n>\d{1,3}|a couple of|a couple|couple of|a few|few|several|an?"
    r"|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
)
_UNIT = r"(?P<unit>day|week|month|year)s?"
_MONTH_NAME = (
    r"(?P<month>January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
)
_DATE = re.compile(
    r"(?:(?P<day1>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH_NAME.replace("month", "month1") + r",?\s+(?P<year1>\d{4}))"
    r"|(?:" + _MONTH_NAME.replace("month", "month2") + r"\s+(?P<day2>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year2>\d{4}))"
)
"""A full date: "23 January, 2022", "August 3, 2023", "May 8th 2023"."""
_AGO = re.compile(r"\b" + _NUMBER + r"\s+" + _UNIT + r"\s+(?P<dir>ago|before|earlier|prior)\b", re.I)
_PAST = re.compile(r"\b(?:in |during |over |within )?the (?:past|last) (?:" + _NUMBER + r"\s+)?" + _UNIT + r"\b", re.I)
_LAST = re.compile(
    r"\b(?P<which>last|this|previous)\s+(?P<what>week|weekend|month|year|summer|spring|fall|autumn|winter|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.I,
)
_THE_UNIT_BEFORE = re.compile(r"\bthe (?P<unit>day|week|weekend|month) (?:before|prior to)\b", re.I)
_DAYWORD = re.compile(r"\b(?P<word>yesterday|last night|earlier today|this morning|the other day)\b", re.I)
"""Not "today" or "tonight": "what should I watch tonight?" plans, it recalls nothing of today."""
_IN_MONTH = re.compile(
    r"\b(?P<half>(?:the )?(?:first|second) half of |(?:early|late|mid)[- ]?|(?:the )?(?:beginning|start|end) of "
    r"|(?:the )?(?:first|last) (?:\w+ )?(?:week|weekend)s? of )?" + _MONTH_NAME + r"(?:,?\s+(?P<year>\d{4}))?\b"
)
_MONTH_CONTEXT = re.compile(r"\b(?:in|on|of|during|since|until|by|from|early|late|mid|before|after|half of)\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Span:
    """The times a turn telling of what a question asks about would carry, in ms (both ends in)."""

    start: int
    end: int

    def holds(self, at: int) -> bool:
        return self.start <= at <= self.end


def when(text: str, now: int) -> Span | None:
    """The ``Span`` the time expression of ``text`` names, asked at ``now`` (ms); ``None`` when
    it names no past period."""
    anchor, anchor_match = _anchor(text, now)
    for read in (_ago, _past, _last, _unit_before, _dayword):
        found = read(text, anchor, anchor_match is not None)
        if found is not None:
            return _told(*found, anchor, now)
    if anchor_match is not None:
        day = _day_start(anchor)
        if re.search(r"\b(?:before|as of|by|until)\s*$", text[: anchor_match.start()], re.I):
            return _told(day - 60 * DAY_MS, day, anchor, now)  # a state as of the date: told before it
        if re.search(r"\b(?:after|since)\s*$", text[: anchor_match.start()], re.I):
            return Span(day, now)
        return _told(day, day + DAY_MS - 1, anchor, now)
    found = _in_month(text, now)
    if found is not None:
        return _told(*found, now, now)
    return None


def _told(start: int, end: int, anchor: int, now: int) -> Span:
    """A period's span of telling: its start to its end plus a few days (a tenth of how long
    before ``anchor`` the period began, 2 to 14 days), never past ``now``'s day."""
    slack = min(14 * DAY_MS, max(2 * DAY_MS, (anchor - start) // 10))
    return Span(start, max(start, min(end + slack, _day_start(now) + DAY_MS - 1)))


_OF_MONTH = re.compile(r"\s+of\s+" + _MONTH_NAME.replace("?P<month>", "?:"))
"""What follows "the last two weeks" when they are a month's ("... of August 2023")."""


def _anchor(text: str, now: int) -> tuple[int, re.Match[str] | None]:
    """``now``, or the explicit full date the question names (its day's end)."""
    match = _DATE.search(text)
    if match is None:
        return now, None
    month = _MONTH[(match.group("month1") or match.group("month2")).lower()[:3]]
    day = int(match.group("day1") or match.group("day2"))
    year = int(match.group("year1") or match.group("year2"))
    try:
        at = datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return now, None
    return _ms(at) + DAY_MS - 1, match


def _number(word: str | None) -> int:
    if not word:
        return 1
    word = word.lower()
    return int(word) if word.isdigit() else _NUMBERS.get(word, 1)


def _ago(text: str, now: int, anchored: bool) -> tuple[int, int] | None:
    """ "four weeks ago", "two weeks before <date>", "a couple of days ago"."""
    match = _AGO.search(text)
    if match is None or (match.group("dir").lower() != "ago" and not anchored):
        return None
    n, unit = _number(match.group("n")), match.group("unit").lower()
    days = n * _UNIT_DAYS[unit]
    fuzzy = match.group("n").lower() in ("a few", "few", "several", "a couple", "a couple of", "couple of")
    tolerance = {"day": 1, "week": 4, "month": 15, "year": 183}[unit] + (n // 2 if fuzzy else 0) * _UNIT_DAYS[unit]
    center = _day_start(now) - days * DAY_MS
    return center - tolerance * DAY_MS, center + (tolerance + 1) * DAY_MS - 1


def _past(text: str, now: int, anchored: bool) -> tuple[int, int] | None:
    """ "in the past month", "the last few weeks", "over the past 3 days": up to ``now``."""
    match = _PAST.search(text)
    if match is None or _OF_MONTH.match(text, match.end()):
        return None
    n, unit = _number(match.group("n")), match.group("unit").lower()
    days = n * _UNIT_DAYS[unit] + {"day": 1, "week": 3, "month": 7, "year": 30}[unit]
    return _day_start(now) - days * DAY_MS, now


def _last(text: str, now: int, anchored: bool) -> tuple[int, int] | None:
    """ "last Saturday", "last weekend", "last month", "this year", "last summer"."""
    for match in _LAST.finditer(text):
        which, what = match.group("which").lower(), match.group("what").lower()
        if _OF_MONTH.match(text, match.end()):
            continue  # "the last week of August": the month's end
        today = datetime.fromtimestamp(now / 1000, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if what in _WEEKDAYS:
            if which == "this":
                continue
            back = (today.weekday() - _WEEKDAYS.index(what)) % 7 or 7
            day = _ms(today - timedelta(days=back))
            return day, day + DAY_MS - 1
        if what == "weekend":
            if which == "this":
                continue  # a plan, most often ("this weekend")
            back = (today.weekday() - 5) % 7 or 7
            saturday = _ms(today - timedelta(days=back))
            return saturday, saturday + 2 * DAY_MS - 1
        if what == "week":
            return _ms(today) - (7 if which == "this" else 14) * DAY_MS, now
        if what == "month":
            if which == "this":
                return _ms(today.replace(day=1)), now
            first = today.replace(day=1)
            previous = (first - timedelta(days=1)).replace(day=1)
            return min(_ms(previous), _ms(today) - 31 * DAY_MS), now  # the calendar month or the past 31 days
        if what == "year":
            if which == "this":
                return _ms(today.replace(month=1, day=1)), now
            return (
                _ms(today.replace(year=today.year - 1, month=1, day=1)),
                _ms(today.replace(month=1, day=1)) - 1,
            )
        first_month, last_month = _SEASONS[what]
        year = today.year if today.month > last_month and first_month <= last_month else today.year - 1
        if first_month > last_month:  # winter: December to February
            year = today.year - 1 if today.month > 2 else today.year - 2
            start = datetime(year, 12, 1, tzinfo=UTC)
            end = datetime(year + 1, 3, 1, tzinfo=UTC)
        else:
            start = datetime(year, first_month, 1, tzinfo=UTC)
            end = datetime(year, last_month + 1, 1, tzinfo=UTC)
        return _ms(start), _ms(end) - 1
    return None


def _unit_before(text: str, now: int, anchored: bool) -> tuple[int, int] | None:
    """ "the week before August 3, 2023" (an explicit date only)."""
    match = _THE_UNIT_BEFORE.search(text)
    if match is None or not anchored:
        return None
    days = {"day": 1, "week": 7, "weekend": 7, "month": 30}[match.group("unit").lower()]
    return _day_start(now) - days * DAY_MS, now


def _dayword(text: str, now: int, anchored: bool) -> tuple[int, int] | None:
    match = _DAYWORD.search(text)
    if match is None:
        return None
    day, word = _day_start(now), match.group("word").lower()
    if word == "the other day":
        return day - 6 * DAY_MS, day + DAY_MS - 1
    back = 1 if word in ("yesterday", "last night") else 0
    return day - back * DAY_MS, day + DAY_MS - 1 - back * DAY_MS


def _in_month(text: str, now: int) -> tuple[int, int] | None:
    """ "in May", "in August 2023", "the first half of September 2022": the latest such month
    up to ``now`` unless a year is named. "May" counts only after "in", "on", "of", ... or
    before a year (else it is the verb). Several months ("in January and March"): from the
    first's start to the last's end."""
    found = [month for match in _IN_MONTH.finditer(text) if (month := _month(match, text, now)) is not None]
    if not found:
        return None
    return min(f[0] for f in found), max(f[1] for f in found)


def _month(match: re.Match[str], text: str, now: int) -> tuple[int, int] | None:
    name = match.group("month")
    if name == "May" and not match.group("year") and not _MONTH_CONTEXT.search(text[: match.start()]):
        return None
    month = _MONTH[name.lower()[:3]]
    today = datetime.fromtimestamp(now / 1000, UTC)
    year = int(match.group("year")) if match.group("year") else today.year - (month > today.month)
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    half = (match.group("half") or "").lower()
    if any(word in half for word in ("first", "early", "beginning", "start")):
        end = start + timedelta(days=15)
    elif any(word in half for word in ("second", "late", "last", "end")):
        start = start + timedelta(days=15)
    return _ms(start), _ms(end) - 1


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _day_start(ms: int) -> int:
    return ms - ms % DAY_MS

"""Times named in a question (a day, a month, a year; English or Arabic) and the corpus's date range."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def alternation(words) -> str:
    """A regex alternation of `words`, escaped, longest first (so "أول أمس" is tried before "أمس")."""
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


MONTHS_EN = {
    name.lower(): i for i in range(1, 13) for name in (calendar.month_name[i], calendar.month_abbr[i]) if name
} | {"sept": 9}
# Both Arabic month-naming systems: the transliterated (يوليو) and the Syriac (تموز), with common spellings.
MONTHS_AR = {
    "يناير": 1, "كانون الثاني": 1, "فبراير": 2, "شباط": 2, "مارس": 3, "آذار": 3, "اذار": 3, "أبريل": 4, "ابريل": 4,
    "إبريل": 4, "نيسان": 4, "مايو": 5, "أيار": 5, "ايار": 5, "يونيو": 6, "يونيه": 6, "حزيران": 6, "يوليو": 7,
    "يوليه": 7, "تموز": 7, "أغسطس": 8, "اغسطس": 8, "آب": 8, "سبتمبر": 9, "أيلول": 9, "ايلول": 9, "أكتوبر": 10,
    "اكتوبر": 10, "تشرين الأول": 10, "تشرين الاول": 10, "نوفمبر": 11, "تشرين الثاني": 11, "ديسمبر": 12,
    "كانون الأول": 12, "كانون الاول": 12,
}  # fmt: skip
MONTHS = MONTHS_EN | MONTHS_AR
_MONTH = alternation(MONTHS)
_PRE = r"(?<![\w])(?:[وبلف]?)"  # Arabic clitics before a month name: وفي, بديسمبر, لشهر
_YEAR = r"((?:19|20)\d\d)"
_OF_YEAR = r"من\s+(?:عام|العام|سنة)?\s*"  # "ديسمبر من عام 2015"
_PATTERNS = (
    ("day", re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")),
    ("day", re.compile(rf"\b(\d{{1,2}})\s+{_PRE}({_MONTH})\s*(?:/\s*\w+\s*)?,?\s*{_YEAR}", re.IGNORECASE)),
    ("day", re.compile(rf"{_PRE}({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}", re.IGNORECASE)),
    ("month", re.compile(rf"{_PRE}({_MONTH})\s*(?:/\s*\w+\s*)?(?:of\s+|{_OF_YEAR})?,?\s*{_YEAR}", re.IGNORECASE)),
    ("year", re.compile(rf"(?<!\d){_YEAR}(?!\d)")),
)  # fmt: skip
MONTH_NAMES_AR = ("", *("يناير فبراير مارس أبريل مايو يونيو يوليو أغسطس سبتمبر أكتوبر نوفمبر ديسمبر".split()))


@dataclass(frozen=True)
class Period:
    """A stretch of days a question names, and how precisely it named it."""

    start: date
    end: date
    precision: str  # "day" | "week" | "month" | "year"
    text: str  # as written in the question

    def label(self, arabic: bool = False) -> str:
        """The period for a reader: "24 September 2015", "December 2015" or "2014" (Arabic month names if asked)."""
        month = MONTH_NAMES_AR[self.start.month] if arabic else calendar.month_name[self.start.month]
        if self.precision == "day":
            return f"{self.start.day} {month} {self.start.year}"
        if self.precision == "week":
            end = Period(self.end, self.end, "day", "").label(arabic)
            return f"{self.start.day} {month} {self.start.year} – {end}"
        if self.precision == "month":
            return f"{month} {self.start.year}"
        return str(self.start.year)


def _month_of(name: str) -> int:
    return MONTHS[name.lower()]


WEEKDAYS_EN = {name.lower(): i for i, name in enumerate(calendar.day_name)}
WEEKDAYS_AR = {"الاثنين": 0, "الإثنين": 0, "الثلاثاء": 1, "الأربعاء": 2, "الاربعاء": 2, "الخميس": 3, "الجمعة": 4,
               "السبت": 5, "الأحد": 6, "الاحد": 6}  # fmt: skip
_AR = "\u0621-\u064a"
# Times named relative to "now" (the newest article, or a given day): yesterday, last week, last month, on Thursday.
_RELATIVE_Q = re.compile(
    r"\b(?P<yesterday>yesterday)\b|\blast\s+(?P<unit>week|month)\b"
    rf"|\b(?:on|last)\s+(?P<wd>{'|'.join(WEEKDAYS_EN)})\b"
    rf"|(?<![{_AR}])(?P<yesterday_ar>أمس|امس|البارحة)(?![{_AR}])"
    rf"|(?<![{_AR}])(?:ب|في\s+)?(?P<unit_ar>الأسبوع|الاسبوع|الشهر)\s+الماضي(?![{_AR}])"
    rf"|(?<![{_AR}])يوم\s+(?P<wd_ar>{'|'.join(WEEKDAYS_AR)})(?![{_AR}])",
    re.IGNORECASE,
)


def relative_period(question: str, now: date) -> Period | None:
    """A time named relative to `now`: "yesterday"/"أمس" (the day before), "last week"/"الأسبوع الماضي" (Monday to
    Sunday of the week before now's), "last month"/"الشهر الماضي", "on Thursday"/"يوم الخميس" (the last Thursday on
    or before now)."""
    m = _RELATIVE_Q.search(question)
    if m is None:
        return None
    words = m.group(0).strip()
    if m.group("yesterday") or m.group("yesterday_ar"):
        day = now - timedelta(days=1)
        return Period(day, day, "day", words)
    unit = (m.group("unit") or m.group("unit_ar") or "").lower()
    if unit in ("week", "الأسبوع", "الاسبوع"):
        monday = now - timedelta(days=now.weekday() + 7)
        return Period(monday, monday + timedelta(days=6), "week", words)
    if unit:
        last = now.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last, "month", words)
    weekday = WEEKDAYS_EN.get((m.group("wd") or "").lower(), WEEKDAYS_AR.get(m.group("wd_ar") or "", 0))
    day = now - timedelta(days=(now.weekday() - weekday) % 7)
    return Period(day, day, "day", words)


def question_period(question: str, now: date | None = None) -> Period | None:
    """The most precise time the question names, or None: "on 4 December 2015", "في ديسمبر 2015", "in 2014"; with
    `now` (the newest article's day), also a relative one: "yesterday", "last week", "on Thursday" (`relative_period`).
    """
    if now is not None and (relative := relative_period(question, now)) and not _names_date(question):
        return relative
    return _absolute_period(question)


def _names_date(question: str) -> bool:
    return _absolute_period(question) is not None


def _absolute_period(question: str) -> Period | None:
    text = question.translate(DIGITS)
    for precision, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            try:
                if precision == "day" and m.group(1).isdigit() and len(m.group(1)) == 4:
                    d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                elif precision == "day" and m.group(1).isdigit():
                    d = date(int(m.group(3)), _month_of(m.group(2)), int(m.group(1)))
                elif precision == "day":
                    d = date(int(m.group(3)), _month_of(m.group(1)), int(m.group(2)))
                elif precision == "month":
                    month, year = _month_of(m.group(1)), int(m.group(2))
                    last = calendar.monthrange(year, month)[1]
                    return Period(date(year, month, 1), date(year, month, last), "month", m.group(0).strip())
                else:
                    year = int(m.group(1))
                    return Period(date(year, 1, 1), date(year, 12, 31), "year", m.group(0))
            except (ValueError, KeyError):
                continue
            return Period(d, d, "day", m.group(0).strip())
    return None


# "What is the latest toll?", "ما آخر مستجدات...", "بحسب آخر الأخبار", "أحدث": the newest report is wanted. A bare
# "آخر" also means "another", so it counts only before words that make it "latest".
LATEST = re.compile(
    r"\b(?:latest|most recent|newest|most up-to-date|current(?:ly)?|so far|now stands?|stand now)\b"
    r"|(?<![\u0621-\u064a])(?:أحدث|احدث|حتى الآن|حتى الان)"
    r"|(?<![\u0621-\u064a])(?:آخر|اخر)\s+(?:ما|مستجدات|المستجدات|الأخبار|الاخبار|أخبار|اخبار|التطورات|تطورات|"
    r"حصيلة|الأنباء|الانباء|التقارير|المعلومات|ما\s+تكشف)",
    re.IGNORECASE,
)


def asks_latest(question: str) -> bool:
    """The question asks for the newest state of a story ("the latest death toll", "ما آخر مستجدات")."""
    return bool(LATEST.search(question))


_PAST = re.compile(r"\b(?:was|were|did|had)\b", re.IGNORECASE)
_AHEAD = re.compile(r"\b(?:will|would|shall|expected|scheduled|planned|due|set to|next|upcoming)\b", re.IGNORECASE)


def after_report(iso: str, published: date | None, question: str) -> bool:
    """An ISO date (or year, or month) after its article was published, with a day's slack (reports are collected
    the next day), asked about in the English past tense ("On what date was Blatter showered…?"): what the article
    reports had happened by then, so that date is something else (an election it announces for February 2016)."""
    if published is None or not _PAST.search(question) or _AHEAD.search(question):
        return False
    return iso > (published + timedelta(days=1)).isoformat()


def parse_date(value: str | None) -> date | None:
    """The day of a stored article date ("2015-07-21", "2015-07-21 02:51:32", ISO with a time zone), or None."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class DateRange:
    """The first and last dated article of a corpus, and how many articles have no date."""

    first: date | None
    last: date | None
    undated: int

    @classmethod
    def of(cls, values: list[str | None]) -> DateRange:
        """The range of stored date strings (unparseable ones count as undated)."""
        return cls.of_days([parse_date(v) for v in values])

    @classmethod
    def of_days(cls, days: list[date | None]) -> DateRange:
        known = [d for d in days if d is not None]
        return cls(min(known, default=None), max(known, default=None), len(days) - len(known))

    def after(self, period: Period, slack_days: int = 1) -> bool:
        """The period starts after the newest article (no report can hold it)."""
        return self.last is not None and period.start > self.last + timedelta(days=slack_days)

    def outside(self, period: Period) -> float:
        """1.0 when the period misses the corpus's range entirely, else 0.0 (0.0 for an undated corpus)."""
        if self.first is None or self.last is None:
            return 0.0
        return float(period.end < self.first or period.start > self.last)

    def describe(self, arabic: bool = False) -> str:
        """ "21 July 2015 to 11 August 2015" (or in Arabic), for a reader."""
        if self.first is None or self.last is None:
            return ""
        first = Period(self.first, self.first, "day", "").label(arabic)
        last = Period(self.last, self.last, "day", "").label(arabic)
        return f"من {first} إلى {last}" if arabic else f"from {first} to {last}"


@dataclass(frozen=True)
class DocFilter:
    """What a user narrowed the search to: articles dated since/until (inclusive), from these outlets (or files)."""

    since: date | None = None
    until: date | None = None
    outlets: frozenset[str] = frozenset()

    @classmethod
    def of(cls, since: str | date | None = None, until: str | date | None = None, outlets=None) -> DocFilter | None:
        """A filter from user input (YYYY-MM-DD dates, outlet names); None when nothing narrows the search.

        Raises:
            ValueError: one line, for a date that is not YYYY-MM-DD or a range that ends before it starts.
        """

        def day(name: str, value: str | date | None) -> date | None:
            if value is None or isinstance(value, date):
                return value
            if not str(value).strip():
                return None
            parsed = parse_date(str(value).strip())
            if parsed is None or len(str(value).strip()) != 10:
                raise ValueError(f"{name} must be a date as YYYY-MM-DD, not {value!r}")
            return parsed

        start, end = day("since", since), day("until", until)
        if start and end and end < start:
            raise ValueError(f"until ({end}) is before since ({start}): swap them")
        names = frozenset(o.strip() for o in (outlets or []) if isinstance(o, str) and o.strip())
        return cls(start, end, names) if (start or end or names) else None

    def admits(self, day: date | None, outlet: str, source: str) -> bool:
        """Whether an article of this date, outlet and file passes (an undated one fails any date bound)."""
        if self.outlets and outlet not in self.outlets and source not in self.outlets:
            return False
        if (self.since or self.until) and day is None:
            return False
        return not ((self.since and day < self.since) or (self.until and day > self.until))

    def describe(self, arabic: bool = False) -> str:
        """The filter in words: "since 2015-08-01, until 2015-08-05, from okaz"."""
        parts = []
        if self.since:
            parts.append(f"{'منذ' if arabic else 'since'} {self.since.isoformat()}")
        if self.until:
            parts.append(f"{'حتى' if arabic else 'until'} {self.until.isoformat()}")
        if self.outlets:
            parts.append(f"{'من' if arabic else 'from'} {', '.join(sorted(self.outlets))}")
        return "، ".join(parts) if arabic else ", ".join(parts)

"""An article's date, and where it came from: a record's field, YAML front matter, the file name, or a dateline.

A record's `date` can be when the article was collected rather than published (SaudiNewsNet's trails publication by
1-6 days), so a dateline in the first lines of the text beats an earlier-collected date when it falls before it.
Hijri datelines (Umm al-Qura) are converted with `hijridate`; front matter is read with PyYAML.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from rag.timeq import DIGITS, MONTH_NAMES_AR, MONTHS, WEEKDAYS_AR, alternation, question_period

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
ISO_IN_NAME = re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12][0-9]|3[01])(?![0-9])")
HIJRI_MONTHS = {
    "محرم": 1, "صفر": 2, "ربيع الأول": 3, "ربيع الاول": 3, "ربيع الآخر": 4, "ربيع الثاني": 4, "ربيع الاخر": 4,
    "جمادى الأولى": 5, "جمادى الاولى": 5, "جمادى الأول": 5, "جمادى الآخرة": 6, "جمادى الاخرة": 6,
    "جمادى الثانية": 6, "رجب": 7, "شعبان": 8, "رمضان": 9, "شوال": 10, "ذو القعدة": 11, "ذي القعدة": 11,
    "ذو الحجة": 12, "ذي الحجة": 12,
}  # fmt: skip
_HIJRI = re.compile(
    r"(?<!\d)(\d{1,2})\s*(?:من\s+)?("
    + alternation(HIJRI_MONTHS)
    + r")\s*(?:لعام\s*|عام\s*)?(1[34]\d\d)\s*(?:هـ|ه\b|للهجرة)"
)
DATELINE_CHARS = 300  # a dateline stands in the text's first characters
MAX_DATELINE_LEAD = 400  # days a dateline may precede a record's date and still be its publication


def front_matter(text: str) -> tuple[dict, str]:
    """YAML front matter (`---` lines around `key: value` pairs at the top) and the text after it; ({}, text) when
    there is none or it is not a mapping."""
    m = FRONT_MATTER.match(text)
    if not m:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}, text
    return (data, text[m.end() :]) if isinstance(data, dict) else ({}, text)


def iso(value: object) -> str:
    """A front-matter or record date as YYYY-MM-DD ("" when it is not one)."""
    if isinstance(value, date):
        return value.isoformat()[:10]
    if isinstance(value, str):
        p = question_period(value)
        if p and p.precision == "day":
            return p.start.isoformat()
    return ""


def date_in_name(name: str) -> str:
    """An ISO date in a file name: snn_00000_aawsat_2015-07-21.txt gives 2015-07-21."""
    for m in ISO_IN_NAME.finditer(name):
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return ""


def dateline(text: str, within: int = DATELINE_CHARS) -> str:
    """The date of a dateline in the first `within` characters: a Gregorian day, month and year ("10 أغسطس
    2015", either month system, Arabic-Indic digits) or a Hijri one ("25 شوال 1436 هـ"); the Gregorian wins when
    both are given ("... هـ الموافق 10 أغسطس 2015 م")."""
    head = text[:within].translate(DIGITS)
    p = question_period(head)
    if p and p.precision == "day":
        return p.start.isoformat()
    m = _HIJRI.search(head)
    if m:
        from hijridate import Hijri

        try:
            return Hijri(int(m.group(3)), HIJRI_MONTHS[m.group(2)], int(m.group(1))).to_gregorian().isoformat()
        except (ValueError, OverflowError):
            return ""
    return ""


def article_date(record: str, meta: dict, name: str, text: str) -> tuple[str, str]:
    """(date, where it came from): "front-matter", "record", "dateline" or "file-name"; ("", "") when unknown.

    Front matter is the author's own word. A record's date stands unless a dateline in the text falls before it
    (by at most MAX_DATELINE_LEAD days): then the record's date is when it was collected and the dateline wins."""
    if (value := iso(meta.get("date"))) != "":
        return value, "front-matter"
    line = dateline(text)
    if record:
        day = iso(record)
        if (
            line
            and day
            and date.fromisoformat(day) - timedelta(days=MAX_DATELINE_LEAD)
            <= date.fromisoformat(line)
            < date.fromisoformat(day)
        ):
            return line, "dateline"
        return record, "record"
    if value := date_in_name(name):
        return value, "file-name"
    if line:
        return line, "dateline"
    return "", ""


# -- relative days ----------------------------------------------------------------------------------------------
WEEKDAYS = WEEKDAYS_AR  # "الخميس" -> 3 (Monday is 0)
_DAY_WORDS = {"أول أمس": -2, "أول امس": -2, "أمس الأول": -2, "امس الأول": -2, "امس الاول": -2,
              "أول من أمس": -2, "أمس": -1, "امس": -1, "البارحة": -1, "اليوم": 0, "غدا": 1, "غداً": 1}  # fmt: skip
_WD = alternation(WEEKDAYS)
_DW = alternation(_DAY_WORDS)
_L = "\u0621-\u064a"
RELATIVE = re.compile(
    rf"(?<![{_L}])(?:(?:صباح|مساء|ظهر|بعد ظهر|فجر|ليل|ليلة|يوم|في)\s+)?(?:و|ف)?(?P<word>{_DW})(?![{_L}])"
    rf"(?:\s*\(?\s*(?P<wd>{_WD})\s*\)?)?"
    rf"|(?<![{_L}])(?:يوم|الـ?)\s*(?P<alone>{_WD})(?:\s+(?P<side>الماضي|المقبل|القادم))?(?![{_L}])"
)
WEEK_MONTH = re.compile(
    rf"(?<![{_L}])(?:و|ف)?(?P<unit>الأسبوع|الاسبوع|الشهر|العام)\s+(?P<side>الماضي|المقبل|القادم)(?![{_L}])"
)
MAX_LAG_DAYS = 6  # how far an article's stored date may trail the day it was written (a collection date)


def _weekday_on_or_before(day: date, weekday: int, max_back: int = MAX_LAG_DAYS) -> date | None:
    back = (day.weekday() - weekday) % 7
    return day - timedelta(days=back) if back <= max_back else None


def relative_days(text: str, published: date | None, start: int = 0, end: int | None = None) -> list[dict]:
    """The relative day expressions in text[start:end] resolved against the article's date: [{"text", "date",
    "start", "end"}] with offsets into `text`. "اليوم (الاثنين)", "أمس السبت", "أول أمس", "يوم الخميس",
    "الأسبوع الماضي" (the date of the week's Monday), "الشهر الماضي" (YYYY-MM).

    The stored date can trail the day of writing (a collection date, or a report filed just after midnight), so a
    weekday named with the expression wins: the day is the last such weekday on or before the computed one."""
    if published is None:
        return []
    end = len(text) if end is None else end
    out = []
    for m in RELATIVE.finditer(text, start, end):
        if m.group("word"):
            day = published + timedelta(days=_DAY_WORDS[m.group("word")])
            if m.group("wd"):
                day = _weekday_on_or_before(day, WEEKDAYS[m.group("wd")]) or day
        else:
            weekday, side = WEEKDAYS[m.group("alone")], m.group("side") or ""
            if side in ("المقبل", "القادم"):
                day = published + timedelta(days=(weekday - published.weekday()) % 7 or 7)
            else:  # "يوم الخميس", "الخميس الماضي": the last one before the article (on its day, unless "الماضي")
                back = (published.weekday() - weekday) % 7 or (7 if side else 0)
                day = published - timedelta(days=back)
        first = m.start() + (m.start("word") == m.start() + 1)  # "واليوم": the span starts after the clitic
        words = text[first : m.end()].rstrip()
        out.append({"text": words, "date": day.isoformat(), "start": first, "end": first + len(words)})
    for m in WEEK_MONTH.finditer(text, start, end):
        step = -1 if m.group("side") == "الماضي" else 1
        if m.group("unit") == "الشهر":
            month = published.month - 1 + step
            value = f"{published.year + month // 12:04d}-{month % 12 + 1:02d}"
        elif m.group("unit") == "العام":
            value = str(published.year + step)
        else:
            monday = published - timedelta(days=published.weekday()) + timedelta(weeks=step)
            value = monday.isoformat()
        first = m.start("unit")
        out.append({"text": text[first : m.end()], "date": value, "start": first, "end": m.end()})
    return sorted(out, key=lambda d: d["start"])


def day_fit(published: date | None, text: str, wanted: date) -> float:
    """How well an article fits a question about the day `wanted`, 0..1: half for being dated that day or the next
    (a report is filed the same day, or collected the day after), half for naming that day in its text (a relative
    day resolved to it, as in "أمس الاثنين", or the day and month written out)."""
    if published is None:
        return 0.0
    fit = 0.5 if 0 <= (published - wanted).days <= 1 else 0.0
    if any(d["date"] == wanted.isoformat() for d in relative_days(text, published)) or _names_day(text, wanted):
        fit += 0.5
    return fit


def _names_day(text: str, wanted: date) -> bool:
    months = "|".join(re.escape(m) for m, i in MONTHS.items() if i == wanted.month)
    pattern = rf"(?<!\d){wanted.day}\s*(?:من\s*)?(?:شهر\s*)?[وبل]?(?:{months})(?![\u0621-\u064a])"
    return re.search(pattern, text.translate(DIGITS), re.IGNORECASE) is not None


_WEEKDAY_NAMES_AR = {i: name for name, i in reversed(list(WEEKDAYS_AR.items()))}  # each day's first spelling


def spell_day(value: str, arabic: bool = False) -> str:
    """ "2015-07-20" as "Monday 20 July 2015", or "الاثنين 20 يوليو 2015" (a month "2015-06" as "June 2015"; a year
    as itself)."""
    import calendar

    weekdays = _WEEKDAY_NAMES_AR if arabic else calendar.day_name
    months = MONTH_NAMES_AR if arabic else calendar.month_name
    if len(value) == 10:
        d = date.fromisoformat(value)
        return f"{weekdays[d.weekday()]} {d.day} {months[d.month]} {d.year}"
    if len(value) == 7:
        return f"{months[int(value[5:])]} {value[:4]}"
    return value

"""An article's date, and where it came from: a record's field, YAML front matter, the file name, or a dateline.

A record's `date` can be when the article was collected rather than published (SaudiNewsNet's trails publication by
1-6 days), so a dateline in the first lines of the text beats an earlier-collected date when it falls before it.
Hijri datelines (Umm al-Qura) are converted with `hijridate`; front matter is read with PyYAML.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from rag.timeq import DIGITS, question_period

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
    + "|".join(sorted(map(re.escape, HIJRI_MONTHS), key=len, reverse=True))
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


def dateline(text: str) -> str:
    """The date of a dateline in the first DATELINE_CHARS characters: a Gregorian day, month and year ("10 أغسطس
    2015", either month system, Arabic-Indic digits) or a Hijri one ("25 شوال 1436 هـ"); the Gregorian wins when
    both are given ("... هـ الموافق 10 أغسطس 2015 م")."""
    head = text[:DATELINE_CHARS].translate(DIGITS)
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

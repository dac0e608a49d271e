"""Short answers: the number, date or name a fact question asks for, found in its quotes at exact article offsets.

A "how many / how much / how long" question gets a number with its unit word ("24 ساعة", "320 ألف حبة"), a "when /
what year / on what day" question a date (ISO), a "who" question a person's name (`rag.names`), read from the quotes
the extractive answerer chose. Candidates are
scored by how close they stand to the question's own words in the quote; a candidate that repeats a number of the
question, or a date where a number is asked, is not one. With no candidate there is no short answer: a wrong one
is worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date

from rag.dates import spell_day
from rag.lexical import analyze
from rag.names import person_names, romanize
from rag.timeq import DIGITS, MONTHS, MONTHS_AR, WEEKDAYS_AR, after_report, alternation, parse_date
from rag.values import ASKS_DATE, ASKS_NUMBER, SCALES_AR, UNITS_AR, VAGUE_AR

_L = "\u0621-\u064a"
_DIGITS = r"[0-9٠-٩]+(?:[.,:٫٬][0-9٠-٩]+)*"  # 1,500  15.26  3:08
QUALIFIERS = {"أكثر من": "more than", "اكثر من": "more than", "أقل من": "less than", "اقل من": "less than",
              "نحو": "about", "حوالي": "about", "حوالى": "about", "قرابة": "nearly", "ما يقارب": "about",
              "ما يزيد على": "more than", "ما يزيد عن": "more than", "زهاء": "about"}  # fmt: skip
# Unit words an English reader gets translated; any other unit is shown as written.
UNIT_EN = {
    "ساعة": "hours", "ساعات": "hours", "يوم": "days", "يوما": "days", "يوماً": "days", "أيام": "days", "ايام": "days",
    "أسبوع": "weeks", "أسابيع": "weeks", "شهر": "months", "أشهر": "months", "شهور": "months", "عام": "years",
    "عاما": "years", "عاماً": "years", "أعوام": "years", "سنة": "years", "سنوات": "years", "دقيقة": "minutes",
    "دقائق": "minutes", "ريال": "riyals", "ريالا": "riyals", "ريالاً": "riyals", "ريالات": "riyals",
    "دولار": "dollars", "دولارا": "dollars", "دولاراً": "dollars", "دولارات": "dollars", "يورو": "euros",
    "شخص": "people", "شخصا": "people", "شخصاً": "people", "أشخاص": "people", "قتيل": "dead", "قتيلا": "dead",
    "قتلى": "dead", "جريح": "injured", "جرحى": "injured", "طن": "tonnes", "أطنان": "tonnes", "كلم": "km",
    "كيلومتر": "km", "كيلومترا": "km", "متر": "metres", "مترا": "metres", "دولة": "countries", "دول": "countries",
    "نسمة": "people", "حاج": "pilgrims", "حاجا": "pilgrims", "طالب": "students", "طالبا": "students",
    "سيارة": "cars", "سيارات": "cars", "رجال": "men", "امرأة": "women", "نساء": "women", "طفل": "children",
    "أطفال": "children", "برميل": "barrels", "حبة": "pills", "قرارات": "resolutions", "قرار": "resolutions",
    "%": "%", "بالمئة": "%", "بالمائة": "%", "في المئة": "%", "في المائة": "%",
}  # fmt: skip
_NOT_UNIT = {"من", "في", "على", "إلى", "الى", "عن", "مع", "أو", "او", "و", "أن", "ان", "إن", "التي", "الذي", "حتى",
             "منذ", "بين", "عند", "قبل", "بعد", "خلال", "هذا", "هذه", "كل", "وهو", "وهي", "هو", "هي", "ما", "لا", "قد",
             "كان", "كانت", "وكان", "وكانت", "ثم", "أي", "اي", "حيث", "كما", "لكن", "ولكن", "بل",
             "إلا", "الا"}  # fmt: skip


_WORD_NUMBER = rf"(?:{alternation(UNITS_AR)}|{alternation(VAGUE_AR)})"
NUMBER_EXPR = re.compile(
    rf"(?:(?P<qual>{alternation(QUALIFIERS)})\s+)?"
    rf"(?<![{_L}0-9٠-٩])(?P<clitic>[وبلف]?(?:ال)?)"
    rf"(?P<num>{_DIGITS}|{_WORD_NUMBER}(?![{_L}]))"
    rf"(?:\s*(?P<scale>{alternation(SCALES_AR)})(?![{_L}]))?"
    rf"(?:\s*(?P<unit>%|(?:في |بال)(?:المئة|المائة)|(?![وبلف]?(?:ال)?{_WORD_NUMBER}(?![{_L}]))[{_L}]+[ًٌٍ]?))?"
)
_NUMERIC_DATE = re.compile(r"[0-9٠-٩]{1,4}[-/][0-9٠-٩]{1,2}[-/][0-9٠-٩]{1,4}")  # 18-9-1436, 5/7/2015: not amounts
_MONTH = alternation(MONTHS)
_WEEKDAY = alternation(WEEKDAYS_AR)
_Y = r"(?:1[5-9]|20)\d\d"  # a year, 1500-2099
DATE_EXPR = re.compile(
    rf"(?:(?P<wd>{_WEEKDAY})\s*[(،,]?\s*)?"
    rf"(?:(?P<d>\d{{1,2}})\s*(?:من\s+)?(?:شهر\s+)?[وبلف]?(?P<m>{_MONTH})(?:\s*(?:من\s+)?(?:عام|العام|سنة)?\s*(?P<y>{_Y}))?"
    rf"|(?P<d2>\d{{1,2}})[-/](?P<m2>\d{{1,2}})[-/](?P<y2>{_Y})"
    rf"|(?P<m3>{_MONTH})\s*(?:من\s+)?(?:عام|العام|سنة)?\s*(?P<y3>{_Y})"
    rf"|(?:عام|العام|سنة|في)\s*(?P<y4>{_Y})"
    rf"|(?<![0-9])(?P<y5>{_Y})\s*م?(?![0-9]))"
)


@dataclass
class ShortAnswer:
    """The value asked for: `article_text(doc_id)[start:end] == text`, inside citation `citation`'s quote."""

    text: str
    start: int
    end: int
    citation: int
    doc_id: str
    kind: str  # "number" | "date" | "person" | "span" (the reader's words, of no recognised kind)
    value: str  # "24", "2000000", "72" (unit "%"), "2015-07-26", "2015-07", "1989"; "" for a vague amount (عشرات);
    # a person's name as written
    unit: str = ""  # the unit word after the number, as written ("ساعة"), "" when none
    shown: str = ""  # the words the answer line quotes: the span and its unit word (an exact slice too)
    label: str = ""  # for an English reader: "24 hours", "more than 500,000 riyals", "Sunday 26 July 2015", "Badr
    # Al-Suhaibani" (a name's likely Latin spelling, `rag.names.romanize`)
    label_ar: str = ""  # a date spelled for an Arabic reader ("الأحد 26 يوليو 2015"); "" for a number
    score: float = 0.0  # how close the question's terms stand to it (`closeness`, less a little per citation rank)
    lead: float = 0.0  # its score less the next best candidate's of another value (its score when it is alone)
    by: str = "recognisers"  # "reader" where `rag.reader` pointed at it (score and lead are then the reader's)

    def to_dict(self) -> dict:
        return asdict(self)


def _word(num: str) -> str:
    """A number word without its article ("الثلاث" -> "ثلاث"); anything else as it is."""
    bare = num.removeprefix("ال")
    return bare if bare in UNITS_AR or bare in VAGUE_AR else num


def number_value(num: str, scale: str = "") -> str:
    """The value of a number as written (digits of either script, or an Arabic number word) times its scale word;
    "" for a vague amount (عشرات, عدة)."""
    word = _word(num)
    if word in VAGUE_AR:
        return ""
    if word in UNITS_AR:
        value = float(UNITS_AR[word])
    else:
        digits = num.translate(DIGITS).replace("٬", ",").replace("٫", ".")
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits):
            digits = digits.replace(",", "")
        digits = digits.replace(",", ".")
        try:
            value = float(digits)
        except ValueError:
            return ""
    value *= SCALES_AR.get(scale, 1)
    return str(int(value)) if value == int(value) else f"{value:g}"


def _format(value: str) -> str:
    if not value:
        return ""
    number = float(value)
    return f"{int(number):,}" if number == int(number) else f"{number:g}"


def _numbers_in(question: str) -> set[str]:
    """The values the question itself names ("in 2015", "الدقائق الثلاث"): not answers to it."""
    return {number_value(m.group("num")) for m in NUMBER_EXPR.finditer(question)} - {""}


def number_candidates(text: str, start: int, end: int) -> list[tuple[int, int, int, str, str, str]]:
    """(start, end, unit end, value, unit, label) for each amount in text[start:end]: the span is the number with
    its qualifier ("أكثر من") and scale ("ألف"), the unit word follows it. Dates and years are not amounts."""
    dates = [(m.start(), m.end()) for r in (DATE_EXPR, _NUMERIC_DATE) for m in r.finditer(text, start, end)]
    out = []
    for m in NUMBER_EXPR.finditer(text, start, end):
        if any(s <= m.start("num") < e for s, e in dates):
            continue
        unit = m.group("unit") or ""
        b = m.end("scale") if m.group("scale") else m.end("num")
        if unit in _NOT_UNIT or unit in MONTHS_AR:
            unit = ""
        value = number_value(m.group("num"), m.group("scale") or "")
        vague = VAGUE_AR.get(_word(m.group("num")))
        if not value and not vague:
            continue
        qual = QUALIFIERS.get(m.group("qual") or "", "")
        bare = unit.rstrip("ًٌٍ")
        unit_en = UNIT_EN.get(bare) or UNIT_EN.get(bare.removeprefix("ال"), "")
        amount = vague if vague else _format(value)
        label = " ".join(p for p in (qual, amount, unit_en) if p).replace(" %", "%")
        out.append((m.start() if m.group("qual") else m.start("num"), b, m.end() if unit else b, value, unit, label))
    return out


def date_candidates(text: str, start: int, end: int, published: date | None) -> list[tuple[int, int, str, str]]:
    """(start, end, iso, label) for each date in text[start:end]: a day, a month or a year (the article's year when
    a day and month are written without one)."""
    out = []
    for m in DATE_EXPR.finditer(text, start, end):
        g = m.groupdict()
        try:
            if g["d"]:
                year = int(g["y"]) if g["y"] else (published.year if published else 0)
                month = MONTHS.get(g["m"].lower(), 0)
                iso = date(year, month, int(g["d"])).isoformat() if year else ""
            elif g["d2"]:
                iso = date(int(g["y2"]), int(g["m2"]), int(g["d2"])).isoformat()
            elif g["m3"]:
                iso = f"{int(g['y3']):04d}-{MONTHS[g['m3'].lower()]:02d}"
            else:
                iso = g["y4"] or g["y5"]
        except (ValueError, KeyError):
            continue
        if iso:
            a = m.start() if g["wd"] else m.start() + (len(m.group()) - len(m.group().lstrip()))
            if g["y4"]:
                a = m.start("y4")
            out.append((a, m.end(), iso, spell_day(iso)))
    return out


Matcher = tuple[Callable[[frozenset[str]], bool], float]  # (does a word's stem set hold it, its weight)


def question_matchers(index, question: str) -> list[Matcher]:
    """What the question asks about, one matcher per weighted term: its Arabic stems, or for a Latin-script question
    its translated concepts (`rag.crosslingual`), with their IDF."""
    from rag.language import is_cross_lingual

    if is_cross_lingual(question):
        return [(c.found_in, c.weight) for c in index.concepts(question)]
    weights = index.term_weights(analyze(question))
    return [((lambda terms, t=t: t in terms), w) for t, w in weights.items() if w > 0]


def term_positions(matchers: list[Matcher], words: list[tuple[int, int, frozenset[str]]]) -> list[list[int]]:
    """Where each matcher's term occurs among `words` (word indexes): a word holding it, or, for a phrase found in
    no single word, a word whose neighbours and itself together hold it."""
    out = []
    for found, _ in matchers:
        at = [i for i, (_, _, terms) in enumerate(words) if found(terms)]
        if not at:  # a phrase: its words side by side
            at = [
                i
                for i in range(len(words))
                if found(frozenset().union(*(t for _, _, t in words[max(0, i - 1) : i + 2])))
            ]
        out.append(at)
    return out


def closeness(
    matchers: list[Matcher], positions: list[list[int]], words: list[tuple[int, int, frozenset[str]]], a: int, b: int
) -> float:
    """How near the question's terms stand to text[a:b]: each term counts its weight over 1 + its distance in words
    (0 inside the span), once, at its nearest occurrence (`positions`: `term_positions` of `words`); the sum is a
    share of all the weights (0..1)."""
    total = sum(w for _, w in matchers)
    if total <= 0:
        return 0.0
    first = next((i for i, (s, e, _) in enumerate(words) if e > a), len(words))
    last = max(first, next((i for i in range(len(words) - 1, -1, -1) if words[i][0] < b), first))
    score = 0.0
    for (_, weight), at in zip(matchers, positions, strict=True):
        if at:
            score += weight / (1 + min(max(0, first - i, i - last) for i in at))
    return score / total


_TOKEN = re.compile(r"\S+")
# A short answer is given only when it leads every candidate of another value by this much: the smallest lead at
# which wrong short answers stay at most 10% of the number and date questions of every tuning group (XQuAD tuning
# quarters en->ar 0.06, ar->ar 0.03; news dev tuning half en 0.05, ar 0.00):
# `python -m bench.shortbench --half tune --sweep`.
MIN_LEAD = 0.06
# The same for a person's name: the smallest lead at which wrong names stay at most 10% of the who questions of
# every tuning group (XQuAD tuning quarters en->ar 0.04, ar->ar 0.01; news dev tuning half en 0.00, with 3 of its 7
# who questions answered right), from the same sweep.
MIN_LEAD_PERSON = 0.03
# Question words that ask for something else ("Why did ... when ...?": not a date).
_OTHER_WH = re.compile(
    r"(?:^|\W)(?:who|whom|whose|where|why|which(?! year)|what(?! (?:year|date|day|month))|من هو|من هي|من|أين|اين|"
    r"لماذا|ماذا|ما|ما هو|ما هي|أي(?! (?:عام|سنة|يوم|شهر))|اي(?! (?:عام|سنة|يوم|شهر)))(?:\W|$)",
    re.IGNORECASE,
)


_PERSON_NOUNS = (
    "official|spokes(?:man|woman|person)|minister|player|coach|striker|goalkeeper|emir|prince|princess|king|queen|"
    "president|leader|commander|poet|author|writer|novelist|actor|actress|singer|artist|journalist|editor|judge|"
    "ambassador|envoy|director|chairman|governor|mayor|officer|cleric|imam|scholar|researcher|professor|lawyer|"
    "engineer|expert|candidate|deputy|manager|footballer|referee|athlete|businessman|businesswoman|preacher"
)
ASKS_PERSON = re.compile(
    rf"(?:^|\W)(?:who|whom|whose|(?:which|what) (?:[\w'’-]+ ){{0,3}}(?:{_PERSON_NOUNS})s?|من هو|من هي|من الذي|من التي)"
    r"(?:\W|$)|^\s*من(?=\s)(?!\s+(?:أين|اين|أي|اي|متى|ماذا|حيث|خلال|جهة|ناحية)(?:\W|$))",
    re.IGNORECASE,
)


# "Who did the Albanian prime minister accuse?" asks whom its subject acted on: a name that the quotes give the
# subject's role (السيد راما، رئيس وزراء ألبانيا) is the subject, never the answer.
OBJECT_WHO = re.compile(
    r"^\W*(?:who|whom)\s+(?:did|does|do|will|would|can|could|should|might|must)\s+(?!not\b)\w", re.I
)
_ROLE = re.compile(rf"\b(?:{_PERSON_NOUNS})s?\b", re.IGNORECASE)
SUBJECT_NEAR = 3  # words between a name and a role that make it the role's holder


def subject_role(question: str, concepts: list) -> Callable[[frozenset[str]], bool] | None:
    """For an English question that asks whom its subject acted on, the matcher of the subject's role (the first
    person noun after the question word: "prime minister"), from the question's `concepts`; else None."""
    if not OBJECT_WHO.search(question) or (m := _ROLE.search(question)) is None:
        return None
    noun = m.group().lower()
    return next((c.found_in for c in concepts if noun in c.source.lower() or c.source.lower() in noun), None)


def names_subject(name: str, citations: list, article_text: Callable[[str], str], role) -> bool:
    """Whether a word of `name` stands within SUBJECT_NEAR words of the subject's `role` in any quote."""
    parts = set(name.split())
    for c in citations:
        text = article_text(c.doc_id)
        words = [(re.sub(r"\W+", "", m[0]), frozenset(analyze(m[0]))) for m in _TOKEN.finditer(text, c.start, c.end)]
        for i, (word, _) in enumerate(words):
            near = words[max(0, i - SUBJECT_NEAR) : i + SUBJECT_NEAR + 1]
            if word in parts and role(frozenset().union(*(terms for _, terms in near))):
                return True
    return False


def asks_for(question: str) -> str:
    """ "number", "date", "person" or "": what the question's first question word asks for."""
    first = {
        kind: m.start()
        for kind, r in (("number", ASKS_NUMBER), ("date", ASKS_DATE), ("person", ASKS_PERSON), ("", _OTHER_WH))
        if (m := r.search(question))
    }
    return min(first, key=first.get) if first else ""


_YEAR_ONLY = re.compile(r"(?:what|which) year|(?:أي|اي) (?:عام|سنة)", re.IGNORECASE)


def short_answer(
    question: str,
    citations: list,
    article_text: Callable[[str], str],
    matchers: list[Matcher],
    published: Callable[[str], str | None] = lambda doc_id: None,
    min_lead: float | None = None,
) -> ShortAnswer | None:
    """The number, date or name the question asks for, from the quotes (first citations first), or None.

    Each candidate is scored by `closeness` to the question's terms (`question_matchers`), less a little per citation
    rank; the best is given when it leads every candidate of another value by `min_lead` (MIN_LEAD). `published` gives
    an article's date, for a day and month written without a year. A "what year" question gets the year alone."""
    kind = asks_for(question)
    if not kind or not citations:
        return None
    scored: list[tuple[float, ShortAnswer]] = []
    for rank, c in enumerate(citations):
        text = article_text(c.doc_id)
        found = _candidates(kind, question, c, text, matchers, published)
        if not found:  # no value in this quote: its words need no reading
            continue
        words = [(m.start(), m.end(), frozenset(analyze(m.group()))) for m in _TOKEN.finditer(text, c.start, c.end)]
        at = term_positions(matchers, words)
        scored += [(closeness(matchers, at, words, s.start, s.end) - 0.05 * rank, s) for s in found]
    if not scored:
        return None
    score, best = max(scored, key=lambda x: x[0])  # the first of equals: the earlier citation, the earlier words
    others = [x for x, s in scored if s.value != best.value or s.kind != best.kind]
    best.score, best.lead = round(score, 4), round(score - max(others, default=0.0), 4)
    floor = (MIN_LEAD_PERSON if best.kind == "person" else MIN_LEAD) if min_lead is None else min_lead
    if best.lead < floor:
        return None
    if best.kind == "person":
        best.label = romanize(best.text)  # spelled only for the name that is given: its model costs a few ms
    return best


def _candidates(
    kind: str, question: str, c, text: str, matchers: list[Matcher], published: Callable[[str], str | None]
) -> list[ShortAnswer]:
    """The values of the asked kind inside one citation's quote (`text` is its article), less those the question
    itself names."""
    found: list[ShortAnswer] = []
    if kind == "person":
        for a, b, _ in person_names(text, c.start, c.end):
            if not _asked_name(text[a:b], matchers):
                found.append(ShortAnswer(text[a:b], a, b, c.n, c.doc_id, "person", text[a:b], "", text[a:b]))
    elif kind == "number":
        asked = _numbers_in(question)
        for a, b, u, value, unit, label in number_candidates(text, c.start, c.end):
            if not (value and value in asked):
                found.append(ShortAnswer(text[a:b], a, b, c.n, c.doc_id, "number", value, unit, text[a:u], label))
    else:
        year_only = bool(_YEAR_ONLY.search(question))
        day = parse_date(published(c.doc_id))
        spans = date_candidates(text, c.start, c.end, day)
        spans += [(d["start"], d["end"], d["date"], spell_day(d["date"])) for d in c.dates]
        for a, b, iso, label in spans:
            if iso in question or after_report(iso, day, question):  # not a date after its report, asked as past
                continue
            if year_only:
                m = re.search(_Y, text[a:b])
                if m is None:
                    continue
                a, b, iso, label = a + m.start(), a + m.end(), iso[:4], iso[:4]
            arabic = spell_day(iso, arabic=True)
            found.append(ShortAnswer(text[a:b], a, b, c.n, c.doc_id, "date", iso, "", text[a:b], label, arabic))
    return found


def candidates_in(kind: str, question: str, c, text: str, published: Callable[[str], str | None]) -> list[ShortAnswer]:
    """The values of the asked kind inside citation `c`'s quote (`text` is its article), less those the question
    names."""
    return _candidates(kind, question, c, text, [], published)


def _asked_name(name: str, matchers: list[Matcher]) -> bool:
    """Whether most words of a name are the question's own (who succeeded Turki Al-Sudairi: not Al-Sudairi)."""
    words = [frozenset(analyze(w)) for w in name.split()]
    return sum(any(found(w) for found, _ in matchers) for w in words) * 2 >= len(words)


def short_line(short: ShortAnswer, english: bool) -> str:
    """The answer's first line: the value in the reader's language, then the words it rests on with their citation
    ("24 hours — «24 ساعة» [1]"; for an Arabic reader "«24 ساعة» [1]", or a date spelled out first)."""
    label = short.label if english else short.label_ar
    if label and label != short.shown:
        return f"{label} — «{short.shown}» [{short.citation}]"
    return f"«{short.shown}» [{short.citation}]"

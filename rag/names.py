"""Person names in Arabic news text, and their Latin spelling for English readers.

Arabic has no capital letters, so a name is found where news writing puts one:
- after a title or a role word: الأمير، الدكتور، الرائد، الأستاذ، المتحدث ... (one gentilic word, "الأمريكي", may
  stand between), then the name's parts;
- or as a given name attested in `arabic-name-romanizer`'s dictionary (about 60k names from Wikidata) followed by more
  parts.

A part is a name the dictionary attests, a link (بن، أبو، عبد، آل) with the part after it, or one family name with
the article (الحمدان, السحيباني), which ends the name. A name stops at punctuation. The Latin spelling comes from the
same library (its dictionary first, its small ONNX model for parts it has never seen). Without the library there
are still names after titles, in Arabic only.
"""

from __future__ import annotations

import logging
import re
from functools import cache, lru_cache
from pathlib import Path

from rag.jsoncache import cached_json

log = logging.getLogger(__name__)

TITLES = frozenset(
    """الأمير الأميرة الملك الشيخ الشيخة الدكتور الدكتورة د المهندس المهندسة الأستاذ الأستاذة السيد السيدة الرائد
    العقيد اللواء العميد المقدم النقيب الملازم الفريق المشير المستشار الزميل الزميلة الكابتن اللاعب المدرب الرئيس
    الوزير الداعية الإعلامي الإعلامية الفنان الفنانة الشاعر الشاعرة الكاتب الكاتبة الروائي المواطن المواطنة المقيم
    الطالب الطالبة المتحدث المحامي القاضي السفير المبعوث المخرج الممثل الممثلة المطرب المطربة الباحث الخبير
    الناطق المحافظ النائب الأمين البروفيسور المفتي الإمام الحارس المهاجم""".split()
)
LINKS = frozenset("بن بنت ابن أبو ابو أبا ابا عبد آل".split())
# Words the name dictionary attests (Ben, Ma ...), or that have the article a family name has (الذي, اليوم), but
# that in running text are almost always function words
NOT_NAMES = frozenset(
    """بين من في على عن إلى الى مع أن ان إن هو هي هم ثم قد لا ما كان كانت حيث بعد قبل عند الذي التي الذين اللذين
    اللتين اللذان اللتان اللاتي اللواتي الآن اليوم""".split()
)
GIVEN_MIN = 20  # attestations a word needs to open a name without a title (سليمان 124, بدر 123; مدير 1)
TITLED_MIN = 1  # ... to open one after a title (السيد راما: 2)
PART_MIN = 3  # ... to continue one
MAX_PARTS = 5
_WORD = re.compile(r"[\u0621-\u064a]+")


@cache
def _library():
    """(name index, transliterate) of `arabic-name-romanizer`, or None when it is not installed or unreadable."""
    try:
        from arabic_name_romanizer import transliterate
        from arabic_name_romanizer.api import default_resources_dir
        from arabic_name_romanizer.lookup import NameIndex

        return NameIndex(default_resources_dir() / "names.sqlite3"), transliterate
    except Exception as exc:
        log.warning("arabic-name-romanizer unavailable (%s): names after titles only, in Arabic", exc)
        return None


@lru_cache(maxsize=65536)
def attested(word: str) -> int:
    """How often the romanizer's dictionary attests `word` as (part of) a person's name; 0 without the library."""
    lib = _library()
    if lib is None:
        return 0
    try:
        return sum(v.count for v in lib[0].lookup_unit(word))
    except Exception:
        return 0


def romanize(name: str) -> str:
    """The name's likely Latin spelling ("سليمان الحمدان" -> "Suleiman Al-Hamdan"), "" without the library."""
    lib = _library()
    if lib is None:
        return ""
    try:
        return str(lib[1](name))
    except Exception:
        return ""


def _bare(word: str) -> str:
    """A title with its conjunction off ("والأمير" -> "الأمير")."""
    return word[1:] if word[:1] in "وف" and word[1:] in TITLES else word


def person_names(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(start, end, titled) of each person's name in text[start:end], its title left out."""
    words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text, start, end)]

    def joined(i: int) -> bool:  # word i follows word i - 1 with nothing but spaces between
        return i > 0 and not text[words[i - 1][1] : words[i][0]].strip()

    out, i = [], 0
    while i < len(words):
        titled = _bare(words[i][2]) in TITLES
        j = i + 1 if titled else i
        if titled and j < len(words) and joined(j) and words[j][2].startswith("ال") and words[j][2].endswith("ي"):
            j += 1  # الرئيس الأمريكي باراك أوباما
        first, parts = j, 0
        while j < len(words) and parts < MAX_PARTS and (joined(j) if j > first or titled else True):
            w = words[j][2]
            if w in NOT_NAMES:
                break
            if w in LINKS and j > first and j + 1 < len(words) and joined(j + 1):
                j, parts = j + 2, parts + 2
            elif attested(w) >= (PART_MIN if j > first else TITLED_MIN if titled else GIVEN_MIN):
                j, parts = j + 1, parts + 1
            elif w.startswith("ال") and len(w) > 3 and parts >= 1:
                j, parts = j + 1, parts + 1  # a family name with the article ends the name
                break
            else:
                break
        if parts >= (1 if titled else 2):
            out.append((words[first][0], words[j - 1][1], titled))
            i = j
        else:
            i += 1
    return out


# An English spelling stands for the Arabic forms the dictionary attests for it this often or more (Javad -> جواد 163,
# Noor -> نور 108, Haider -> حيدر 99; Nassr -> ناصر 1 is not enough): the consonant-skeleton matcher cannot reach
# them where the two scripts write different letters (v for و, vowels the Arabic spells out).
SPELLING_MIN = 3
SPELLING_SHARE = 0.1  # ... and a tenth as often as its most attested form (Hassan: حسن 1486, not حسان 90)
SPELLINGS_VERSION = 3  # bump when the table's form changes: its JSON cache is keyed on it


def latin_key(name: str) -> str:
    """A Latin spelling as the table keys it: lower case letters only, a doubled letter written once (Nassr, Nasr)."""
    return re.sub(r"(.)\1+", r"\1", re.sub(r"[^a-z]", "", name.lower()))


def build_spellings() -> dict[str, list[str]]:
    """Latin key -> the one-word Arabic forms (normalised as the index's words are, not stop words) that
    `arabic-name-romanizer`'s dictionary attests for it often enough (SPELLING_MIN, SPELLING_SHARE), most attested
    first; {} without the library."""
    import sqlite3

    from rag.lexical import STOPWORDS, normalize_arabic

    try:
        from arabic_name_romanizer.api import default_resources_dir

        db = sqlite3.connect(f"file:{default_resources_dir() / 'names.sqlite3'}?mode=ro", uri=True)
        rows = db.execute("SELECT arabic_key, latin, SUM(count) FROM units GROUP BY arabic_key, latin").fetchall()
        db.close()
    except Exception as exc:
        log.warning("arabic-name-romanizer's dictionary is unreadable (%s): English names by their skeleton only", exc)
        return {}
    counts: dict[str, dict[str, int]] = {}
    for arabic, latin, n in rows:
        key, form = latin_key(latin), normalize_arabic(arabic)
        if len(key) >= 3 and _WORD.fullmatch(form) and form not in STOPWORDS:  # not At -> ايت, Ben -> بين
            counts.setdefault(key, {})[form] = counts.get(key, {}).get(form, 0) + int(n)
    table = {}
    for key, forms in counts.items():
        top = max(forms.values())
        kept = sorted(
            (f for f, n in forms.items() if n >= max(SPELLING_MIN, SPELLING_SHARE * top)), key=lambda f: -forms[f]
        )
        if kept:
            table[key] = kept
    return table


@cache
def _spelling_table(cache_dir: str) -> dict[str, list[str]]:
    """`build_spellings`' table, read once per process (per cache folder) from its JSON cache when there is one."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        library = version("arabic-name-romanizer")
    except PackageNotFoundError:
        library = None
    return cached_json(cache_dir or None, "spellings", [SPELLINGS_VERSION, SPELLING_MIN, library], build_spellings)


def attested_spellings(name: str, cache_dir: str | Path | None = None) -> list[str]:
    """The Arabic forms of an English name that the name dictionary attests (Javad -> جواد), most attested first; the
    table is cached as JSON in `cache_dir` (beside the lexicon's) when one is given."""
    return _spelling_table(str(cache_dir) if cache_dir else "").get(latin_key(name), [])

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

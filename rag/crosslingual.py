"""English (and other Latin-script) questions as weighted Arabic queries: a bilingual lexicon, names and numbers.

The lexicon is FreeDict's English-Arabic dictionary (Debian's `dict-freedict-eng-ara`), with the Arabic-English one
(`dict-freedict-ara-eng`) inverted to add more translations, plus a short list of multi-word news phrases written for
this project (`rag/data/news_terms_en_ar.tsv`). The dictd files are parsed here and nowhere else; the parsed lexicon is
cached as JSON. The GPL dictionaries are read from where Debian installs them and never copied into the repository.

A question becomes a list of concepts (Pirkola's structured query): each English word or phrase is one concept whose
Arabic translations are alternatives, so a word with ten senses counts once, like a word with one. Names that the
dictionary lacks are matched against the index's own Arabic words by a consonant skeleton (`rag.spelling`); numbers pass
through.
"""

from __future__ import annotations

import calendar
import gzip
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.jsoncache import cached_json
from rag.places import BIG_CITY, Places
from rag.spelling import NameMatcher

log = logging.getLogger(__name__)

LEXICON_VERSION = 1  # bump when the parsed form changes: the JSON cache is keyed on it
ENG_ARA = "freedict-eng-ara"
ARA_ENG = "freedict-ara-eng"
PHRASES = Path(__file__).with_name("data") / "news_terms_en_ar.tsv"
FALLBACK = "English questions use names, numbers and dense retrieval only"
INSTALL_HINT = (
    "install Debian's dict-freedict-eng-ara (`apt-get install dict-freedict-eng-ara`, or `make install` as root)"
)

# A weekday is capitalised but is no name: the question's time is checked against the articles' dates (`rag.timeq`).
# A month stays a name, which an article holds in its words or by its date (`QuestionAnalysis.article_terms`).
CALENDAR_WORDS = frozenset(n.lower() for n in calendar.day_name)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[.,]\d+)*(?:st|nd|rd|th)?")
_ORDINAL = re.compile(r"(?<=\d)(?:st|nd|rd|th)$")  # the 13th: the number is what an article writes
_ELISION = re.compile(r"^(?:[ldjmnst]|qu)['’]|['’]s$", re.IGNORECASE)  # l'Albanie, d'Iran, Britain's
_HAS_ARABIC = re.compile(r"[\u0600-\u06ff]")
_NUMBERED = re.compile(r"^\s*\d+\.\s*")
_MAX_PHRASE = 3  # longest English phrase looked up, in words

# English words that carry no topic: question words, auxiliaries, pronouns, determiners, prepositions.
ENGLISH_STOPWORDS = frozenset(
    """a an the of to in on at for by with from and or but nor is are was were be been being am it its it's this that
    these those as what which who whom whose why how when where did do does done doing has have had having will would
    shall should can could may might must i me my we our you your he him his she her they them their there here
    than then so not no yes if about into over under after before during between against through up down out off
    again further once any all both each few more most other some such only own same very just also too s t
    according say said says tell told give gave given get got make made one two three first
    many much roughly approximately nearly almost among amongst unless whether while since until upon within
    without via per onto toward towards across still yet ever already else
    de la le les des du un une et en est que qui quoi pourquoi comment quand où ou pour par sur dans avec au aux
    al el ce cette ces il elle ils elles ont été sa son ses leur leurs était sont avait ne pas plus""".split()
)


@dataclass
class Concept:
    """One English word or phrase of the question and the Arabic strings that can stand for it."""

    source: str
    kind: str  # "phrase" | "word" | "name" | "number"
    alternatives: list[str] = field(default_factory=list)


@dataclass
class QueryConcept:
    """A concept ready to match: per alternative, the stem terms of each of its words (see `rag.lexical.analyze`)."""

    source: str
    kind: str
    alternatives: list[list[frozenset[str]]]
    weight: float  # IDF of the concept in the corpus; the largest possible IDF when no alternative occurs in it

    @property
    def bm25(self) -> list[list[str]]:
        """Per alternative, its BM25 terms: its words' stems (their 3-grams matched noise: bench.calibrate)."""
        return [sorted(frozenset().union(*alt)) for alt in self.alternatives]

    @property
    def key(self) -> bool:
        """Names and numbers: what a question is about, and telling when the corpus lacks them."""
        return self.kind in ("name", "number")

    def found_in(self, terms: set[str] | frozenset[str]) -> bool:
        """Whether any alternative has every one of its words (some stem of each) among `terms`."""
        return any(alt and all(word & terms for word in alt) for alt in self.alternatives)


def coverage(concepts: list[QueryConcept], terms: set[str] | frozenset[str], keys_only: bool = False) -> float:
    """IDF-weighted share of the concepts found among `terms` (1.0 when there is nothing to look for)."""
    chosen = [c for c in concepts if c.key or not keys_only]
    total = sum(c.weight for c in chosen)
    return sum(c.weight for c in chosen if c.found_in(terms)) / total if total > 0 else 1.0


class LexiconMissing(RuntimeError):
    """The dictionary files are not installed; the message says how to get them."""


def _b64(text: str) -> int:
    """dictd's base64 numbers: digits of the base64 alphabet, most significant first."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = 0
    for ch in text:
        value = value * 64 + alphabet.index(ch)
    return value


def read_dictd(base: Path) -> Iterable[tuple[str, list[str]]]:
    """(headword, translations) for every entry of a dictd dictionary (`base.index` + `base.dict.dz`)."""
    with gzip.open(base.with_name(base.name + ".dict.dz"), "rb") as fh:  # dictzip is gzip: read it whole
        data = fh.read()
    with open(base.with_name(base.name + ".index"), encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00database"):
                continue
            start, length = _b64(parts[1]), _b64(parts[2])
            lines = data[start : start + length].decode("utf-8", "replace").splitlines()
            translations = [_NUMBERED.sub("", t).strip() for t in lines[1:]]
            yield parts[0], [t for t in translations if t]


def _lemmatize(word: str) -> str:
    import simplemma

    return simplemma.lemmatize(word.lower(), lang="en").lower()


def english_key(text: str) -> str:
    """How English headwords and question words are matched: lower case, each word lemmatised."""
    return " ".join(_lemmatize(w) for w in _WORD.findall(text.replace("-", " ")))


def _read_terms() -> list[tuple[str, list[str]]]:
    """The project's news terms: (English, [Arabic forms])."""
    rows = []
    for line in PHRASES.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            english, _, arabic = line.partition("\t")
            rows.append((english, arabic.split("|")))
    return rows


class Lexicon:
    """English key (lemmatised, lower case) -> Arabic translations, best first."""

    def __init__(self, entries: dict[str, list[str]]) -> None:
        self.entries = entries
        self.curated = frozenset(english_key(e) for e, _ in _read_terms())  # the project's own news terms
        self.max_phrase = max((k.count(" ") + 1 for k in entries), default=1)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> list[str]:
        return self.entries.get(key, [])

    @classmethod
    def from_dictd(cls, folder: Path) -> Lexicon:
        """Parse FreeDict eng-ara (and ara-eng, inverted, when present) plus the project's phrase list."""
        eng_ara = folder / ENG_ARA
        entries: dict[str, list[str]] = defaultdict(list)

        def add(english: str, arabic: str) -> None:
            key = english_key(re.sub(r"^to\s+", "", english.strip(), flags=re.IGNORECASE))
            arabic = arabic.strip()
            if key and arabic and _HAS_ARABIC.search(arabic) and arabic not in entries[key]:
                entries[key].append(arabic)

        for english, arabic in _read_terms():  # the project's news terms come first
            for a in arabic:
                add(english, a)
        for head, translations in read_dictd(eng_ara):
            for a in translations:
                add(head.split(" /")[0], a)
        ara_eng = folder / ARA_ENG
        if ara_eng.with_name(ARA_ENG + ".index").is_file():
            for head, glosses in read_dictd(ara_eng):
                for g in glosses:
                    add(g, head.split(" /")[0])
        return cls(dict(entries))

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None) -> Lexicon:
        """The lexicon of the dictd files in `folder`, from a JSON cache when it is up to date."""
        folder = Path(folder)
        if (missing := lexicon_status(folder)) is not None:
            raise LexiconMissing(missing)
        stamp = [LEXICON_VERSION, PHRASES.read_text(encoding="utf-8")]
        for name in (ENG_ARA, ARA_ENG):
            for suffix in (".index", ".dict.dz"):
                f = folder / (name + suffix)
                stamp.append(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" if f.exists() else f.name)
        return cls(cached_json(cache_dir, "lexicon", stamp, lambda: cls.from_dictd(folder).entries))


_lexicons: dict[tuple[str, str], Lexicon | None] = {}
_lexicon_lock = threading.Lock()
_warned: set[str] = set()


def get_lexicon(folder: str | Path, cache_dir: str | Path | None = None, warn=None) -> Lexicon | None:
    """The lexicon, loaded once per process; None (with one warning per process) when it is not installed."""
    key = (str(folder), str(cache_dir))
    with _lexicon_lock:
        if key not in _lexicons:
            try:
                _lexicons[key] = Lexicon.load(folder, cache_dir)
            except (LexiconMissing, OSError, ValueError, EOFError) as exc:  # missing, unreadable or damaged
                _lexicons[key] = None
                message = str(exc) if isinstance(exc, LexiconMissing) else f"{exc}; {FALLBACK}"
                if message not in _warned:
                    _warned.add(message)
                    (warn or log.warning)(message)
        return _lexicons[key]


def lexicon_status(folder: str | Path) -> str | None:
    """None when the dictionary is installed, else the one-line warning to show."""
    if (Path(folder) / f"{ENG_ARA}.index").is_file():
        return None
    return f"no English-Arabic dictionary at {folder}: {INSTALL_HINT}; {FALLBACK}"


def _place(
    tokens: list[tuple[str, int]], keys: list[str], i: int, lexicon: Lexicon | None, places: Places
) -> tuple[Concept, int] | None:
    """The place (or demonym) of up to three capitalised words at `i`, and how many words it took; None when the
    project's own terms have the phrase, or a longer one starting here (Saudi Arabia is السعودية, not the demonym
    Saudi and a guess at Arabia), or when the dictionary knows the word and the place is a small city (Mobile, Nice)."""
    for n in range(min(3, places.max_phrase, len(tokens) - i), 0, -1):
        if lexicon is not None and " ".join(keys[i : i + n]) in lexicon.curated:
            return None
        words = [t for t, _ in tokens[i : i + n]]
        if not all(w[0].isupper() for w in words):
            continue
        place = places.get(" ".join(words)) or (places.demonym(words[0]) if n == 1 else None)
        if place is None:
            continue
        known = lexicon is not None and n == 1 and bool(lexicon.get(keys[i]) or lexicon.get(words[0].lower()))
        if known and not place.country and place.population < BIG_CITY:
            return None
        return Concept(" ".join(words), "name", list(place.arabic)), n
    return None


def _phrase(
    tokens: list[tuple[str, int]], keys: list[str], i: int, lexicon: Lexicon, max_translations: int
) -> tuple[Concept, int] | None:
    """The longest phrase of the lexicon (two words or more, not all stop words) at `i`, and its length."""
    for n in range(min(_MAX_PHRASE, lexicon.max_phrase, len(tokens) - i), 1, -1):
        key = " ".join(keys[i : i + n])
        if lexicon.get(key) and not all(k in ENGLISH_STOPWORDS for k in keys[i : i + n]):
            source = " ".join(t for t, _ in tokens[i : i + n])
            return Concept(source, "phrase", lexicon.get(key)[:max_translations]), n
    return None


def _spelled(word: str, names: NameMatcher, spellings: Callable[[str], list[str]] | None, known: bool) -> list[str]:
    """A name's Arabic spellings in the corpus: the attested ones the corpus holds (two at most), then the skeleton
    matcher's (a word the dictionary has, `known`, needs a closer match to count as a name); three at most."""
    attested = [w for w in (spellings(word) if spellings else []) if names.holds(w)][:2]
    return list(dict.fromkeys([*attested, *names.match(word, min_score=1.7 if known else 1.3)]))[:3]


def translate_question(
    question: str,
    lexicon: Lexicon | None,
    names: NameMatcher | None = None,
    in_corpus=None,
    max_translations: int = 6,
    places: Places | None = None,
    spellings: Callable[[str], list[str]] | None = None,
) -> list[Concept]:
    """The concepts of a Latin-script question, each with its Arabic alternatives.

    `in_corpus(word)` says whether a Latin word occurs in the articles themselves. Phrases are matched longest
    first; a word's translations are the lexicon's first `max_translations`; a capitalised word (not the first)
    or a word the lexicon lacks is also looked up as a name in the corpus; numbers, and words that the Arabic
    articles themselves contain in Latin letters (USM, GCC), pass through unchanged. Capitalised places and demonyms
    in `places` (Aleppo, New York, Syrians) take its Arabic names instead of the name matcher's guesses. A name's
    attested Arabic spellings (`spellings`, e.g. `rag.names.attested_spellings`: Javad -> جواد) that the corpus
    holds come before the matcher's guesses.
    """
    tokens = [(_ELISION.sub("", m.group()), m.start()) for m in _WORD.finditer(question.replace("-", " "))]
    tokens = [(t, s) for t, s in tokens if t]
    keys = [_lemmatize(t) if not t[0].isdigit() else t for t, _ in tokens]
    concepts: list[Concept] = []
    i = 0
    while i < len(tokens):
        word, start = tokens[i]
        if word[0].isdigit():
            number = _ORDINAL.sub("", word).replace(",", "")  # Arabic news writes 1500, not 1,500
            concepts.append(Concept(word, "number", [number]))
            i += 1
            continue
        found = (places is not None and _place(tokens, keys, i, lexicon, places)) or (
            lexicon is not None and _phrase(tokens, keys, i, lexicon, max_translations)
        )
        if found:
            concepts.append(found[0])
            i += found[1]
            continue
        i += 1
        low = word.lower()
        if low in ENGLISH_STOPWORDS or keys[i - 1] in ENGLISH_STOPWORDS or len(low) < 2:
            continue
        translations = (lexicon.get(keys[i - 1]) or lexicon.get(low)) if lexicon is not None else []
        concept = Concept(word, "word", list(translations[:max_translations]))
        before = question[:start].rstrip()
        capitalised = word[0].isupper() and bool(before) and before[-1] not in "(.?!"  # not a sentence start
        capitalised = capitalised and low not in CALENDAR_WORDS
        curated = lexicon is not None and keys[i - 1] in lexicon.curated
        if capitalised:
            concept.kind = "name"
        if (capitalised or not translations) and not curated and names is not None:
            matches = _spelled(word, names, spellings, bool(translations))
            concept.alternatives = list(dict.fromkeys([*matches, *concept.alternatives]))
        if in_corpus is not None and in_corpus(low):  # Latin letters inside the Arabic articles (USM, GCC)
            concept.alternatives.append(low)
        if concept.alternatives or concept.kind == "name":
            concepts.append(concept)  # a name with no alternatives is absent from the corpus: evidence for refusal
    return concepts

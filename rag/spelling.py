"""Names across scripts: an English spelling of a name ("Sahlawi", "Dhahran") found among the Arabic words of the
corpus by a consonant skeleton shared by both scripts, then ranked by how the whole word sounds. The matcher's words
are counted per article and kept as gzipped JSON beside a generation; a small build links the previous file and
keeps its own change beside it (`save_derived`)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from difflib import SequenceMatcher
from pathlib import Path

from rag.jsoncache import temp_beside

_ARABIC_WORD = re.compile(r"[\u0621-\u064a]+")


_AR_SKELETON = str.maketrans(
    {
        "ب": "b",
        "ت": "t",
        "ث": "t",
        "ج": "j",
        "ح": "h",
        "خ": "k",
        "د": "d",
        "ذ": "d",
        "ر": "r",
        "ز": "z",
        "س": "s",
        "ش": "s",
        "ص": "s",
        "ض": "d",
        "ط": "t",
        "ظ": "z",
        "غ": "g",
        "ف": "f",
        "ق": "k",
        "ك": "k",
        "ل": "l",
        "م": "m",
        "ن": "n",
        "ه": "h",
        "ة": "",
        "ا": "",
        "أ": "",
        "إ": "",
        "آ": "",
        "ى": "",
        "و": "",
        "ي": "",
        "ء": "",
        "ؤ": "",
        "ئ": "",
        "ع": "",
    }
)
# Arabic letters as rough Latin with vowels, to rank skeleton matches by how the whole word sounds.
_AR_SOUND = str.maketrans({"ا": "a", "أ": "a", "إ": "i", "آ": "a", "ى": "a", "و": "u", "ي": "i", "ة": "a", "ع": ""})
_EN_RULES = [
    (re.compile(r"ph"), "f"),
    (re.compile(r"(?<=[a-z])h\b"), ""),  # a final h after a letter is silent in transliterated names
    (re.compile(r"(?:th|dh)"), "t"),
    (re.compile(r"(?:sh|sch|ch)"), "s"),
    (re.compile(r"(?:kh|ck|q|x)"), "k"),
    (re.compile(r"gh"), "g"),
    (re.compile(r"c(?=[eiy])"), "s"),
    (re.compile(r"c"), "k"),
    (re.compile(r"v"), "f"),
    (re.compile(r"p"), "b"),
    (re.compile(r"[aeiouwy']"), ""),
]
_PROCLITICS = ("وال", "بال", "فال", "كال", "لل", "ال", "و", "ف", "ب", "ل", "ك")


def _collapse(s: str) -> str:
    return re.sub(r"(.)\1+", r"\1", s)


def english_skeletons(word: str) -> set[str]:
    """Consonant skeletons an English spelling of a name may have in Arabic script (g may be ج or غ, ch تش)."""
    w = word.lower()
    variants = {w, w.replace("ch", "tsh"), w.replace("g", "j")}
    out = set()
    for v in variants:
        for pattern, repl in _EN_RULES:
            v = pattern.sub(repl, v)
        out.add(_collapse(v))
    return {s for s in out if s}


def arabic_skeleton(word: str) -> str:
    return _collapse(word.translate(_AR_SKELETON))


def _sound(word: str) -> str:
    return word.translate(_AR_SOUND).translate(_AR_SKELETON)


def _overlap_bound(la: int, lb: int) -> float:
    """The highest ratio two strings of these lengths can have: 2 x the shorter / their total length."""
    return 2.0 * min(la, lb) / (la + lb) if la + lb else 1.0


def _overlap(a: Counter, b: Counter, la: int, lb: int) -> float:
    """2 x the letters two strings share (as multisets) / their total length: never below SequenceMatcher's ratio."""
    return 2.0 * sum((a & b).values()) / (la + lb) if la + lb else 1.0


COMPACT_WORDS = 20_000  # words changed since the matcher's file was written, at most, before it is written whole


def _changes_path(path: Path) -> Path:
    return path.with_name(f"changes-{path.name}")


def _read_changes(path: Path) -> dict[str, int]:
    """The change kept beside a matcher's file (word -> articles more or fewer), or none."""
    changes = _changes_path(path)
    if not changes.is_file():
        return {}
    return {w: int(d) for w, d in json.loads(gzip.decompress(changes.read_bytes()))["change"].items()}


def _write_atomically(path: Path, data: dict) -> None:
    tmp = temp_beside(path)
    tmp.write_bytes(gzip.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"), 1))  # fast: per build
    tmp.replace(path)


def _words(text: str) -> set[str]:
    """The distinct Arabic words of a text, normalised (what the name matcher counts per article)."""
    from rag.lexical import normalize_arabic

    return set(_ARABIC_WORD.findall(normalize_arabic(text)))


class NameMatcher:
    """Arabic words of a corpus, reachable by the consonant skeleton of an English name (with a proclitic off)."""

    def __init__(self, word_counts: Counter[str]) -> None:
        self.counts = word_counts  # word -> how many articles hold it
        self.by_skeleton: dict[str, set[str]] = defaultdict(set)
        for word in word_counts:
            self._link(word)

    @staticmethod
    def _stems(word: str) -> set[str]:
        return {word} | {word[len(p) :] for p in _PROCLITICS if word.startswith(p) and len(word) - len(p) >= 3}

    def _link(self, word: str) -> None:
        for s in self._stems(word):
            key = arabic_skeleton(s)
            if len(key) >= 2:
                self.by_skeleton[key].add(s)

    def _unlink(self, word: str) -> None:
        """Take out the stems of a word no article holds any more, unless another word still gives them."""
        for s in self._stems(word):
            if s in self.counts or (len(s) >= 3 and any(p + s in self.counts for p in _PROCLITICS)):
                continue
            key = arabic_skeleton(s)
            self.by_skeleton.get(key, set()).discard(s)
            if key in self.by_skeleton and not self.by_skeleton[key]:
                del self.by_skeleton[key]

    @staticmethod
    def word_changes(removed_texts: Iterable[str], added_texts: Iterable[str]) -> dict[str, int]:
        """How many more (or fewer) articles hold each word, after the texts of articles taken out (or their old
        versions) and put in; words whose count does not change are left out."""
        change: Counter[str] = Counter()
        for text in removed_texts:
            change.subtract(_words(text))
        for text in added_texts:
            change.update(_words(text))
        return {w: d for w, d in change.items() if d}

    def _apply(self, change: Mapping[str, int]) -> None:
        """In place, as if built again: `change` says how many more (or fewer) articles hold each word."""
        for word, delta in change.items():
            before = self.counts.get(word, 0)
            after = before + delta
            if after > 0:
                self.counts[word] = after
                if not before:
                    self._link(word)
            elif before:
                del self.counts[word]
                self._unlink(word)

    def save(self, path: Path) -> None:
        """Write the words and their skeletons as gzipped JSON, atomically; a change kept beside `path` (see
        `save_derived`) is obsolete and removed first."""
        _changes_path(path).unlink(missing_ok=True)
        data = {"counts": self.counts, "by_skeleton": {k: sorted(v) for k, v in self.by_skeleton.items()}}
        _write_atomically(path, data)

    @classmethod
    def load(cls, path: Path) -> NameMatcher:
        """What `save` wrote, with the change `save_derived` kept beside it applied."""
        data = json.loads(gzip.decompress(path.read_bytes()))
        self = cls.__new__(cls)
        self.counts = Counter(data["counts"])
        self.by_skeleton = defaultdict(set, {k: set(v) for k, v in data["by_skeleton"].items()})
        self._apply(_read_changes(path))
        return self

    @classmethod
    def save_derived(cls, old: Path, new: Path, removed_texts: Iterable[str], added_texts: Iterable[str]) -> None:
        """The matcher of `old` updated with articles taken out and put in, saved at `new` without reading `old`'s
        words: `old`'s file is linked (or copied) to `new`, and the change since that file was written is kept
        beside it. Once the change reaches COMPACT_WORDS words it is folded in and the whole file written again.
        At 140,000 chunks this takes milliseconds instead of a second (reading and writing 200,000 words)."""
        this_build = cls.word_changes(removed_texts, added_texts)
        change = _read_changes(old)
        for word, delta in this_build.items():
            change[word] = change.get(word, 0) + delta
        change = {w: d for w, d in change.items() if d}
        if len(change) >= COMPACT_WORDS:
            names = cls.load(old)
            names._apply(this_build)
            names.save(new)
            return
        _write_atomically(_changes_path(new), {"change": change})  # first: `new` present means complete
        tmp = temp_beside(new)
        try:
            os.link(old, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(old, tmp)
        tmp.replace(new)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> NameMatcher:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_words(text))
        return cls(counts)

    def holds(self, word: str) -> bool:
        """Whether some article has the (normalised) word, alone or after a proclitic (جواد: also وجواد)."""
        return word in self.by_skeleton.get(arabic_skeleton(word), ())

    def match(self, name: str, limit: int = 3, min_score: float = 1.3) -> list[str]:
        """Arabic spellings in the corpus of an English (or French, ...) name, best first."""
        english = name.lower()
        letters, skeletons = re.sub(r"[^a-z]", "", english), english_skeletons(english)
        candidates: set[str] = set()
        for key in skeletons:
            if len(key) < 2:
                continue
            candidates |= self.by_skeleton.get(key, set())
            if len(key) >= 4:  # one consonant more or less, for longer names only
                for i in range(len(key)):
                    candidates |= self.by_skeleton.get(key[:i] + key[i + 1 :], set())
        letter_counts, skeleton_counts = Counter(letters), [(k, Counter(k)) for k in skeletons]
        bounded = []
        lengths = {len(k) for k in skeletons}
        for c in candidates:
            sound, skeleton = _sound(c), arabic_skeleton(c)
            # Their lengths, then the letters two strings share, bound their ratio from above (difflib's
            # real_quick_ratio and quick_ratio), so candidates are compared letter by letter best bound first, and
            # only while their bound could still reach the answer: `min_score`, and within 0.2 of the best so far.
            near = max(_overlap_bound(n, len(skeleton)) for n in lengths)
            if _overlap_bound(len(letters), len(sound)) + near < min_score:
                continue
            counts = Counter(skeleton)
            bound = _overlap(letter_counts, Counter(sound), len(letters), len(sound)) + max(
                _overlap(kc, counts, len(k), len(skeleton)) for k, kc in skeleton_counts
            )
            if bound >= min_score:
                bounded.append((bound, c, sound, skeleton))
        bounded.sort(key=lambda x: -x[0])
        scored: list[tuple[float, int, str]] = []
        best = -1.0
        for bound, c, sound, skeleton in bounded:
            if bound < best - 0.2:
                break
            sim = SequenceMatcher(None, letters, sound).ratio()
            sim_skeleton = max(SequenceMatcher(None, k, skeleton).ratio() for k in skeletons)
            scored.append((sim + sim_skeleton, self.counts.get(c, 0), c))
            best = max(best, sim + sim_skeleton)
        scored.sort(reverse=True)
        if not scored or scored[0][0] < min_score:
            return []
        close = [c for s, _, c in scored if s >= max(min_score, scored[0][0] - 0.2)]
        kept = set(close)
        bare = [c for c in close if not any(c.startswith(p) and c[len(p) :] in kept for p in _PROCLITICS)]
        return bare[:limit]

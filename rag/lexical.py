"""Arabic-aware lexical retrieval: normalisation, Snowball stemming and a BM25 index held in scipy arrays."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import Stemmer
from scipy import sparse

_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # harakat, Quranic marks, tatweel
_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"})
_ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_TOKEN = re.compile(r"\w+", re.UNICODE)

# Function words that carry no topic (after normalisation). Short on purpose: BM25's IDF handles the rest.
_STOPWORD_LIST = """في من على الى عن مع ان او ثم لا ما لم لن قد هذا هذه ذلك تلك التي الذي الذين هو هي هم كان كانت
    يكون بين بعد قبل عند كل اي حتى اذا لكن بل كما وقد وفي ومن وعلى وان الا منذ خلال حيث ايضا
    the a an of to in on at for by with from and or is are was were be been it its this that as
    what which who whom whose why how when where did do does""".split()


def strip_controls(text: str) -> str:
    """Control and format characters (zero-width, bidi marks) removed and whitespace collapsed."""
    kept = (" " if c.isspace() else c for c in text if c.isspace() or unicodedata.category(c)[0] != "C")
    return " ".join("".join(kept).split())


def normalize_arabic(text: str) -> str:
    """Strip diacritics and tatweel; unify alef forms, alef maqsura, ta marbuta, hamza seats; Latin lower case."""
    return _DIACRITICS.sub("", text).translate(_ALEF).translate(_ARABIC_DIGITS).lower()


STOPWORDS = frozenset(normalize_arabic(w) for w in _STOPWORD_LIST)
# Arabic question words: not stop words for BM25 (the index's terms keep them), but not what a question is about.
QUESTION_WORDS_AR = frozenset(
    normalize_arabic(p + w)
    for w in "لماذا لم ماذا متى أين اين كيف كم هل من ما أي اي ايش مالذي ماالذي".split()
    for p in ("", "و", "ف")
)


@lru_cache(maxsize=4)
def _stemmer(lang: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(lang)


def _is_arabic(word: str) -> bool:
    return "\u0600" <= word[0] <= "\u06ff"


_PREFIXES = sorted(("وال", "بال", "كال", "فال", "لل", "ال", "و", "ف", "ب", "ك", "ل"), key=len, reverse=True)
_SUFFIXES = sorted(
    (
        normalize_arabic(x)
        for x in ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي", "هم", "هما", "كم", "نا", "تي", "وا")
    ),
    key=len,
    reverse=True,
)


def light_stem(word: str) -> str:
    """Strip one common prefix and one common suffix from a normalised Arabic word (kept at least 2 letters)."""
    for p in _PREFIXES:
        if word.startswith(p) and len(word) - len(p) >= 2:
            word = word[len(p) :]
            break
    for s in _SUFFIXES:
        if word.endswith(s) and len(word) - len(s) >= 2:
            return word[: -len(s)]
    return word


# Words whose stop-word test and terms are kept (news repeats its words: on English questions over 140,000 chunks
# these caches take analyze from about a fifth of answer()'s time to a few per cent); about 25 MB when full.
WORD_CACHE = 100_000


@lru_cache(maxsize=WORD_CACHE)
def _is_stopword(word: str) -> bool:
    return normalize_arabic(word) in STOPWORDS


def _content_words(text: str) -> list[str]:
    """Lower-cased words with diacritics stripped, stop words left out (not yet normalised)."""
    return [w for w in _TOKEN.findall(_DIACRITICS.sub("", text).lower()) if not _is_stopword(w)]


@lru_cache(maxsize=WORD_CACHE)
def _word_stems(word: str) -> tuple[str, ...]:
    """A content word's terms (see `analyze`)."""
    if _is_arabic(word):
        snowball = normalize_arabic(_stemmer("arabic").stemWord(word))
        light = light_stem(normalize_arabic(word))
        return tuple(t for t in (snowball, light + "~" if light else "") if t)
    latin = normalize_arabic(_stemmer("english").stemWord(word))
    return (latin,) if latin else ()


def _stems(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        out.extend(_word_stems(w))
    return out


def _ngrams(words: list[str], n: int) -> list[str]:
    out: list[str] = []
    for w in words:
        padded = f"#{normalize_arabic(w)}#"
        out.extend("@" + padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return out


def analyze(text: str) -> list[str]:
    """Terms for BM25: words minus stop words. An Arabic word gives two terms, its Snowball stem and its light
    stem (marked "~"): the two stemmers miss different variants, and together they match more of them
    (measured on ARCD-train and XQuAD with `python -m bench.tune`).

    The Snowball stemmer sees the word with its hamza and ta marbuta intact (it keys on them); normalising
    first would turn "ألبانيا" into a false "ال" prefix.
    """
    return _stems(_content_words(text))


def char_ngrams(text: str, n: int = 3) -> list[str]:
    """Character n-grams of each normalised word, with word boundaries marked by "#" and the term marked by a
    leading "@": they match Arabic words whose affixes or broken plurals no stemmer undoes."""
    return _ngrams(_content_words(text), n)


def bm25_terms(text: str) -> list[str]:
    """What BM25 indexes and searches: the stems of `analyze` plus character 3-grams (the text is split into
    words once). On ARCD-train the 3-grams lifted R@1 of the fused ranking from 0.706 to 0.740, and on XQuAD
    Arabic from 0.930 to 0.945."""
    words = _content_words(text)
    return _stems(words) + _ngrams(words, 3)


def query_words(text: str) -> list[str]:
    """The content words of a text (stop words out), as `analyze` sees them: one concept each in a query."""
    return _content_words(text)


class BM25:
    """Okapi BM25 over pre-analysed documents; a query scores every document from its terms' columns (CSC).

    b = 0.9 (more length normalisation than the usual 0.75) measured better with the 3-gram terms.
    The saved form also keeps each weight's term count, so the next generation of an index is derived from this one
    and the changed documents (`updated`) instead of from every document again.
    """

    K1, B = 1.2, 0.9

    def __init__(self, docs_terms: Iterable[Sequence[str]]) -> None:
        """`docs_terms` may be a generator: one document's terms are held at a time."""
        vocab: dict[str, int] = {}
        tf = _term_counts(docs_terms, vocab)
        self._set(tf.tocsc(), vocab)

    def _set(self, counts: sparse.csc_matrix, vocab: dict[str, int]) -> None:
        """Weights and IDF from term counts (rows: documents, columns: `vocab`'s ids)."""
        n_docs = counts.shape[0]
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        avg = lengths.mean() if n_docs else 1.0
        df = np.diff(counts.indptr)
        self.idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = (self.K1 * (1 - self.B + self.B * lengths / max(avg, 1e-9))).astype(np.float32)
        # float32 and in place: at 18M weights every temporary array is 72 MB, and fresh memory is slow to touch
        tf = counts.data.astype(np.float32, copy=False)
        denominator = norm[counts.indices]
        denominator += tf
        data = tf * np.float32(self.K1 + 1)
        data /= denominator
        self.data = data  # float32: a reader maps them from the cache as they are (float16 took 3.5 ms to widen)
        self.indices, self.indptr = counts.indices, counts.indptr
        self.shape = counts.shape
        self._tf: np.ndarray | None = counts.data  # aligned with `data`; kept until saved (for `updated`)
        self.vocab = vocab
        self.n_docs = n_docs

    VOCAB, COUNTS = "vocab.json.gz", "tf.npy"

    def save(self, folder: Path) -> None:
        """Write the weights as .npy arrays and the vocabulary as gzipped JSON (no pickle), atomically as a folder."""
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        small = np.uint16 if self.n_docs <= np.iinfo(np.uint16).max else np.int32
        arrays = {  # article rows as uint16 where they fit
            "data": self.data,
            "indices": self.indices.astype(small, copy=False),
            "indptr": self.indptr,
        }
        for name, values in {**arrays, "idf": self.idf}.items():
            np.save(tmp / f"{name}.npy", values, allow_pickle=False)
        if self._tf is not None:  # for `updated`; a count above 65,535 in one document is kept as 65,535
            np.minimum(self._tf, 65535, out=self._tf)  # in place: they are not needed after this
            np.save(tmp / self.COUNTS, self._tf.astype(np.uint16), allow_pickle=False)
            self._tf = None  # a reader does not need them
        meta = {"n_docs": self.n_docs, "shape": list(self.shape), "vocab": list(self.vocab)}
        (tmp / self.VOCAB).write_bytes(gzip.compress(json.dumps(meta, ensure_ascii=False).encode("utf-8"), 1))
        try:
            tmp.rename(folder)
        except OSError:  # another process wrote it first
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> BM25:
        """Read what `save` wrote. The weights and their article rows are memory-mapped, not read: a question reads
        only its terms' columns, so a reader of a 1M-chunk index (160M weights) holds the pages it touched instead of
        1.3 GB. The term counts are not read: a reader does not need them."""
        meta = json.loads(gzip.decompress((folder / cls.VOCAB).read_bytes()))
        self = cls.__new__(cls)
        self.data = np.load(folder / "data.npy", mmap_mode="r", allow_pickle=False)
        self.indices = np.load(folder / "indices.npy", mmap_mode="r", allow_pickle=False)
        self.indptr = np.load(folder / "indptr.npy", allow_pickle=False)
        self.idf = np.load(folder / "idf.npy", allow_pickle=False)
        self.shape = tuple(meta["shape"])
        self.vocab = {t: i for i, t in enumerate(meta["vocab"])}
        self.n_docs = int(meta["n_docs"])
        self._tf = None
        return self

    @classmethod
    def updated(
        cls, folder: Path, old_docs: Sequence[str], new_docs: Sequence[str], changed: dict[str, Sequence[str]]
    ) -> BM25:
        """The BM25 of `new_docs` (rows in that order), from the one `save` wrote for `old_docs` and the terms of the
        documents that are new or changed (`changed`); the rest keep their stored term counts. The weights and IDF
        are recomputed from the counts, so the result scores exactly as one built from every document would.

        Raises OSError or ValueError when the saved form is missing, damaged or has no term counts (build it whole).
        """
        meta = json.loads(gzip.decompress((folder / cls.VOCAB).read_bytes()))
        if int(meta["n_docs"]) != len(old_docs):
            raise ValueError("the saved BM25 is not of these documents")
        rows = np.load(folder / "indices.npy", allow_pickle=False)
        indptr = np.load(folder / "indptr.npy", allow_pickle=False).astype(np.int64)
        counts = np.load(folder / cls.COUNTS, allow_pickle=False).astype(np.float32)
        vocab = {t: i for i, t in enumerate(meta["vocab"])}
        new_row = {d: i for i, d in enumerate(new_docs)}
        row_map = np.array([-1 if d in changed else new_row.get(d, -1) for d in old_docs], dtype=np.int32)
        fresh = [d for d in new_docs if d in changed]
        if int((row_map >= 0).sum()) + len(fresh) != len(new_docs):
            raise ValueError("a document is neither stored nor given")
        added = _term_counts((changed[d] for d in fresh), vocab).tocsc()
        width = max(len(vocab), 1)
        added.resize((len(fresh), width))
        added_rows = np.array([new_row[d] for d in fresh], dtype=np.int32)[added.indices]
        tf = _merge_columns(
            (row_map[rows], indptr, counts), (added_rows, added.indptr, added.data), (len(new_docs), width)
        )
        live = np.diff(tf.indptr) > 0  # terms no document holds any more are dropped
        if not live.all():
            tf = tf[:, np.flatnonzero(live)]
            terms = list(vocab)
            vocab = {terms[c]: i for i, c in enumerate(np.flatnonzero(live).tolist())}
        self = cls.__new__(cls)
        self._set(tf, vocab)
        return self

    def scores(self, query_terms: Iterable[str]) -> np.ndarray:
        """BM25 score of every document for the query (zeros where no term matches)."""
        ids = np.array([self.vocab[t] for t in set(query_terms) if t in self.vocab], dtype=np.int64)
        if not len(ids) or not self.n_docs:
            return np.zeros(self.n_docs, dtype=np.float32)
        starts, ends = self.indptr[ids], self.indptr[ids + 1]  # the terms' columns, copied out of the (mapped) arrays
        rows = np.concatenate([self.indices[a:b] for a, b in zip(starts, ends, strict=True)]).astype(np.int32)
        weights = np.concatenate([self.data[a:b] for a, b in zip(starts, ends, strict=True)])
        pointers = np.concatenate([[0], np.cumsum(ends - starts)])
        columns = sparse.csc_matrix((weights.astype(np.float32, copy=False), rows, pointers), (self.n_docs, len(ids)))
        return columns @ self.idf[ids]

    def concept_scores(self, concepts: Iterable[Iterable[Sequence[str]]]) -> np.ndarray:
        """A structured query (Pirkola): each concept scores a document by its best-matching alternative, and the
        concepts add up, so a word with ten translations weighs no more than a word with one."""
        total = np.zeros(self.n_docs, dtype=np.float32)
        for alternatives in concepts:
            best = np.zeros(self.n_docs, dtype=np.float32)
            for terms in alternatives:
                np.maximum(best, self.scores(terms), out=best)
            total += best
        return total


def _merge_columns(old: tuple, added: tuple, shape: tuple[int, int]) -> sparse.csc_matrix:
    """Term counts column by column (CSC), in a matrix of `shape`: the old entries whose row is kept (`old` = new
    row per entry, -1 for a dropped one; column pointers; counts), then the added documents' entries (`added` =
    their new rows, column pointers over every column, counts), each inserted at the end of its column. Linear in
    the entries, with no sort: this is what keeps adding one article to a large index cheap."""
    rows, indptr, counts = old
    add_rows, add_ptr, add_counts = added
    ptr = np.zeros(shape[1] + 1, dtype=np.int64)
    ptr[: len(indptr)] = indptr
    ptr[len(indptr) :] = indptr[-1]  # the new terms' columns start empty
    keep = rows >= 0
    if not keep.all():
        before = np.concatenate([[0], np.cumsum(keep)])  # kept entries before each position
        rows, counts, ptr = rows[keep], counts[keep], before[ptr]
    add_per = np.diff(add_ptr)
    at = np.repeat(ptr[1:], add_per)  # each added entry goes at the end of its column, in column order
    out_ptr = ptr + np.concatenate([[0], np.cumsum(add_per)])
    return sparse.csc_matrix(
        (np.insert(counts, at, add_counts), np.insert(rows, at, add_rows), out_ptr),
        shape=shape,
    )


def _term_counts(docs_terms: Iterable[Sequence[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    """Term counts, one row per document; new terms are added to `vocab` (columns are its ids)."""
    cols, lengths = array("i"), array("i")
    for terms in docs_terms:
        lengths.append(len(terms))
        cols.extend(vocab.setdefault(t, len(vocab)) for t in terms)
    n_docs = len(lengths)
    rows = np.repeat(np.arange(n_docs, dtype=np.int32), np.frombuffer(lengths, dtype=np.int32))
    col_ids = np.frombuffer(cols, dtype=np.int32)
    tf = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, col_ids)), shape=(n_docs, max(len(vocab), 1)))
    tf.sum_duplicates()
    return tf

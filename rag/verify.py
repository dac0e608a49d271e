"""Whether a passage says what an LLM's sentence (a claim) says, not only what it is about.

Cosine and word overlap (`rag.llm.support_scores`) measure topic: "Iran apologised and paid compensation" sits as
close to an article about the Albania dispute as a true sentence does. So a claim that reaches the support
threshold must also pass content checks against the passage it cites (`claim_gap`):
- no link, e-mail address or instruction ("visit", "click", "ignore ...") in the LLM's own words: an answer states
  facts, and the article's link is in its citation; an instruction in a passage is data, never something to relay;
- every number of the claim is in the passage (digits in either script; `rag.llm.support_scores` gives a claim with
  any other number no support at all);
- a negated claim ("did not", "لم") needs a negated best sentence;
- the claim model (a logistic regression like the refusal model's, one per script: `rag/data/claims-en.json` for
  Latin-script claims, `claims-ar.json` for Arabic) reads what of the claim the passage lacks: the IDF-weighted
  share and mass of its concepts (translated for English, names matched to the corpus's spelling) missing around
  the best sentence and from the whole passage, its rarest concepts and names missing, a negation the passage does
  not have, and the support score. An added clause ("and Russia paid for
  it"), a swapped entity or a negation is content the passage does not hold. Most telling is what the claim says
  beyond the question it answers (its concepts that are not the question's): the answer itself, which must stand
  near the best sentence. On the tuning quarters that share told supported claims from swapped ones with AUC 0.84
  (English) and 0.96 (Arabic), against 0.78 and 0.85 for the best feature before it.
The models are fitted on adversarial claims built from XQuAD's tuning quarters (`python -m bench.claims --fit`). One
model for both scripts had to weigh the answer's share for Arabic claims, where it separates best, and cost English
added clauses (dropped 0.73 against 0.93 with a model of their own, on the test quarters).
"""

from __future__ import annotations

import re
from functools import cache

from rag.crosslingual import coverage
from rag.language import is_cross_lingual
from rag.lexical import analyze
from rag.refusal import RefusalModel
from rag.retrieve import SearchIndex
from rag.settings import PROJECT_ROOT
from rag.timeq import DIGITS

CLAIM_MODELS = {
    True: PROJECT_ROOT / "rag" / "data" / "claims-en.json",
    False: PROJECT_ROOT / "rag" / "data" / "claims-ar.json",
}
CLAIM_FEATURES = (
    "support",  # cosine + overlap of the best sentence (rag.llm.support_scores)
    "coverage_around",  # IDF-weighted share of the claim's concepts in the best sentence and its neighbours
    "coverage_passage",  # ... in the whole cited passage
    "missing_mass_around",  # summed IDF of the concepts missing around the best sentence, over the largest IDF
    "missing_mass_passage",  # ... missing from the passage
    "rare_missing_passage",  # share of the claim's two rarest concepts missing from the passage
    "names_missing_passage",  # names of an English claim missing from the passage
    "negation_missing",  # the claim is negated and its best sentence with its neighbours is not
    "worst_clause",  # the lowest share of a clause's concepts found in the passage ("..., and Russia paid for it")
    "answer_around",  # IDF-weighted share of the concepts the question does not have found around the best sentence
    "answer_passage",  # ... in the whole cited passage
)

_AR = "\u0621-\u064a"
LINK = re.compile(
    r"https?://|\bwww\.|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|info|io|co|me|ly|xyz|ru|example|invalid|sa|ae)\b"
    r"|[\w.+-]+@[\w-]+\.[\w.-]+",
    re.IGNORECASE,
)
INSTRUCTION = re.compile(
    r"\b(?:visit|click|tap|ignore|disregard|subscribe|download|sign up|log ?in|follow (?:us|the link|this link)"
    r"|contact us|call us|reply with|respond with|previous instructions|system prompt)\b"
    rf"|(?<![{_AR}])(?:زوروا|زر موقع|اضغط|انقر|تجاهل|تجاهلوا|تابعونا|اتصلوا بنا|حملوا|اشترك|اشتركوا|راسلونا)"
    rf"(?![{_AR}])",
    re.IGNORECASE,
)
NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|none|nobody|nothing|without)\b|n't\b"
    rf"|(?<![{_AR}])[وف]?(?:لم|لن|لا|ليس|ليست|ليسوا|لسنا|عدم|دون|بدون)(?![{_AR}])",
    re.IGNORECASE,
)


# Where a sentence joins clauses: an added clause must hold on its own ("..., and Russia paid for it").
CLAUSE = re.compile(
    r",\s*|;\s*|\s+(?:and|but|while|whereas|which|who|after|before|because|although)\s+"
    rf"|،\s*|؛\s*|\s+(?:التي|الذي|اللذين|اللتين|الذين|اللاتي|وقد|كما|بينما|لكن|ولكن|بعد أن|قبل أن|لأن)(?![{_AR}])",
    re.IGNORECASE,
)


def numbers_in(text: str) -> set[str]:
    """The numbers written in digits (Arabic-Indic too), without leading zeros."""
    return {n.lstrip("0") or "0" for n in re.findall(r"\d+", text.translate(DIGITS))}


def injected(text: str) -> bool:
    """A link, an e-mail address or an instruction to the reader or the model."""
    return bool(LINK.search(text) or INSTRUCTION.search(text))


def negated(text: str) -> bool:
    return bool(NEGATION.search(text))


def claim_features(
    index: SearchIndex, claim: str, support: float, around: str, passage: str, question: str = ""
) -> dict[str, float]:
    """What of `claim` the cited passage holds (see CLAIM_FEATURES); `question` is the question it answers."""
    concepts = index.concepts(claim)
    near, whole = frozenset(analyze(around)), frozenset(analyze(passage))
    asked = {c.source for c in index.concepts(question)} if question.strip() else set()
    answer = [c for c in concepts if c.source not in asked]
    top = max((c.weight for c in concepts), default=1.0) or 1.0
    rare = sorted(concepts, key=lambda c: -c.weight)[:2]
    names = [c for c in concepts if c.kind == "name"]
    return {
        "support": support,
        "coverage_around": coverage(concepts, near) if concepts else 1.0,
        "coverage_passage": coverage(concepts, whole) if concepts else 1.0,
        "missing_mass_around": sum(c.weight for c in concepts if not c.found_in(near)) / top,
        "missing_mass_passage": sum(c.weight for c in concepts if not c.found_in(whole)) / top,
        "rare_missing_passage": 1.0 - coverage(rare, whole) if rare else 0.0,
        "names_missing_passage": float(sum(not c.found_in(whole) for c in names)),
        "negation_missing": float(negated(claim) and not negated(around)),
        "worst_clause": worst_clause(index, claim, whole),
        "answer_around": coverage(answer, near) if answer else 1.0,
        "answer_passage": coverage(answer, whole) if answer else 1.0,
    }


def worst_clause(index: SearchIndex, claim: str, terms: frozenset[str]) -> float:
    """The lowest IDF-weighted share of a clause's concepts found among `terms`, over the claim's clauses of two
    concepts or more (1.0 when there is no such clause)."""
    shares = []
    for clause in CLAUSE.split(claim):
        concepts = index.concepts(clause) if clause.strip() else []
        if len(concepts) >= 2:
            shares.append(coverage(concepts, terms))
    return min(shares, default=1.0)


def rule_gap(claim: str, sentence: str) -> str:
    """The checks that need no model: a link or an instruction in the claim, or a negated claim whose best sentence
    is not negated ("" when both pass). A number the passage lacks is caught earlier, by the support score."""
    if injected(claim):
        return "a link or an instruction"
    if negated(claim) and not negated(sentence):
        return "a negation the passage does not have"
    return ""


@cache
def claim_model(cross: bool) -> RefusalModel:
    """The claim model of Latin-script (`cross`) or Arabic claims."""
    return RefusalModel.load(CLAIM_MODELS[cross], CLAIM_FEATURES, "python -m bench.claims --fit")


def claim_gap(
    index: SearchIndex, claim: str, support: float, sentence: str, around: str, passage: str, question: str = ""
) -> str:
    """Why the passage does not support `claim` (the LLM's sentence without its markers), or "" when it does.

    Args:
        support: the support score of its best sentence (`rag.llm.support_scores`).
        sentence: that sentence.
        around: that sentence with its neighbours in the passage.
        passage: the whole cited passage.
        question: the question the claim answers (what is answered: a follow-up's standalone form).
    """
    if gap := rule_gap(claim, sentence):
        return gap
    model = claim_model(is_cross_lingual(claim))
    if model.probability(claim_features(index, claim, support, around, passage, question)) < model.threshold:
        return "content the passage does not hold"
    return ""

"""The [n] markers of an LLM's reply: finding them (in either digit script, with Arabic commas), holding back an
unfinished one while it streams, cutting the reply into sentences with their markers, and putting them back."""

from __future__ import annotations

import re

from rag.chunking import split_sentences
from rag.timeq import DIGITS

NO_ANSWER = "NO_ANSWER"  # the fixed reply the prompt asks for when the passages do not answer
_NUM = r"[0-9٠-٩۰-۹]+"
# [1]  [1, 2]  [1،2]  【1】  [١]  ... in any of these shapes, and runs of them: [1][2]
MARKER = re.compile(rf"[\[【]\s*({_NUM}(?:\s*[,،、]\s*{_NUM})*)\s*[\]】]")
_PARTIAL = re.compile(r"[\[【][\s0-9٠-٩۰-۹,،、]*$")  # an opened marker not closed yet, at the end of the stream
_ONLY_MARKERS = re.compile(rf"^(?:\s*{MARKER.pattern})+\s*[.!?؟]?\s*$")


def marker_numbers(group: str) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,،、]\s*", group.translate(DIGITS)) if x]


def visible_prefix(text: str) -> str:
    """What may be shown of a reply still streaming: an unfinished marker, or a reply that may still become the
    fixed no-answer reply, is held back until it is complete."""
    stripped = text.lstrip()
    if stripped and NO_ANSWER.startswith(stripped[: len(NO_ANSWER)]):
        return ""
    return _PARTIAL.sub("", text)


def complete_sentences(reply: str) -> str:
    """The reply up to the end of its last complete sentence: one that another sentence (not only markers) has
    followed. An unfinished marker, or a reply that may still become the no-answer reply, holds everything back."""
    visible = visible_prefix(reply)
    spans = list(split_sentences(visible))
    starts = [sp for sp in spans if not _ONLY_MARKERS.match(visible[sp.start : sp.end])]
    if len(starts) < 2:
        return ""
    return visible[: starts[-1].start].rstrip()


def reply_sentences(reply: str) -> list[str]:
    """The reply cut into sentences; a run of markers standing after a full stop joins the sentence before it."""
    out: list[str] = []
    for span in split_sentences(reply):
        piece = reply[span.start : span.end]
        if out and _ONLY_MARKERS.match(piece):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def strip_markers(sentence: str) -> str:
    """An LLM sentence without its [n] markers, its spaces tidied: the claim to verify."""
    return tidy(MARKER.sub(" ", sentence))


def with_markers(sentence: str, numbers: list[int]) -> str:
    """The sentence with its markers before its final punctuation: "... cyberattacks [1]."."""
    markers = "".join(f"[{n}]" for n in numbers)
    body, end = (sentence[:-1], sentence[-1]) if sentence[-1:] in ".!?؟" else (sentence, "")
    return f"{body} {markers}{end}"


def tidy(sentence: str) -> str:
    sentence = re.sub(r"\s+", " ", sentence).strip()
    return re.sub(r"\s+([.,!?؟،؛:])", r"\1", sentence)

"""What the chat shows of an answer, as HTML: the message (escaped, quotes isolated for the bidi algorithm), the small
print under it, and the Sources panel; and the chat's messages read back as the plain text that was typed."""

from __future__ import annotations

import html
import re

from rag.answering import Answer
from rag.asking import small_print
from rag.dates import spell_day


def sources_html(answer: Answer) -> str:
    """The citations of one answer: title, file, and the passage with the quote highlighted."""
    if not answer.found:
        why = f"<br>{html.escape(answer.missing)}" if answer.missing else ""
        related = "".join(
            f'<li dir="auto">{html.escape(r["title"])} <span class="src-file">'
            f"({html.escape(r['date'][:10] or 'date unknown')} · {html.escape(r['source'])})</span></li>"
            for r in answer.related
        )
        reading = f'<div class="related">Related reading (not an answer):<ul>{related}</ul></div>' if related else ""
        return (
            '<div class="no-sources" dir="auto">No sources: the indexed articles do not cover this question.'
            f"{why}</div>{reading}"
        )
    blocks = [source_block(c) for c in answer.citations]
    if answer.more:  # quotes set aside for a sure short answer: offered, collapsed
        more = "\n".join(source_block(c, shown=False) for c in answer.more)
        blocks.append(
            f'<details class="more"><summary>More from the articles ({len(answer.more)})</summary>{more}</details>'
        )
    return "\n".join(blocks)


def source_block(c, shown: bool = True) -> str:
    """One citation: its title, date, outlet and file, and its passage with the quote highlighted, escaped."""
    at = c.passage.find(c.quote)
    before, after = (c.passage[:at], c.passage[at + len(c.quote) :]) if at >= 0 else ("", "")
    return (
        f'<details class="source"{" open" if shown else ""}><summary><span class="src-title" dir="auto">[{c.n}] '
        f"{html.escape(c.title)}</span></summary>"
        f'<div class="src-file">{html.escape(c.date[:10] or "date unknown")} · '
        f"{html.escape(c.outlet) + ' · ' if c.outlet not in ('', c.source) else ''}{html.escape(c.source)} · "
        f"characters {c.start}–{c.end} · score {c.score:.2f}{also_in(c)}</div>{resolved_days(c)}"
        f'<div class="passage" dir="auto">{html.escape(before)}<mark>{html.escape(c.quote)}</mark>'
        f"{html.escape(after)}</div></details>"
    )


def resolved_days(c) -> str:
    """The quote's relative days with the dates they stand for ("اليوم (الاثنين) = Monday 20 July 2015"), escaped."""
    if not c.dates:
        return ""
    items = " · ".join(f"{html.escape(d['text'])} = {html.escape(spell_day(d['date']))}" for d in c.dates)
    return f'<div class="src-file src-dates" dir="auto">{items}</div>'


def also_in(c) -> str:
    """· also in N other articles (syndicated copies of the same sentence), escaped."""
    return f" · also in {len(c.also_in)} other article(s)" if c.also_in else ""


def as_text(text: str) -> str:
    """A chat message shown as plain text: the Chatbot renders no Markdown here, and every character of
    article-derived text is HTML-escaped, so a quote can never become markup, a link or a fetched image."""
    return html.escape(text, quote=True)


_QUOTED = re.compile(r"«([^«»<>]*)»")


def shown_answer(text: str) -> str:
    """An answer as `as_text` shows it, each «quoted» span isolated for the bidi algorithm (<bdi>), so Arabic words
    quoted in an English line ("24 hours — «24 ساعة» [1]") keep their order and their marker stays outside."""
    return _QUOTED.sub(r"«<bdi>\1</bdi>»", as_text(text))


def chat_history(messages: list[dict] | None) -> list[dict]:
    """The Chatbot's messages as plain {"role", "content"} text: its content blocks joined, escaping undone, and the
    small print this app adds under an answer left out."""
    out = []
    for m in messages or []:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
        if isinstance(content, str) and m.get("role") in ("user", "assistant"):
            shown = content.split(SEARCHED_MARK, 1)[0].replace("<bdi>", "").replace("</bdi>", "")  # ours, not text
            content = html.unescape(shown)
            out.append({"role": m["role"], "content": content})
    return out


SEARCHED_MARK = '<div class="searched"'


def searched_note(answer: Answer) -> str:
    """The small print under an answer (`rag.asking.small_print`), escaped, in its own block."""
    lines = small_print(answer)
    if not lines:
        return ""
    return f'{SEARCHED_MARK} dir="auto">' + "<br>".join(as_text(x) for x in lines) + "</div>"

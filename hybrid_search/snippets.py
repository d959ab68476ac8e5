"""Snippets: a hit's text and its matched terms in, the passage to show out.

A chunk's first few hundred characters often start mid-sentence and miss the
part that matched. The snippet is instead the window of at most
``SNIPPET_CHARS`` characters holding the most query-term matches (distinct
terms first, then occurrences), widened to start at a sentence start when one
is near and cut back to a sentence end or a space, so it never begins or ends
inside a word.

Matches are the surface strings the collection's analyzer matched in this text
(``Analyzer.matched_surfaces``), found again by exact search: the snippet and
the highlighting agree on what matched, for every analyzer (stemming, Chinese).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import repeat

from .types import Snippet

__all__ = ["SNIPPET_CHARS", "best_passage", "match_spans"]

#: Longest snippet, in characters (about three lines of a terminal or the page).
SNIPPET_CHARS = 300

# A sentence ends at . ! ? (or their CJK forms), closing quotes or brackets may
# follow, then white space; a line break ends a line of a table or a heading.
# Written to open with one character class, which lets the regex engine skip
# ahead to candidates instead of trying every position (3x faster).
_CLOSERS = "\"'”’)]"  # closing quotes or brackets that may follow . ! ?
_SENTENCE_END = re.compile(rf"[.!?。！？\n](?:(?<=[.!?])[{re.escape(_CLOSERS)}]*(?=\s)|(?<=[。！？\n]))")
_WORD_CHARS = re.compile(r"^\w+$")


# Where each surface occurs in a text, kept per process for the last texts
# met: the same chunks come back as hits query after query, and their matched
# words with them (a few hundred bytes a word, and the text as the key; the
# table starts afresh when full).
_CACHED_TEXTS = 2048
_occurrences: dict[str, dict[str, tuple[int, ...]]] = {}  # text -> surface -> starts


def _starts_in(text: str) -> dict[str, tuple[int, ...]]:
    """The table of where surfaces start in ``text`` (filled by ``_starts``)."""
    found = _occurrences.get(text)
    if found is None:
        if len(_occurrences) >= _CACHED_TEXTS:
            _occurrences.clear()
        found = _occurrences[text] = {}
    return found


def _starts(text: str, surface: str, known: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """Where ``surface`` starts a match in ``text``: every occurrence, or for a
    surface of word characters only, every whole-word one (``known``: the
    text's table)."""
    found = known.get(surface)
    if found is not None:
        return found
    starts = []
    find = text.find
    at = find(surface)
    # isalnum() is regex \w for every character but "_" (one C call for the
    # usual surface, a plain word); the regex decides the rest.
    if not surface.isalnum() and _WORD_CHARS.match(surface) is None:
        while at != -1:
            starts.append(at)
            at = find(surface, at + 1)
    else:
        size = len(surface)
        text_end = len(text)
        while at != -1:
            # A whole word: no word character (regex \w: alphanumeric or "_")
            # on either side; the text's edges count as none (checked inline,
            # this loop runs for every occurrence).
            end = at + size
            if not (at and (text[at - 1].isalnum() or text[at - 1] == "_")) and not (
                end < text_end and (text[end].isalnum() or text[end] == "_")
            ):
                starts.append(at)
            at = find(surface, at + 1)
    found = known[surface] = tuple(starts)
    return found


def match_spans(text: str, surfaces: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, casefolded surface) of every occurrence of the surfaces in
    ``text``, longest surface first where they overlap; surfaces that are all
    word characters only match as whole words.

    The same spans as scanning with the alternation regex of the surfaces,
    longest first, each all-word surface wrapped in ``(?<!\\w)...(?!\\w)``;
    found with ``str.find`` instead, since compiling that regex for every hit
    cost more than the search itself."""
    usable = sorted({s for s in surfaces if s.strip()}, key=len, reverse=True)
    if not usable:
        return []
    # Where each surface could start a match: the longest one wins a position
    # (the regex tries the longer alternatives first), so shorter surfaces are
    # filed first and longer ones overwrite them (two surfaces of one length
    # never start at one position: they would be the same string).
    longest_at: dict[int, str] = {}
    known = _starts_in(text)
    for surface in reversed(usable):
        longest_at.update(zip(_starts(text, surface, known), repeat(surface)))
    # The regex scan: the leftmost match, then on from its end (no overlaps).
    spans = []
    reached = 0
    for at in sorted(longest_at):
        if at >= reached:
            surface = longest_at[at]
            reached = at + len(surface)
            spans.append((at, reached, surface.casefold()))
    return spans


def _sentence_starts(text: str, until: int, since: int = 0) -> list[int]:
    """Where sentences (or lines) begin from ``since`` up to ``until`` at
    least: after each sentence end and its spaces, and at 0 when the text does
    not open mid-sentence (lower case)."""
    starts = []
    if since == 0:
        first = next((ch for ch in text if ch.isalpha()), "")
        if not first.islower():
            starts.append(0)
        scan_from = 0
    else:
        # A start at or after ``since`` follows a sentence end and white space
        # only: step back over the spaces, closing quotes or brackets and the
        # end mark, so the scan begins at that end and not at the text's start.
        scan_from = since
        while scan_from > 0 and text[scan_from - 1].isspace():
            scan_from -= 1
        while scan_from > 0 and text[scan_from - 1] in _CLOSERS:
            scan_from -= 1
        scan_from = max(0, scan_from - 1)
    for match in _SENTENCE_END.finditer(text, scan_from):
        position = match.end()
        if position > until:
            break
        while position < len(text) and text[position].isspace():
            position += 1
        if since <= position < len(text):
            starts.append(position)
    return starts


def _best_window(spans: list[tuple[int, int, str]], width: int) -> tuple[int, int]:
    """The run of matches spans[i..j] fitting in ``width`` characters with the
    most distinct surfaces, then the most matches; the earliest on ties."""
    if not spans:
        return 0, 0
    # The whole run fits: no window holds more.
    if spans[-1][1] - spans[0][0] <= width:
        return 0, len(spans) - 1
    best_key = (0, 0)  # every window holds at least one match, so any key beats it
    best = (0, 0)
    # A sliding window spans[i..j] with a count per surface, so each span is
    # added and removed once (linear in the matches, not quadratic).
    counts: dict[str, int] = {}
    last = len(spans) - 1
    j = -1
    for i, (first_start, _, surface) in enumerate(spans):
        if j < i:
            j = i
            counts[surface] = counts.get(surface, 0) + 1
        while j < last and spans[j + 1][1] - first_start <= width:
            j += 1
            added = spans[j][2]
            counts[added] = counts.get(added, 0) + 1
        key = (len(counts), j - i + 1)
        if key > best_key:
            best_key, best = key, (i, j)
        if counts[surface] == 1:
            del counts[surface]
        else:
            counts[surface] -= 1
    return best


def _trim(text: str, start: int, end: int) -> Snippet:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Snippet(text=text[start:end], start=start, end=end)


def best_passage(text: str, surfaces: Sequence[str], width: int = SNIPPET_CHARS) -> Snippet:
    """The passage of ``text`` to show for a hit whose matched surface strings
    are ``surfaces`` (the opening passage when nothing matched)."""
    if width < 1:
        raise ValueError(f"width must be >= 1; got {width!r}")
    if len(text) <= width:
        return _trim(text, 0, len(text))
    spans = match_spans(text, surfaces)
    if spans:
        i, j = _best_window(spans, width)
        first, last = spans[i][0], spans[j][1]
        slack = width - (last - first)
        # Only a sentence opening within the slack before the first match is used.
        starts = _sentence_starts(text, until=first, since=max(0, first - slack))
        # Open at the sentence holding the first match when it starts within the
        # slack; otherwise give the match a third of the slack as lead-in.
        opening = max((s for s in starts if s <= first), default=None)
        if opening is not None and first - opening <= slack:
            start = opening
        else:
            start = _word_start(text, max(0, first - slack // 3), first)
        must_reach = last
    else:
        # Nothing matched (highlighting off, or a purely semantic hit): the
        # first whole sentence, when the chunk opens mid-sentence.
        starts = _sentence_starts(text, until=width // 3)
        start = next((s for s in starts if s <= width // 3), 0)
        must_reach = start
    end = min(len(text), start + width)
    if end < len(text):
        end = _cut_end(text, start, end, must_reach)
    return _trim(text, start, end)


def _word_start(text: str, position: int, limit: int) -> int:
    """``position`` moved forward to the start of a word (not past ``limit``)."""
    if position == 0 or text[position - 1].isspace():
        return position
    space = text.find(" ", position, limit)
    return space + 1 if space != -1 else position


def _cut_end(text: str, start: int, end: int, must_reach: int) -> int:
    """Where to end a window that would end at ``end``: the last sentence end
    after ``must_reach`` in the window's second half, else the last space."""
    floor = max(must_reach, start + (end - start) // 2)
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(text, floor, end)]
    if sentence_ends:
        return sentence_ends[-1]
    space = text.rfind(" ", max(must_reach, start + 1), end)
    return space if space != -1 else end

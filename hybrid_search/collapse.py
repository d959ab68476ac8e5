"""Duplicate collapsing: a ranked candidate list in, distinct hits out.

Documents repeat themselves (a handbook holds one paragraph four times, a site
copies its footer onto every page), and several copies of one text in the top
hits waste the reader's screen. Walking the final ranking best first, each
candidate is kept, or folded into the better-ranked kept hit it duplicates:

- a **duplicate** has the same word sequence once case, punctuation and white
  space are set aside (NFKC, casefold, words);
- a **near-duplicate** shares at least ``NEAR_DUPLICATE_JACCARD`` of its word
  3-grams (Jaccard similarity of the two sets) with the kept hit: one word
  changed in a chunk of some 150 words or more, not two texts that differ in a
  name (the CEO's and the CFO's certifications in a 10-K are 0.92 alike) and
  not neighbouring chunks that overlap by a sentence.

Collapsing runs over the candidate list before the cut to k, so folding never
leaves fewer than k hits while distinct candidates remain. Candidates ranked
after the k-th kept hit are only checked for being an exact copy of a kept hit
(a length comparison, then a dict lookup), so the folded count covers every exact copy among the
retrieved candidates, and the other duplicates ranked above the last hit.

Cost: the words and 3-grams of the candidates up to the k-th kept hit, and a
set intersection with each kept hit whose 3-gram count could reach the
threshold (Jaccard similarity is at most the smaller set's size over the
larger's), found by bisecting the kept hits sorted by 3-gram count; an
inverted index from 3-gram to kept hit cost more, as common 3-grams ("as
well as") list every kept hit. A text's joined words and 3-gram count, and
each pair's overlap, are kept per process (``_analysed``): a candidate seen
before costs a lookup, and its 3-grams are rebuilt only for a pair not
compared before.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .analyzers import blank_non_word_table, runs_to_words

__all__ = ["NEAR_DUPLICATE_JACCARD", "SHINGLE_WORDS", "Collapsed", "collapse_duplicates", "shingles"]

#: Jaccard similarity of word 3-gram sets at or above which two texts are one.
#: One changed word costs 3 of n 3-grams on each side, (n - 3) / (n + 3): at
#: 0.95 that folds in texts of 120 words or more. 0.8 folded, in the 10-K set,
#: the CEO's certification with the CFO's (0.92), hiding the one a question
#: named (nDCG@10 on its test queries 0.842 -> 0.835, collapse_effect.py).
NEAR_DUPLICATE_JACCARD = 0.95
SHINGLE_WORDS = 3

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# As the analyzer does: a Han character is a word of its own, so Chinese text
# (no spaces) still yields word 3-grams.
_WORD = re.compile(rf"[{_HAN}]|[^\W{_HAN}]+", re.UNICODE)


# ASCII text needs neither NFKC (a no-op on ASCII) nor the regex: lower-case
# it and blank the non-word characters in one translate, then split (the same
# words, in a fraction of the time). The table works on bytes (10x faster than
# str.translate) and leaves bytes >= 128 alone, so it applies to UTF-8 too.
_ASCII_WORD_BYTES = blank_non_word_table(lower=True)


def _words(text: str) -> list[str]:
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    # The regex only where a run of characters holds a non-ASCII one: the
    # blanked ASCII non-word characters and Unicode white space are never part
    # of a word, so the words of the whole text are those of the runs between
    # them, and casefolding (one character at a time) commutes with the split.
    normal = unicodedata.normalize("NFKC", text)
    runs = normal.encode("utf-8", "surrogatepass").translate(_ASCII_WORD_BYTES).decode("utf-8", "surrogatepass").split()
    return runs_to_words(runs, lambda run: _WORD.findall(run.casefold()))


def shingles(words: Sequence[str], size: int = SHINGLE_WORDS) -> frozenset[tuple[str, ...]]:
    """The set of ``size``-word runs of ``words`` (the whole text when shorter)."""
    if len(words) <= size:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(zip(*(words[i:] for i in range(size))))


@dataclass
class Collapsed:
    """The kept candidates in order (at most k), and for each kept id the ids
    folded into it with their similarity to it (1.0 for a duplicate)."""

    kept: list[tuple[str, float]] = field(default_factory=list)
    folded: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    @property
    def folded_count(self) -> int:
        return sum(len(copies) for copies in self.folded.values())


# What a candidate's text analyses to, kept per process: the same chunks come
# back as candidates query after query, and their words and 3-grams cost more
# than the rest of collapsing. Only what is small is kept: the word sequence
# joined by spaces (words hold no white space, so equal joins are equal word
# sequences) and the 3-gram count, under a serial number; the 3-grams of two
# texts are intersected at most once per pair (the overlap is kept under the
# two serials) and otherwise rebuilt from the joined words when a pair first
# needs them. Some 3 KB a text; both tables start afresh when full.
_CACHED_TEXTS = 4096
_CACHED_PAIRS = 1 << 15
_texts: dict[str, tuple[int, str, int]] = {}  # text -> (serial, joined words, 3-gram count)
_overlaps: dict[tuple[int, int], int] = {}  # (serial, serial), smaller first -> 3-grams shared
_serials = itertools.count()


def _analysed(text: str, grams_of: dict[int, frozenset[tuple[str, ...]]]) -> tuple[int, str, int]:
    """(serial, joined words, 3-gram count) of ``text``; its 3-grams go into
    ``grams_of`` when they were built here."""
    entry = _texts.get(text)
    if entry is None:
        words = _words(text)
        grams = shingles(words)
        entry = (next(_serials), " ".join(words), len(grams))
        grams_of[entry[0]] = grams
        if len(_texts) >= _CACHED_TEXTS:
            _texts.clear()
        _texts[text] = entry
    return entry


def _grams(serial: int, joined: str, grams_of: dict[int, frozenset[tuple[str, ...]]]) -> frozenset[tuple[str, ...]]:
    grams = grams_of.get(serial)
    if grams is None:
        grams = grams_of[serial] = shingles(joined.split(" ") if joined else [])
    return grams


def collapse_duplicates(
    ranked: Sequence[tuple[str, float]],
    text_of: Callable[[str], str],
    k: int,
    *,
    threshold: float = NEAR_DUPLICATE_JACCARD,
) -> Collapsed:
    """Fold duplicates and near-duplicates of better-ranked candidates into them.

    ``ranked`` is (id, score) best first; ``text_of`` gives a candidate's text.
    Returns up to ``k`` kept candidates in their original order, each with the
    later candidates folded into it.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1]; got {threshold!r}")
    result = Collapsed()
    # Exact text -> kept id, by length first: most candidates have a length no
    # kept text has, and are let through without hashing their whole text.
    by_text: dict[int, dict[str, str]] = {}
    by_words: dict[str, str] = {}  # joined word sequence -> kept id
    kept_shingles: list[tuple[int, int, str, int, str]] = []  # (3-gram count, place, id, serial, joined words), sorted
    grams_of: dict[int, frozenset[tuple[str, ...]]] = {}  # 3-grams built in this call, by serial
    for cid, score in ranked:
        text = text_of(cid)
        same_length = by_text.get(len(text))
        same = same_length.get(text) if same_length is not None else None
        if same is not None:
            result.folded[same].append((cid, 1.0))
            continue
        if len(result.kept) >= k:
            # No room for another hit: only exact copies are counted now.
            continue
        serial, joined, size = _analysed(text, grams_of)
        same = by_words.get(joined)
        if same is not None:
            result.folded[same].append((cid, 1.0))
            continue
        near = _most_similar(serial, joined, size, kept_shingles, threshold, grams_of)
        if near is not None and near[1] >= threshold:
            result.folded[near[0]].append((cid, near[1]))
            continue
        result.kept.append((cid, score))
        result.folded[cid] = []
        by_text.setdefault(len(text), {})[text] = cid
        by_words[joined] = cid
        bisect.insort(kept_shingles, (size, len(kept_shingles), cid, serial, joined))
    return result


def _most_similar(
    serial: int,
    joined: str,
    size: int,
    kept_shingles: Sequence[tuple[int, int, str, int, str]],
    threshold: float,
    grams_of: dict[int, frozenset[tuple[str, ...]]],
) -> tuple[str, float] | None:
    """The kept id with the highest Jaccard similarity to the candidate (its
    serial, joined words and 3-gram count; the better-ranked on ties) among
    those whose size lets it reach ``threshold``, or None when none of those
    shares a 3-gram. Whenever some kept hit reaches the threshold this is the
    most similar of all kept hits."""
    # Jaccard <= smaller / larger set size: only kept hits with threshold * size
    # to size / threshold 3-grams can reach the threshold (the margin keeps a
    # pair whose float similarity might round up to it).
    low = bisect.bisect_left(kept_shingles, (threshold * size * (1 - 1e-9),))
    high = bisect.bisect_right(kept_shingles, (size / threshold * (1 + 1e-9), math.inf))
    best: tuple[str, float] | None = None
    best_place = 0
    for other_size, place, cid, other, other_joined in kept_shingles[low:high]:
        pair = (serial, other) if serial < other else (other, serial)
        overlap = _overlaps.get(pair)
        if overlap is None:
            overlap = len(_grams(serial, joined, grams_of) & _grams(other, other_joined, grams_of))
            if len(_overlaps) >= _CACHED_PAIRS:
                _overlaps.clear()
            _overlaps[pair] = overlap
        if overlap:
            similarity = overlap / (size + other_size - overlap)
            if best is None or similarity > best[1] or (similarity == best[1] and place < best_place):
                best, best_place = (cid, similarity), place
    return best

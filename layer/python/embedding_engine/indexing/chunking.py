"""Split document text into chunks that fit the model: paragraphs, then sentences, then token windows."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple

from embedding_engine.tokens import tokenize

# A blank line (it may hold spaces) ends a paragraph.
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# A sentence ends after . ! ? (and closing quotes or brackets) before whitespace, after CJK
# full stops, or at a line break (list items, headings, hard-wrapped lines).
_SENTENCE_END = re.compile(
    r"[.!?]+[\"'\u201d\u2019\u00bb)\]]*(?=\s)"  # closing quotes and brackets stay with the sentence
    r"|[\u3002\uff01\uff1f]+[\u201d\u2019\u300d\u300f\uff09]*"  # the CJK full stop, ! and ?
    r"|\n"
)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that fits the model, with where it came from."""

    index: int  # 0, 1, 2... in document order
    text: str  # an exact substring of the document text: text[start:end]
    start: int  # character offsets in the document text
    end: int
    tokens: int  # the chunk's token count with the model's special tokens included


class _Atom(NamedTuple):
    """The unit of packing: a sentence; for a sentence over the budget, a word or a token."""

    start: int
    end: int
    tokens: int
    paragraph: int


def chunk_text(text: str, tokenizer: Any, *, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Split `text` into chunks that each fit `max_tokens` (the model's max sequence length, special
    tokens included), preferring paragraph, then sentence boundaries. Each chunk after the first
    starts with the trailing sentences of the previous one, at most `overlap_tokens` tokens."""
    special = tokenizer.num_special_tokens_to_add()
    budget = max_tokens - special
    if budget < 1:
        raise ValueError(f"max_tokens must exceed the model's {special} special tokens, got {max_tokens}")
    if overlap_tokens < 0 or 2 * overlap_tokens >= budget:
        raise ValueError(
            f"overlap_tokens must be >= 0 and less than half of the {budget} content tokens "
            f"(max_tokens {max_tokens} minus {special} special tokens), got {overlap_tokens}"
        )
    sentences = list(_sentences(text))
    counts = tokenize(tokenizer, [text[s:e] for s, e, _ in sentences], special=False, offsets=False)
    atoms = [_Atom(s, e, n, paragraph) for (s, e, paragraph), n in zip(sentences, counts, strict=True)]
    atoms = _cut_long(text, atoms, tokenizer, budget)
    fitted = _fit(text, atoms, tokenizer, max_tokens, budget, overlap_tokens)
    return [Chunk(i, text[start:end], start, end, tokens) for i, (start, end, tokens) in enumerate(fitted)]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without its leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentences(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, end, paragraph) of each non-blank sentence, stripped, in document order."""
    breaks = [(m.start(), m.end()) for m in _PARAGRAPH_BREAK.finditer(text)]
    bounds = zip([0] + [end for _, end in breaks], [start for start, _ in breaks] + [len(text)], strict=True)
    for paragraph, (paragraph_start, paragraph_end) in enumerate(bounds):
        start = paragraph_start
        cuts = [m.end() for m in _SENTENCE_END.finditer(text, paragraph_start, paragraph_end)]
        for cut in [*cuts, paragraph_end]:
            span = _strip(text, start, cut)
            if span[0] < span[1]:
                yield span[0], span[1], paragraph
            start = cut


def _words(offsets: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Token offsets grouped into words: runs of tokens with no gap between them."""
    words: list[list[tuple[int, int]]] = []
    for token in offsets:
        if words and token[0] <= words[-1][-1][1]:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def _cut_long(text: str, atoms: Sequence[_Atom], tokenizer: Any, budget: int) -> list[_Atom]:
    """The atoms, with each one over `budget` replaced by its words (a word over `budget` by its
    tokens), cut at token offsets: a chunk edge inside a word would tokenize differently."""
    long = [atom for atom in atoms if atom.tokens > budget]
    encoded = tokenize(tokenizer, [text[a.start : a.end] for a in long], special=False, offsets=True)
    result: list[_Atom] = []
    for atom in atoms:
        if atom.tokens <= budget:
            result.append(atom)
            continue
        for word in _words(next(encoded)):
            pieces = (
                [(word[0][0], word[-1][1], len(word))] if len(word) <= budget else [(*t, 1) for t in word]
            )
            for start, end, tokens in pieces:
                span = _strip(text, atom.start + start, atom.start + end)
                result.append(_Atom(*span, tokens, atom.paragraph))
    return result


def _carry_start(prefix: Sequence[int], first: int, end: int, overlap: int) -> int:
    """Where the overlap of the chunk atoms[first:end] begins: its trailing atoms within `overlap`
    tokens, never the whole chunk (so each chunk starts after the previous one)."""
    start = end
    while overlap > 0 and start - 1 > first and prefix[end] - prefix[start - 1] <= overlap:
        start -= 1
    return start


def _pack(atoms: Sequence[_Atom], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing of atoms into chunks, as (first, end) atom ranges, of at most `budget` tokens."""
    prefix = list(accumulate((atom.tokens for atom in atoms), initial=0))
    paragraph_tokens: dict[int, int] = {}
    for atom in atoms:
        paragraph_tokens[atom.paragraph] = paragraph_tokens.get(atom.paragraph, 0) + atom.tokens
    groups: list[tuple[int, int]] = []
    first = 0  # the first atom of the current chunk (overlap included)
    fresh = 0  # the first atom in no emitted chunk yet
    for i, atom in enumerate(atoms):
        if fresh < i and atom.paragraph != atoms[i - 1].paragraph:
            used = prefix[i] - prefix[first]
            needed = paragraph_tokens[atom.paragraph]
            carry = _carry_start(prefix, first, i, overlap)
            # Close a chunk that is half full, or make room for a paragraph that fits a fresh chunk.
            if 2 * used >= budget or (used + needed > budget >= prefix[i] - prefix[carry] + needed):
                groups.append((first, i))
                first, fresh = carry, i
        while first < i and prefix[i + 1] - prefix[first] > budget:
            if fresh < i:
                groups.append((first, i))
                first, fresh = _carry_start(prefix, first, i, overlap), i
            else:
                first += 1  # the overlap alone leaves no room for this atom: shorten it
    if fresh < len(atoms):
        groups.append((first, len(atoms)))
    return groups


def _fit(
    text: str, atoms: Sequence[_Atom], tokenizer: Any, max_tokens: int, budget: int, overlap: int
) -> list[tuple[int, int, int]]:
    """Pack `atoms` and return (start, end, true token count) per chunk. The text of packed atoms can
    tokenize longer than the sum of its parts: such a chunk is packed again from its own atoms with a
    budget smaller by the excess, or cut in two once that is below one token, until every piece fits."""
    groups = _pack(atoms, budget, overlap)
    spans = [_strip(text, atoms[first].start, atoms[end - 1].end) for first, end in groups]
    counts = tokenize(tokenizer, [text[s:e] for s, e in spans], special=True, offsets=False)
    fitted: list[tuple[int, int, int]] = []
    for (first, end), (start, stop), count in zip(groups, spans, counts, strict=True):
        if start >= stop:
            continue  # only whitespace: a token's span can be
        if count <= max_tokens or stop - start == 1:  # a lone character that does not fit cannot be cut
            fitted.append((start, stop, count))
            continue
        smaller = budget - (count - max_tokens)
        if smaller >= 1:
            pieces = _cut_long(text, atoms[first:end], tokenizer, smaller)
        else:
            middle = (start + stop) // 2
            pieces = [_Atom(*_strip(text, start, middle), 1, 0), _Atom(*_strip(text, middle, stop), 1, 0)]
        smaller = max(1, smaller)
        fitted.extend(_fit(text, pieces, tokenizer, max_tokens, smaller, min(overlap, (smaller - 1) // 2)))
    return fitted

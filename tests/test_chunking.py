"""Chunking with the real tokenizer: chunks fit the model, are exact substrings in order, cover the
document, overlap as asked and prefer paragraph, then sentence boundaries."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

import pytest

from embedding_engine.indexing.chunking import Chunk, chunk_text

MAX_TOKENS = 256
VOCABULARY = (
    "the a vector index stores embeddings of every paragraph and sentence while lambda functions "
    "scale quickly tokenization unbelievably heterogeneous retrieval pgvector postgres queue bucket "
    "document extraction overlap boundary window budget model cosine similarity search"
)
WORDS = VOCABULARY.split()


@pytest.fixture(scope="module")
def tokenizer(engine: Any) -> Any:
    return engine.embedder.model.tokenizer


def count(tokenizer: Any, text: str, *, special: bool = True) -> int:
    encoded = tokenizer(text, add_special_tokens=special, truncation=False, verbose=False)
    return len(encoded["input_ids"])


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 18))]
    return " ".join(words).capitalize() + rng.choice(".!?")


def document(seed: int = 7, paragraphs: int = 50) -> tuple[str, list[str]]:
    """~`paragraphs` paragraphs of varied length (a tenth of them lists), and all their sentences."""
    rng = random.Random(seed)
    texts, sentences = [], []
    for _ in range(paragraphs):
        if rng.random() < 0.1:  # a list: one item a line
            items = ["Steps:"] + [f"- {sentence(rng)}" for _ in range(rng.randint(2, 6))]
            texts.append("\n".join(items))
        else:
            items = [sentence(rng) for _ in range(rng.choice([1, 2, 4, 8, 12, 30]))]
            texts.append(" ".join(items))
        sentences.extend(items)
    return "\n\n".join(texts), sentences


def check_chunks(document: str, chunks: list[Chunk], tokenizer: Any, max_tokens: int) -> None:
    """Indexes, exact substrings, stripped, true token counts within budget, order, full coverage."""
    assert chunks
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    covered = [False] * len(document)
    for chunk in chunks:
        assert chunk.text and document[chunk.start : chunk.end] == chunk.text == chunk.text.strip()
        assert chunk.tokens == count(tokenizer, chunk.text) <= max_tokens
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    for previous, following in pairwise(chunks):
        assert previous.start < following.start and previous.end < following.end
    assert all(done or char.isspace() for done, char in zip(covered, document, strict=True))


def test_short_text_is_one_chunk(tokenizer: Any) -> None:
    text = "\n  Lambda serves embeddings. Chunks keep sentences whole!  \n"
    chunks = chunk_text(text, tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=32)
    assert chunks == [Chunk(0, text.strip(), 3, 3 + len(text.strip()), count(tokenizer, text))]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\r\n  "])
def test_blank_text_gives_no_chunks(tokenizer: Any, text: str) -> None:
    assert chunk_text(text, tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=0) == []


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 32), (256, 0), (64, 16), (32, 0), (32, 8)])
def test_long_document_chunks_fit_and_cover_every_sentence(
    tokenizer: Any, max_tokens: int, overlap: int
) -> None:
    text, sentences = document()
    chunks = chunk_text(text, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    check_chunks(text, chunks, tokenizer, max_tokens)
    assert len(chunks) > 1
    # A sentence that fits the budget is never cut: it is whole inside some chunk.
    fitting = [s for s in sentences if count(tokenizer, s) <= max_tokens]
    assert len(fitting) > len(sentences) / 2
    for piece in fitting:
        assert any(piece in chunk.text for chunk in chunks), piece


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 32), (256, 0), (32, 4)])
def test_enormous_sentence_is_cut_into_token_windows(tokenizer: Any, max_tokens: int, overlap: int) -> None:
    rng = random.Random(3)
    text = " ".join(
        rng.choice([*WORDS, "Straßenbahnhaltestelle", "antidisestablishment"]) for _ in range(6000)
    )
    chunks = chunk_text(text, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    check_chunks(text, chunks, tokenizer, max_tokens)
    assert len(chunks) > 6000 // max_tokens
    # Windows are cut at token offsets, never inside a token.
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    starts = {start for start, _ in offsets["offset_mapping"]}
    ends = {end for _, end in offsets["offset_mapping"]}
    assert all(chunk.start in starts and chunk.end in ends for chunk in chunks)
    # Windows overlap by trailing whole words of at most `overlap` tokens (few words are longer).
    shared = [following.start < previous.end for previous, following in pairwise(chunks)]
    assert sum(shared) >= 0.75 * len(shared) if overlap else not any(shared)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 32), (32, 4)])
def test_non_ascii_text(tokenizer: Any, max_tokens: int, overlap: int) -> None:
    parts = [
        "Die Straßenbahn fährt über die Brücke. Größere Übungen fördern Schüler!",
        "向量数据库存储文档的嵌入。每个段落都被切分成小块！检索速度很快吗？",  # noqa: RUF001
        "Deploy it 🚀🔥 and relax 😀. Ça marche très bien, n'est-ce pas?",
        "Смешанный текст: naïve café, 東京タワー, and ünïcödé everywhere.",
    ]
    text = "\n\n".join(parts * 20) + "\n\n" + "好" * 700 + "🚀" * 300
    chunks = chunk_text(text, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    check_chunks(text, chunks, tokenizer, max_tokens)


def test_overlap_is_trailing_text_of_at_most_the_overlap(tokenizer: Any) -> None:
    text, sentences = document(seed=11)
    chunks = chunk_text(text, tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=32)
    for previous, following in pairwise(chunks):
        last = max((s for s in sentences if previous.text.endswith(s)), key=len)
        if count(tokenizer, last, special=False) > 32:  # no whole sentence fits the overlap
            assert following.start >= previous.end
            continue
        assert following.start < previous.end, "consecutive chunks share text"
        shared = text[following.start : previous.end]
        assert previous.text.endswith(shared) and following.text.startswith(shared)
        assert count(tokenizer, shared, special=False) <= 32


def test_no_overlap_means_no_chunk_starts_inside_the_previous(tokenizer: Any) -> None:
    text, _ = document(seed=11)
    chunks = chunk_text(text, tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=0)
    assert all(following.start >= previous.end for previous, following in pairwise(chunks))


def paragraphs_of(tokenizer: Any, rng: random.Random, low: int, high: int, number: int) -> list[str]:
    """`number` paragraphs of about `low`..`high` content tokens each."""
    paragraphs = []
    for _ in range(number):
        target, sentences = rng.randint(low, high), [sentence(rng)]
        while count(tokenizer, " ".join(sentences), special=False) < target:
            sentences.append(sentence(rng))
        paragraphs.append(" ".join(sentences))
    return paragraphs


@pytest.mark.parametrize("overlap", [0, 32])
def test_paragraphs_that_fit_are_never_split(tokenizer: Any, overlap: int) -> None:
    paragraphs = paragraphs_of(tokenizer, random.Random(5), 100, 140, 30)
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=overlap)
    check_chunks(text, chunks, tokenizer, MAX_TOKENS)
    spans, start = [], 0
    for paragraph in paragraphs:
        spans.append((start, start + len(paragraph)))
        start += len(paragraph) + 2
    for first, last in spans:
        assert any(chunk.start <= first and last <= chunk.end for chunk in chunks)
    if overlap == 0:  # then every chunk is whole paragraphs
        assert {chunk.start for chunk in chunks} <= {first for first, _ in spans}
        assert {chunk.end for chunk in chunks} <= {last for _, last in spans}


def test_short_paragraphs_are_packed_together(tokenizer: Any) -> None:
    paragraphs = paragraphs_of(tokenizer, random.Random(6), 5, 20, 60)
    chunks = chunk_text("\n\n".join(paragraphs), tokenizer, max_tokens=MAX_TOKENS, overlap_tokens=0)
    assert len(chunks) < len(paragraphs) / 5
    assert all(chunk.tokens > MAX_TOKENS / 2 for chunk in chunks[:-1])


class InflatingTokenizer:
    """The real tokenizer, except that whole chunks count one extra token per ten: the joined text of
    packed parts then tokenizes longer than the sum of its parts, as it can with other tokenizers."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def num_special_tokens_to_add(self) -> int:
        return int(self.inner.num_special_tokens_to_add())

    def __call__(self, texts: Any, **options: Any) -> Any:
        encoded = self.inner(texts, **options)
        if options.get("add_special_tokens"):
            encoded["input_ids"] = [row + row[: len(row) // 10] for row in encoded["input_ids"]]
        return encoded


def test_chunks_that_tokenize_longer_when_joined_are_split_again(tokenizer: Any) -> None:
    inflating = InflatingTokenizer(tokenizer)
    text, _ = document(seed=13, paragraphs=20)
    chunks = chunk_text(text, inflating, max_tokens=MAX_TOKENS, overlap_tokens=32)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.tokens == len(inflating([chunk.text], add_special_tokens=True)["input_ids"][0])
        assert chunk.tokens <= MAX_TOKENS


@pytest.mark.parametrize(
    ("max_tokens", "overlap"),
    [(2, 0), (1, 0), (0, 0), (256, -1), (256, 127), (256, 300), (32, 15), (3, 1)],
)
def test_bad_parameters_raise(tokenizer: Any, max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"max_tokens|overlap_tokens"):
        chunk_text("Some text.", tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 126), (32, 14), (3, 0)])
def test_largest_allowed_overlap_works(tokenizer: Any, max_tokens: int, overlap: int) -> None:
    text, _ = document(seed=17, paragraphs=10)
    chunks = chunk_text(text, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    check_chunks(text, chunks, tokenizer, max_tokens)


def test_deterministic(tokenizer: Any) -> None:
    text, _ = document(seed=19)
    first = chunk_text(text, tokenizer, max_tokens=64, overlap_tokens=16)
    assert first == chunk_text(text, tokenizer, max_tokens=64, overlap_tokens=16)

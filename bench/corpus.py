"""A deterministic corpus of realistic English prose (no network, no data sets)."""

from __future__ import annotations

import random

SUBJECTS = [
    "The indexing pipeline",
    "A warm Lambda container",
    "The vector index",
    "Our retrieval service",
    "The embedding model",
    "A cold start",
    "The document store",
    "Each SQS batch",
    "The search endpoint",
    "Provisioned concurrency",
    "The tokenizer",
    "A PDF report",
    "The HNSW graph",
    "An S3 notification",
]
VERBS = [
    "reduces",
    "depends on",
    "stores",
    "measures",
    "improves",
    "splits",
    "retries",
    "embeds",
    "ranks",
    "protects",
    "reads",
    "normalises",
    "caches",
    "reports",
]
OBJECTS = [
    "the latency of the first request",
    "every chunk of the quarterly report",
    "cosine similarity scores",
    "the maximum sequence length",
    "duplicate deliveries from the queue",
    "the memory of the function",
    "paragraph and sentence boundaries",
    "vectors of 384 dimensions",
    "the cost of idle capacity",
    "thousands of customer support tickets",
    "the freshness of the search results",
]
CLAUSES = [
    "when traffic spikes in the morning",
    "because the model is already loaded",
    "without blocking readers",
    "so that nothing is lost",
    "under a per-document lock",
    "as the benchmark shows",
    "in one transaction",
]


def sentence(rng: random.Random) -> str:
    clause = f" {rng.choice(CLAUSES)}" if rng.random() < 0.6 else ""
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{clause}."


def document(rng: random.Random, paragraphs: int) -> str:
    return "\n\n".join(" ".join(sentence(rng) for _ in range(rng.randint(3, 8))) for _ in range(paragraphs))


def corpus(count: int, *, paragraphs: int = 12, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [document(rng, paragraphs) for _ in range(count)]


def queries(count: int, *, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(count)]

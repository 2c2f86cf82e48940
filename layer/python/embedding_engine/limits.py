"""How much one request may ask for: tokens the model encodes in time, bytes a response can carry."""

from __future__ import annotations

import math

# OpenAI's own limit on tokens per embeddings request: never more, whatever the CPU.
OPENAI_MAX_TOTAL_TOKENS = 300_000
# The default budget is the tokens this model encodes in this share of the request timeout: the rest
# absorbs a slower CPU than at init, tokenizing, and the reply.
TIMEOUT_SHARE = 0.5
# orjson writes a unit-length float32 component in 11-12.5 bytes with its comma (mean 12.2 for 384
# dimensions, 12.4 for 768; the most seen in a vector, 12.5): 13 covers it. Unnormalised vectors
# take less (about 10.3).
JSON_BYTES_PER_FLOAT = 13
# `{"object":"embedding","index":2047,"embedding":[...]},` around each vector, and the envelope.
ITEM_BYTES = 64
ENVELOPE_BYTES = 512


def default_max_total_tokens(tokens_per_second: float, request_timeout_seconds: float) -> int:
    """The tokens one request may carry: what the model encodes in TIMEOUT_SHARE of the request
    timeout at the throughput measured at init, rounded down to a thousand (at least one thousand),
    at most OpenAI's 300,000."""
    tokens = tokens_per_second * request_timeout_seconds * TIMEOUT_SHARE
    return int(min(OPENAI_MAX_TOTAL_TOKENS, max(1000, tokens // 1000 * 1000)))


def response_bytes(vectors: int, dimensions: int, *, base64: bool) -> int:
    """The size of a response carrying `vectors` vectors of `dimensions`, estimated from how they are
    really encoded (base64: exact; JSON floats: JSON_BYTES_PER_FLOAT), before any is computed."""
    encoded = 4 * math.ceil(4 * dimensions / 3) if base64 else JSON_BYTES_PER_FLOAT * dimensions
    per_vector = 2 + encoded  # with its quotes or brackets
    return ENVELOPE_BYTES + vectors * (per_vector + ITEM_BYTES)

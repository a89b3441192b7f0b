"""Flows shipped with CallPilot (JSON documents beside this module)."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".json"))


def load_builtin(name: str) -> dict[str, Any]:
    """The document of built-in flow ``name`` (``main`` is the DID 800 demo)."""
    if name not in builtin_names():
        raise KeyError(f"no built-in flow {name!r}; have {builtin_names()}")
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text("utf-8"))

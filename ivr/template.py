"""``{variable}`` substitution in prompt texts (dotted names reach into nested dicts)."""
from __future__ import annotations

import logging
import re
from typing import Any, Mapping

logger = logging.getLogger(__name__)

_FIELD = re.compile(r"\{([A-Za-z_]\w*(?:\.\w+)*)\}")


def is_static(text: str) -> bool:
    """True when ``text`` has no ``{variable}``: it can be rendered before any call."""
    return _FIELD.search(text) is None


def variables_in(text: str) -> list[str]:
    return _FIELD.findall(text)


def lookup(variables: Mapping[str, Any], name: str) -> Any:
    value: Any = variables
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Replace each ``{name}`` by its value; a missing or None value becomes ''."""
    def one(match: re.Match[str]) -> str:
        value = lookup(variables, match.group(1))
        if value is None:
            logger.debug("prompt variable %s is not set", match.group(1))
            return ""
        return str(value)
    return _FIELD.sub(one, text)

"""Flow documents: parse and validate JSON into typed nodes.

A document is ``{"name": str, "start": node_id, "language": "en-us" (optional),
"nodes": {node_id: {"type": ..., ...}}}``.  :func:`check` returns every problem as a
:class:`FlowError` (node id + reason); :func:`parse` returns a :class:`Flow` or raises
:class:`FlowInvalid` with that list.  Drafts may be invalid; only valid flows run or publish.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callpilot.infra.messages import MessageCatalogue, primary
from ivr import template
from ivr.errors import FlowError, FlowInvalid
from ivr.nodes import NODE_TYPES, Node
from ivr.nodes.enqueue import EnqueueNode
from ivr.nodes.hangup import HangupNode
from ivr.nodes.menu import MenuNode
from ivr.nodes.transfer import TransferNode
from ivr.nodes.fields import Fields, Prompt

logger = logging.getLogger(__name__)

# Never trap a caller: from every node a queue, a transfer or a hangup is at most this many
# steps away, and a menu's fallback (after repeated no-match) reaches a queue or transfer.
MAX_EXIT_STEPS = 20

# Is this word in the speech model's vocabulary?  (None: do not check.)
Vocabulary = Callable[[str], bool]

__all__ = ["Flow", "FlowError", "FlowInvalid", "Vocabulary", "check", "check_edge", "parse"]

# Limits at the edge (issue 9: a 5 MB flow of 51,500 nodes took 8 minutes of rendering and
# 3.5 GB of WAVs; a 10,000-character prompt became a 12-minute recording).  The built-in
# flows are a few kB with about 15 nodes; a real bank menu has tens to a few hundred.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_NODES = 500
MAX_PROMPT_CHARS = 600          # about 40 s of speech at the default rate
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit"


@dataclass
class Flow:
    name: str
    start: str
    nodes: dict[str, Node]
    language: str | None = None
    timezone: str | None = None
    version: int | None = None          # set by the store for published versions
    doc: dict[str, Any] = field(default_factory=dict, repr=False)

    def static_prompts(self, messages: MessageCatalogue | None = None) -> list[tuple[str, str | None]]:
        """(text, language) pairs that need no call data: rendered before any call.
        ``{"message": key}`` prompts (with ``messages``) in the flow's languages and in every
        language of the catalogue: a follow-up flow such as the survey runs in the caller's."""
        languages = self.languages()
        spoken = _message_languages(languages, messages)
        pairs: dict[tuple[str, str | None], None] = {}
        for node in self.nodes.values():
            for prompt in node.prompts():
                found = (_message_pairs(prompt.message, spoken, messages) if prompt.message
                         else _static_pairs(prompt, languages))
                pairs.update(dict.fromkeys(found))
        return list(pairs)

    def speaks(self, language: str) -> bool:
        """Can every prompt be said in ``language``?  Catalogue messages and sounds can; a
        single text only in the flow's own language; per-language texts when they have it."""
        lang = language.lower()
        own = (self.language or "").lower()
        return all(_speaks(prompt, lang, own) for node in self.nodes.values() for prompt in node.prompts())

    def languages(self) -> list[str | None]:
        """The flow language and every language a node may switch to."""
        found: dict[str | None, None] = {self.language: None}
        for node in self.nodes.values():
            found.update(dict.fromkeys(node.languages()))
        return list(found)


def _speaks(prompt: Prompt, language: str, own: str) -> bool:
    if prompt.message or prompt.audio:
        return True
    if prompt.text is not None:
        return primary(own) == primary(language)
    return primary(language) in {primary(lang) for lang in prompt.texts}


def _message_languages(languages: list[str | None], messages: MessageCatalogue | None) -> list[str | None]:
    if messages is None:
        return []
    covered = {primary(lang) for lang in languages}
    return languages + [lang for lang in messages.languages if lang not in covered]


def _message_pairs(key: str, languages: list[str | None],
                   messages: MessageCatalogue | None) -> Iterable[tuple[str, str | None]]:
    if messages is None or key not in messages.keys:
        return []
    said = [messages.template(key, lang) for lang in languages]
    return [(s.text, s.language) for s in said if template.is_static(s.text)]


def _static_pairs(prompt: Prompt, languages: list[str | None]) -> Iterable[tuple[str, str | None]]:
    if prompt.text is not None:
        texts = [(prompt.text, lang) for lang in languages]
    else:
        texts = [(text, lang) for lang, text in prompt.texts.items()]
    return [(t, lang) for t, lang in texts if template.is_static(t)]


def parse(doc: Any, *, vocabulary: Vocabulary | None = None,
          vocabulary_language: str | None = None) -> Flow:
    flow, errors = _build(doc, vocabulary, vocabulary_language)
    if errors or flow is None:
        raise FlowInvalid(errors)
    return flow


def check(doc: Any, *, vocabulary: Vocabulary | None = None,
          vocabulary_language: str | None = None,
          vocabularies: dict[str, Vocabulary] | None = None) -> list[FlowError]:
    """Every problem of the document (empty list: it can be published).

    ``vocabulary`` tells whether the speech model knows a word; phrases are checked when they
    are for ``vocabulary_language`` (the model's language, e.g. "ko"), or for any language in
    a flow whose language is that one (or unset).  ``vocabularies`` does the same for several
    engines at once (language -> vocabulary).
    """
    if vocabularies:
        flow, errors = _build(doc, None)
        if flow is not None:
            for language, known in vocabularies.items():
                _check_vocabulary(flow.nodes, known, language, flow.language, errors)
        return errors
    return _build(doc, vocabulary, vocabulary_language)[1]


def check_edge(name: Any, doc: Any) -> list[FlowError]:
    """The cheap checks done before a document is stored or parsed at all: the flow name,
    the document's size and its node count (empty list: go on)."""
    errors = []
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        errors.append(FlowError(None, f"flow name {name!r}: {NAME_RULE}"))
    if not isinstance(doc, dict):
        return errors + [FlowError(None, "a flow must be a JSON object")]
    return errors + _limits(doc)


def _limits(doc: dict[str, Any]) -> list[FlowError]:
    errors = []
    size = _json_size(doc)
    if size > MAX_DOCUMENT_BYTES:
        errors.append(FlowError(None, f"document is {size} bytes; at most {MAX_DOCUMENT_BYTES}"))
    nodes = doc.get("nodes")
    if isinstance(nodes, dict) and len(nodes) > MAX_NODES:
        errors.append(FlowError(None, f"{len(nodes)} nodes; at most {MAX_NODES}"))
    return errors


def _json_size(doc: dict[str, Any]) -> int:
    try:
        return len(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        return 0                        # not JSON-able: the structural checks report it


def _build(doc: Any, vocabulary: Vocabulary | None,
           vocabulary_language: str | None = None) -> tuple[Flow | None, list[FlowError]]:
    errors: list[FlowError] = []
    if not isinstance(doc, dict):
        return None, [FlowError(None, "a flow must be a JSON object")]
    name = doc.get("name")
    edge = check_edge(name, doc) if isinstance(name, str) and name.strip() else _limits(doc)
    if edge:
        return None, edge               # too big to look into, or badly named
    name, start, language, timezone, raw_nodes = _header(doc, errors)
    nodes = {nid: node for nid, raw in raw_nodes.items()
             if (node := _node(nid, raw, errors)) is not None}
    if start is not None and start not in raw_nodes:
        errors.append(FlowError(None, f"start node {start!r} does not exist"))
    _check_targets(nodes, raw_nodes, errors)
    if start in nodes:
        _check_reachable(start, nodes, errors)
    _check_loops(nodes, errors)
    if not errors:                  # trapped-caller checks need a well-formed graph
        _check_exits(nodes, errors)
    _check_prompt_lengths(nodes, errors)
    if vocabulary is not None:
        _check_vocabulary(nodes, vocabulary, vocabulary_language, language, errors)
    flow = Flow(name or "", start or "", nodes, language, timezone, doc=doc)
    return flow, errors


def _header(doc: dict[str, Any], errors: list[FlowError]):
    name, start, language = doc.get("name"), doc.get("start"), doc.get("language")
    timezone = _flow_timezone(doc.get("timezone"), errors)
    raw_nodes = doc.get("nodes")
    if not isinstance(name, str) or not name.strip():
        errors.append(FlowError(None, "missing name"))
    if not isinstance(start, str) or not start:
        errors.append(FlowError(None, "missing start"))
        start = None
    if language is not None and not isinstance(language, str):
        errors.append(FlowError(None, "language must be a string such as 'en-us'"))
        language = None
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        errors.append(FlowError(None, "nodes must be a non-empty object"))
        raw_nodes = {}
    for key in sorted(set(doc) - {"name", "start", "language", "timezone", "nodes", "description"}):
        if not key.startswith("_"):
            errors.append(FlowError(None, f"unknown field {key!r}"))
    return name, start, language, timezone, raw_nodes


def _flow_timezone(value: Any, errors: list[FlowError]) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        errors.append(FlowError(None, f"unknown time zone {value!r}"))
        return None
    return value


def _node(node_id: str, raw: Any, errors: list[FlowError]) -> Node | None:
    if not isinstance(raw, dict):
        errors.append(FlowError(node_id, "a node must be a JSON object"))
        return None
    kind = raw.get("type")
    cls = NODE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        errors.append(FlowError(node_id, f"unknown type {kind!r}"))
        return None
    f = Fields(node_id, raw, errors)
    node = cls.parse(f)
    f.finish()
    return node


def _check_targets(nodes: dict[str, Node], raw_nodes: dict[str, Any],
                   errors: list[FlowError]) -> None:
    for node in nodes.values():
        for target in node.targets():
            if target and target not in raw_nodes:
                errors.append(FlowError(node.id, f"target {target!r} does not exist"))


def _check_reachable(start: str, nodes: dict[str, Node], errors: list[FlowError]) -> None:
    seen = {start}
    todo = [start]
    while todo:
        for target in nodes[todo.pop()].targets():
            if target in nodes and target not in seen:
                seen.add(target)
                todo.append(target)
    for node_id in nodes:
        if node_id not in seen:
            errors.append(FlowError(node_id, "unreachable from the start node"))


def _check_loops(nodes: dict[str, Node], errors: list[FlowError]) -> None:
    """A cycle through nodes that never wait for the caller would spin forever."""
    spinning = {nid for nid, n in nodes.items() if not n.takes_input}
    for cycle in _cycles(spinning, nodes):
        errors.append(FlowError(cycle[0], "loop takes no input: " + " -> ".join(cycle + cycle[:1])))


def _distances(nodes: dict[str, Node], exits: set[str]) -> dict[str, int]:
    """Steps from each node to the nearest of ``exits`` (absent: none reachable)."""
    callers: dict[str, list[str]] = {}
    for node in nodes.values():
        for target in node.targets():
            callers.setdefault(target, []).append(node.id)
    distance = dict.fromkeys(exits, 0)
    todo = list(exits)
    while todo:
        nid = todo.pop(0)
        for caller in callers.get(nid, []):
            if caller not in distance:
                distance[caller] = distance[nid] + 1
                todo.append(caller)
    return distance


def _check_exits(nodes: dict[str, Node], errors: list[FlowError]) -> None:
    people = {nid for nid, n in nodes.items() if isinstance(n, (EnqueueNode, TransferNode))}
    goodbyes = {nid for nid, n in nodes.items() if isinstance(n, HangupNode)}
    to_person = _distances(nodes, people)
    to_exit = _distances(nodes, people | goodbyes)
    for nid, node in nodes.items():
        if to_exit.get(nid, MAX_EXIT_STEPS + 1) > MAX_EXIT_STEPS:
            errors.append(FlowError(nid, f"no queue, transfer or goodbye within "
                                         f"{MAX_EXIT_STEPS} steps: the caller would be trapped"))
        if isinstance(node, MenuNode) and node.fallback in nodes and node.fallback not in to_person:
            errors.append(FlowError(nid, f"fallback {node.fallback!r} reaches no queue: after "
                                         f"repeated no-match the caller must reach a person"))


def _cycles(members: set[str], nodes: dict[str, Node]) -> list[list[str]]:
    """One representative cycle per strongly connected group of ``members`` (iterative DFS)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}          # 1 = on the current path, 2 = done
    for root in sorted(members):
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(nodes[root].targets()))]
        state[root] = 1
        path.append(root)
        while stack:
            nid, children = stack[-1]
            child = next((c for c in children if c in members), None)
            if child is None:
                stack.pop()
                path.pop()
                state[nid] = 2
            elif state.get(child) == 1:
                cycles.append(path[path.index(child):])
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(nodes[child].targets())))
    return cycles


def _check_prompt_lengths(nodes: dict[str, Node], errors: list[FlowError]) -> None:
    for node in nodes.values():
        for prompt in node.prompts():
            texts = [prompt.text] if prompt.text is not None else list(prompt.texts.values())
            for text in texts:
                if isinstance(text, str) and len(text) > MAX_PROMPT_CHARS:
                    errors.append(FlowError(node.id, f"prompt of {len(text)} characters; at "
                                                     f"most {MAX_PROMPT_CHARS}"))


def _check_vocabulary(nodes: dict[str, Node], known: Vocabulary, model_language: str | None,
                      flow_language: str | None, errors: list[FlowError]) -> None:
    for node in nodes.values():
        for lang, phrases in node.phrase_sets().items():
            if not _same_language(lang or flow_language, model_language):
                continue
            for phrase in dict.fromkeys(phrases):
                missing = [w for w in phrase.split() if not known(w)]
                if missing:
                    errors.append(FlowError(node.id, f"phrase {phrase!r}: speech model does not "
                                                     f"know {', '.join(missing)}"))


def _same_language(a: str | None, b: str | None) -> bool:
    """None matches anything; otherwise compare primary subtags ("ko-kr" ~ "ko")."""
    if a is None or b is None:
        return True
    return a.lower().split("-")[0] == b.lower().split("-")[0]

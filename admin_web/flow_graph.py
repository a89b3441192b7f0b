"""The flow as a graph for the editor page: nodes, labelled edges, and each node's problems."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

TARGET_KEYS = ("next", "fallback", "else", "not_found", "error")


def edges_of(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, target node id) for every way out of ``node``."""
    out = [(key, node[key]) for key in TARGET_KEYS if isinstance(node.get(key), str)]
    for label, target in (node.get("targets") or {}).items() if isinstance(node.get("targets"), dict) else ():
        if isinstance(target, str):
            out.append((str(label), target))
    for key in ("options", "choices", "rules"):
        items = node.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and isinstance(item.get("target"), str):
                out.append((_item_label(key, i, item), item["target"]))
    return out


def _item_label(key: str, i: int, item: Mapping[str, Any]) -> str:
    if key == "rules":
        return f"rule {i}"
    phrases = item.get("phrases")
    first = phrases[0] if isinstance(phrases, list) and phrases and isinstance(phrases[0], str) else ""
    key_text = item.get("key") or item.get("value") or ""
    return " ".join(str(p) for p in (key_text, first) if p) or f"{key} {i}"


def problems_by_node(document: Mapping[str, Any], problems: Iterable[Any]) -> tuple[dict[str, list[str]], list[str]]:
    """Problems of each node, and those of the flow as a whole (or of a node that is gone)."""
    nodes = document.get("nodes") if isinstance(document.get("nodes"), dict) else {}
    per_node: dict[str, list[str]] = {}
    flow_level: list[str] = []
    for problem in problems:
        if problem.node_id is not None and problem.node_id in nodes:
            per_node.setdefault(problem.node_id, []).append(problem.reason)
        else:
            prefix = f"{problem.node_id}: " if problem.node_id else ""
            flow_level.append(prefix + problem.reason)
    return per_node, flow_level


def graph_data(document: Mapping[str, Any], per_node: Mapping[str, list[str]],
               selected: str | None) -> dict[str, Any]:
    """What static/js/flow_graph.js draws (cytoscape elements)."""
    nodes = document.get("nodes") if isinstance(document.get("nodes"), dict) else {}
    elements: list[dict[str, Any]] = []
    for node_id, node in nodes.items():
        node = node if isinstance(node, dict) else {}
        label = node.get("label") or node_id
        classes = [str(node.get("type", "unknown"))]
        classes += ["invalid"] if node_id in per_node else []
        classes += ["start"] if node_id == document.get("start") else []
        classes += ["selected"] if node_id == selected else []
        elements.append({"data": {"id": node_id, "label": f"{label}\n({node.get('type', '?')})",
                                  "errors": per_node.get(node_id, [])},
                         "classes": " ".join(classes)})
    for node_id, node in nodes.items():
        for i, (label, target) in enumerate(edges_of(node if isinstance(node, dict) else {})):
            if target in nodes:
                elements.append({"data": {"id": f"{node_id}->{target}#{i}", "source": node_id,
                                          "target": target, "label": label}})
    return {"elements": elements, "start": document.get("start"), "selected": selected}

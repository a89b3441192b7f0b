"""The editor has a form for every IVR node type, and forms round-trip real flow documents."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from admin_web import flow_forms, flow_graph
from ivr import schema
from ivr.nodes import NODE_TYPES

FLOWS = sorted((Path(__file__).resolve().parents[2] / "ivr" / "flows").glob("*.json"))


def test_every_node_type_has_a_form():
    assert set(flow_forms.NODE_FORMS) == set(NODE_TYPES)


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.stem)
def test_forms_round_trip_the_builtin_flows(path):
    document = json.loads(path.read_text(encoding="utf-8"))
    for node_id, node in document["nodes"].items():
        names = {f.name for f in flow_forms.fields_for(node["type"])}
        assert set(node) - {"type"} <= names, (node_id, set(node) - names)
        assert flow_forms.from_form(node["type"], flow_forms.to_form(node)) == node, node_id


@pytest.mark.parametrize("node_type", sorted(NODE_TYPES))
def test_every_form_field_is_a_field_the_ivr_reads(node_type):
    """A form field the IVR does not know would be reported as 'unknown field'."""
    for field in flow_forms.fields_for(node_type):
        node = {"type": node_type, **CONTEXT.get((node_type, field.name), {}), field.name: _sample(field)}
        problems = schema.check({"name": "x", "start": "n", "nodes": {"n": node}})
        assert not [p for p in problems if "unknown field" in p.reason], (field.name, problems)


# fields the IVR reads only together with another one
CONTEXT = {("ask", "targets"): {"yes_no": True}}


def _sample(field):
    return {"int": 1, "float": 1.0, "bool": True, "json": [], "prompt": "hi",
            "target": "n"}.get(field.kind, "x")


def test_form_text_becomes_json_values():
    form = {"prompt": '{"text": {"en": "Hi", "ko": "안녕"}}', "retries": "3", "timeout": "2.5",
            "speech": "false", "options": '[{"key": "1", "target": "a"}]', "fallback": "b",
            "min_confidence": ""}
    node = flow_forms.from_form("menu", form)
    assert node == {"type": "menu", "prompt": {"text": {"en": "Hi", "ko": "안녕"}}, "retries": 3,
                    "timeout": 2.5, "speech": False, "options": [{"key": "1", "target": "a"}],
                    "fallback": "b"}


def test_bad_json_names_the_field():
    with pytest.raises(flow_forms.FormError) as err:
        flow_forms.from_form("menu", {"options": "[{"})
    assert err.value.field == "options"


def test_unshown_keys_are_kept():
    node = flow_forms.from_form("say", {"text": "Hi", "next": "x"}, keep={"type": "say", "ui": {"x": 1}})
    assert node == {"type": "say", "ui": {"x": 1}, "text": "Hi", "next": "x"}


def test_prompt_text_by_language():
    prompt = {"text": {"en": "Hello", "ko": "안녕하세요"}}
    assert flow_forms.prompt_text(prompt, "ko-KR") == "안녕하세요"
    assert flow_forms.prompt_text(prompt, "en-us") == "Hello"
    assert flow_forms.prompt_text(prompt, None) == "Hello"
    assert flow_forms.prompt_text({"audio": "beep"}, "en") is None
    assert flow_forms.prompt_text("Hi", None) == "Hi"


def test_graph_edges_cover_every_target_the_ivr_follows():
    """The graph shows exactly the ways out that the IVR's own parser finds."""
    for path in FLOWS:
        document = json.loads(path.read_text(encoding="utf-8"))
        flow = schema.parse(document)
        for node_id, node in document["nodes"].items():
            drawn = {target for _label, target in flow_graph.edges_of(node)}
            assert drawn == set(flow.nodes[node_id].targets()), (path.stem, node_id)

"""Flow document validation: every error names its node and a reason."""
from __future__ import annotations

import copy

import pytest

from ivr.errors import FlowError, FlowInvalid
from ivr.flows import builtin_names, load_builtin
from ivr.nodes import EnqueueNode, MenuNode, SayNode
from ivr.schema import check, parse


def doc(**nodes):
    return {"name": "t", "start": next(iter(nodes)), "nodes": nodes}


def reasons(errors: list[FlowError]) -> list[tuple[str | None, str]]:
    return [(e.node_id, e.reason) for e in errors]


def test_builtin_main_is_valid_and_typed() -> None:
    assert "main" in builtin_names()
    flow = parse(load_builtin("main"))
    assert isinstance(flow.nodes["greeting"], SayNode)
    menu = flow.nodes["main_menu"]
    assert isinstance(menu, MenuNode) and menu.retries == 2 and menu.fallback == "to_general"
    assert menu.phrases("en") == ["billing", "cards", "lost card", "agent", "operator",
                                  "representative"]
    assert isinstance(flow.nodes["to_general"], EnqueueNode)
    assert flow.nodes["to_general"].queue == "general"


def test_load_builtin_unknown() -> None:
    with pytest.raises(KeyError):
        load_builtin("nope")


def test_parse_raises_with_all_errors() -> None:
    with pytest.raises(FlowInvalid) as info:
        parse(doc(a={"type": "nope"}, b={"type": "say", "next": "a"}))
    assert reasons(info.value.errors) == [("a", "unknown type 'nope'"),
                                          ("b", "say needs text, audio or prompt")]


@pytest.mark.parametrize("bad", [None, [], "x", 3])
def test_not_an_object(bad) -> None:
    assert check(bad) == [FlowError(None, "a flow must be a JSON object")]


def test_header_errors() -> None:
    errors = reasons(check({"start": "zz", "nodes": {}, "colour": 1}))
    assert (None, "missing name") in errors
    assert (None, "nodes must be a non-empty object") in errors
    assert (None, "start node 'zz' does not exist") in errors
    assert (None, "unknown field 'colour'") in errors


def test_dangling_and_missing_targets() -> None:
    errors = reasons(check(doc(a={"type": "say", "text": "hi", "next": "ghost"},
                               )))
    assert errors == [("a", "target 'ghost' does not exist")]
    errors = reasons(check(doc(a={"type": "say", "text": "hi"})))
    assert errors == [("a", "missing target next")]


def test_unreachable_node() -> None:
    errors = reasons(check(doc(a={"type": "hangup"}, island={"type": "hangup"})))
    assert errors == [("island", "unreachable from the start node")]


def test_loop_without_input_is_refused_but_a_menu_loop_is_fine() -> None:
    spin = doc(a={"type": "say", "text": "one", "next": "b"},
               b={"type": "say", "text": "two", "next": "a"})
    assert reasons(check(spin)) == [("a", "loop takes no input: a -> b -> a")]
    menu_loop = doc(m={"type": "menu", "prompt": "press 1", "fallback": "bye",
                       "options": [{"key": "1", "target": "again"}]},
                    again={"type": "say", "text": "again", "next": "m"},
                    bye={"type": "enqueue", "queue": "general"})
    assert check(menu_loop) == []


def test_empty_prompts() -> None:
    errors = reasons(check(doc(a={"type": "say", "text": "  ", "next": "b"},
                               b={"type": "menu", "prompt": "", "fallback": "c",
                                  "options": [{"key": "1", "target": "c"}]},
                               c={"type": "hangup", "prompt": {"text": {"en": ""}}})))
    assert ("a", "text is an empty prompt") in errors
    assert ("b", "prompt is an empty prompt") in errors
    assert ("c", "prompt is an empty prompt in some language") in errors


def test_menu_option_errors() -> None:
    menu = {"type": "menu", "prompt": "choose", "fallback": "end", "options": [
        {"key": "1", "target": "end"}, {"key": "1", "target": "end"},
        {"target": "end"}, {"key": "x9", "target": "end"},
        {"key": "2", "phrases": ["Sales"], "target": "end"},
        {"phrases": ["sales"], "target": "end"}, {"key": "3"}]}
    errors = reasons(check(doc(m=menu, end={"type": "hangup"})))
    assert errors == [("m", "duplicate key '1'"),
                      ("m", "option 2 has neither key nor phrase"),
                      ("m", "option 3 key 'x9' is not made of 0-9, * and #"),
                      ("m", "duplicate phrase 'sales'"),
                      ("m", "option 6 has no target")]


def test_menu_without_options_or_fallback() -> None:
    errors = reasons(check(doc(m={"type": "menu", "prompt": "choose"})))
    assert errors == [("m", "menu has no options"), ("m", "missing target fallback")]


def test_field_types_and_unknown_fields() -> None:
    errors = reasons(check(doc(
        m={"type": "menu", "prompt": "p", "fallback": "q", "retries": "two", "timeout": -1,
           "options": [{"key": 1, "target": "q"}], "colour": "red", "_editor": {"x": 1}},
        q={"type": "enqueue", "queue": "general", "priority": 500,
           "skills": {"billing": "high"}})))
    assert errors == [("m", "retries must be an integer, got 'two'"),
                      ("m", "timeout must be a number >= 0.5, got -1"),
                      ("m", "unknown field 'colour'"),
                      ("q", "priority must be within 0..100, got 500"),
                      ("q", "skill 'billing' needs a level 1..5, got 'high'")]


def billing_or_cards() -> dict:
    """The demo menu as it was before it grew lost card / agent options."""
    return {"name": "bc", "language": "en-us", "start": "main_menu", "nodes": {
        "main_menu": {"type": "menu", "prompt": "billing or cards?", "fallback": "to_general",
                      "options": [{"key": "1", "phrases": ["billing"], "target": "to_billing"},
                                  {"key": "2", "phrases": ["cards"], "target": "to_cards"}]},
        "to_billing": {"type": "enqueue", "queue": "billing"},
        "to_cards": {"type": "enqueue", "queue": "cards"},
        "to_general": {"type": "enqueue", "queue": "general"}}}


def test_vocabulary_check_names_missing_words() -> None:
    known = {"billing"}.__contains__
    assert reasons(check(billing_or_cards(), vocabulary=known)) == [
        ("main_menu", "phrase 'cards': speech model does not know cards")]


def test_every_menu_takes_0_and_agent_words_to_a_person() -> None:
    flow = parse(billing_or_cards())
    menu = flow.nodes["main_menu"]
    agent = [c for c in menu.choices if c.key == "0"]
    assert len(agent) == 1 and agent[0].target == "to_general"
    assert menu.phrases("en-us") == ["billing", "cards", "agent", "operator", "representative"]
    assert menu.phrases("ko") == ["billing", "cards", "상담원", "상담사", "영"]
    d = billing_or_cards()
    d["nodes"]["main_menu"]["agent"] = "to_billing"
    assert [c.target for c in parse(d).nodes["main_menu"].choices if c.key == "0"] == ["to_billing"]


def test_a_flow_that_traps_the_caller_is_refused() -> None:
    d = billing_or_cards()
    d["nodes"]["main_menu"]["fallback"] = "bye"
    d["nodes"]["main_menu"]["agent"] = "to_general"
    d["nodes"]["bye"] = {"type": "hangup", "prompt": "Goodbye."}
    assert reasons(check(d)) == [("main_menu", "fallback 'bye' reaches no queue: after repeated "
                                               "no-match the caller must reach a person")]
    chain = {f"s{i}": {"type": "say", "text": "wait", "next": f"s{i + 1}"} for i in range(25)}
    chain["s25"] = {"type": "enqueue", "queue": "general"}
    long = {"name": "long", "start": "s0", "nodes": chain}
    assert reasons(check(long))[:2] == [
        ("s0", "no queue, transfer or goodbye within 20 steps: the caller would be trapped"),
        ("s1", "no queue, transfer or goodbye within 20 steps: the caller would be trapped")]
    assert len(check(long)) == 5


def test_localised_prompt_and_static_prompts() -> None:
    d = doc(a={"type": "say", "text": "x", "prompt": {"text": {"en-us": "Hello", "ko": "안녕하세요"}},
               "next": "b"},
            b={"type": "say", "text": "Hi {customer_name}", "next": "c"},
            c={"type": "hangup"})
    d["nodes"]["a"].pop("text")
    flow = parse(d)
    assert sorted(flow.static_prompts(), key=str) == sorted(
        [("Hello", "en-us"), ("안녕하세요", "ko")], key=str)


def test_documents_are_not_mutated() -> None:
    original = load_builtin("main")
    kept = copy.deepcopy(original)
    parse(original)
    assert original == kept


def test_all_node_types_are_registered() -> None:
    from ivr.nodes import NODE_TYPES
    assert sorted(NODE_TYPES) == ["ask", "branch", "collect_digits", "enqueue", "hangup",
                                  "lookup", "menu", "say", "set_language", "survey", "transfer"]


def test_branch_loop_without_input_is_refused() -> None:
    d = doc(a={"type": "branch", "rules": [{"when": {"var": "x", "eq": 1}, "target": "b"}],
               "else": "end"},
            b={"type": "set_language", "language": "ko", "next": "a"},
            end={"type": "hangup"})
    assert reasons(check(d)) == [("a", "loop takes no input: a -> b -> a")]


def test_flow_timezone_and_language() -> None:
    d = load_builtin("main")
    d["timezone"] = "Nowhere/Land"
    d["language"] = 5
    assert reasons(check(d)) == [(None, "unknown time zone 'Nowhere/Land'"),
                                 (None, "language must be a string such as 'en-us'")]


def test_enqueue_steps_shape() -> None:
    d = load_builtin("main")
    d["nodes"]["to_general"]["steps"] = [
        {"conditions": [{"kind": "skill_at_least", "skill": "general", "level": 3}], "expiry": 20},
        {"conditions": [], "expiry": None},
        {"conditions": [{"skill": "x"}], "expiry": 0},
        {"expiry": 5}]
    assert reasons(check(d)) == [
        ("to_general", "step 2 conditions must be a list of {kind, ...}"),
        ("to_general", "step 2 expiry must be seconds > 0 or null"),
        ("to_general", "step 3 must be {conditions, expiry}")]


def test_phrases_by_language_and_vocabulary_language() -> None:
    d = billing_or_cards()
    menu = d["nodes"]["main_menu"]
    menu["options"][0]["phrases"] = {"en": ["billing"], "ko": ["결제", "요금"]}
    menu["options"].append({"key": "0", "phrases": {"en": ["agent"], "ko": ["상담원"]},
                            "target": "to_general"})
    flow = parse(d)
    node = flow.nodes["main_menu"]
    assert node.phrases("ko") == ["결제", "요금", "cards", "상담원", "상담사", "영"]
    assert node.phrases("en-us") == ["billing", "cards", "agent", "operator", "representative"]
    korean = {"결제", "상담원"}.__contains__
    assert reasons(check(d, vocabulary=korean, vocabulary_language="ko")) == [
        ("main_menu", "phrase '요금': speech model does not know 요금")]
    d["language"] = "ko"       # now the any-language phrases ("cards") are Korean too
    assert [e.reason for e in check(d, vocabulary=korean, vocabulary_language="ko")] == [
        "phrase '요금': speech model does not know 요금",
        "phrase 'cards': speech model does not know cards"]


def test_menu_phrase_errors() -> None:
    d = billing_or_cards()
    d["nodes"]["main_menu"]["options"][1]["phrases"] = {"en": ["Billing"]}
    d["nodes"]["main_menu"]["options"].append({"key": "3", "phrases": [""], "target": "to_general"})
    assert reasons(check(d)) == [("main_menu", "duplicate phrase 'billing'"),
                                 ("main_menu", "option 2 phrases must be non-empty strings")]

"""acd.model: age bands, skills, agent state transitions, steps and their JSON form, views."""
from __future__ import annotations

import json
import math
from types import MappingProxyType

import pytest
from hypothesis import given, settings, strategies as st

from acd.model import (
    DEFAULT_AGE_BANDS,
    TRANSITIONS,
    AdjacentBand,
    AgeBands,
    AgentState,
    AgentView,
    AttributeEquals,
    CallView,
    IllegalTransition,
    LanguageMatch,
    ModelError,
    Skill,
    SkillAtLeast,
    Step,
    can_transition,
    caller_attribute_of,
    check_level,
    check_skills,
    condition_from_dict,
    condition_to_dict,
    default_steps,
    step_from_dict,
    step_to_dict,
    steps_from_list,
    steps_to_list,
    transition,
)

S = AgentState


# ---------------------------------------------------------------- age bands


def test_default_band_labels():
    assert DEFAULT_AGE_BANDS.labels == ("<25", "25-34", "35-44", "45-54", "55+")


@pytest.mark.parametrize(("age", "band"), [
    (0, "<25"), (24, "<25"), (25, "25-34"), (34, "25-34"), (35, "35-44"), (44, "35-44"),
    (45, "45-54"), (54, "45-54"), (55, "55+"), (99, "55+"),
])
def test_band_of_edges(age, band):
    assert DEFAULT_AGE_BANDS.band_of(2025 - age, 2025) == band


def test_band_of_rejects_future_birth_and_non_integers():
    with pytest.raises(ModelError, match="after"):
        DEFAULT_AGE_BANDS.band_of(2026, 2025)
    with pytest.raises(ModelError, match="integers"):
        DEFAULT_AGE_BANDS.band_of(1990.0, 2025)
    with pytest.raises(ModelError, match="integers"):
        DEFAULT_AGE_BANDS.band_of(True, 2025)


def test_custom_bands():
    bands = AgeBands((18, 30, 65))
    assert bands.labels == ("<18", "18-29", "30-64", "65+")
    assert bands.band_of(2000, 2025) == "18-29"
    assert bands.band_of(1950, 2025) == "65+"


def test_bands_accept_a_list_and_compare_equal():
    assert AgeBands([25, 35, 45, 55]) == DEFAULT_AGE_BANDS
    assert hash(AgeBands([25, 35, 45, 55])) == hash(DEFAULT_AGE_BANDS)


@pytest.mark.parametrize("bounds", [(), (0, 10), (30, 20), (20, 20), (-5,), ("25",), (25.0,), (True,), "25"])
def test_bad_bounds(bounds):
    with pytest.raises(ModelError, match="age bands"):
        AgeBands(bounds)


def test_index_and_unknown_band():
    assert DEFAULT_AGE_BANDS.index("<25") == 0
    assert DEFAULT_AGE_BANDS.index("55+") == 4
    with pytest.raises(ModelError, match="unknown band '60-70'"):
        DEFAULT_AGE_BANDS.index("60-70")
    with pytest.raises(ModelError, match="unknown band"):
        DEFAULT_AGE_BANDS.index(None)


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("<25", "<25", 0), ("<25", "25-34", 1), ("25-34", "<25", 1), ("<25", "35-44", 2), ("<25", "55+", 4),
    ("45-54", "55+", 1), ("x", "<25", None), ("<25", None, None), (None, None, None), (3, "<25", None),
])
def test_distance(a, b, distance):
    assert DEFAULT_AGE_BANDS.distance(a, b) == distance


def test_adjacency():
    bands = DEFAULT_AGE_BANDS
    assert bands.adjacent("25-34", "35-44")
    assert not bands.adjacent("25-34", "25-34")
    assert not bands.adjacent("25-34", "45-54")
    assert bands.same_or_adjacent("25-34", "25-34")
    assert bands.same_or_adjacent("25-34", "<25")
    assert not bands.same_or_adjacent("<25", "35-44")
    assert not bands.same_or_adjacent(None, None)
    assert not bands.adjacent(None, "<25")


def test_bands_dict_round_trip():
    bands = AgeBands((20, 40))
    assert bands.to_dict() == {"bounds": [20, 40]}
    assert AgeBands.from_dict(json.loads(json.dumps(bands.to_dict()))) == bands
    assert AgeBands.from_dict({}) == DEFAULT_AGE_BANDS


@pytest.mark.parametrize("data", [{"bounds": "25"}, {"bounds": [30, 20]}, {"cuts": [1]}, [25]])
def test_bands_from_bad_dict(data):
    with pytest.raises(ModelError, match="age bands"):
        AgeBands.from_dict(data)


# ---------------------------------------------------------------- skills


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_skill_levels_ok(level):
    assert Skill("sales", level).level == level
    assert check_level(level) == level


@pytest.mark.parametrize("level", [0, 6, -1, 3.0, "3", True, None])
def test_skill_levels_bad(level):
    with pytest.raises(ModelError, match="skill level must be an integer 1..5"):
        Skill("sales", level)


def test_skill_needs_a_name():
    with pytest.raises(ModelError, match="skill name"):
        Skill("", 3)


def test_check_skills_copies_read_only():
    source = {"sales": 3}
    skills = check_skills(source)
    source["sales"] = 1
    assert skills["sales"] == 3
    with pytest.raises(TypeError):
        skills["sales"] = 5   # type: ignore[index]


@pytest.mark.parametrize("skills", [{"sales": 0}, {"": 3}, {"sales": "3"}, [("sales", 3)]])
def test_check_skills_bad(skills):
    with pytest.raises(ModelError):
        check_skills(skills)


# ---------------------------------------------------------------- agent states

ALLOWED = {
    (S.LOGGED_OUT, S.AVAILABLE), (S.LOGGED_OUT, S.PAUSED),
    (S.AVAILABLE, S.RINGING), (S.AVAILABLE, S.ON_CALL), (S.AVAILABLE, S.PAUSED), (S.AVAILABLE, S.LOGGED_OUT),
    (S.RINGING, S.ON_CALL), (S.RINGING, S.AVAILABLE), (S.RINGING, S.PAUSED), (S.RINGING, S.LOGGED_OUT),
    (S.ON_CALL, S.WRAP_UP), (S.ON_CALL, S.AVAILABLE), (S.ON_CALL, S.PAUSED), (S.ON_CALL, S.LOGGED_OUT),
    (S.WRAP_UP, S.AVAILABLE), (S.WRAP_UP, S.PAUSED), (S.WRAP_UP, S.LOGGED_OUT),
    (S.PAUSED, S.AVAILABLE), (S.PAUSED, S.LOGGED_OUT),
}


@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
def test_transition_table_is_exactly_the_documented_one(old, new):
    if (old, new) in ALLOWED:
        assert can_transition(old, new)
        assert transition(old, new) is new
    else:
        assert not can_transition(old, new)
        with pytest.raises(IllegalTransition) as err:
            transition(old, new)
        assert err.value.old is old and err.value.new is new
        assert err.value.code == "acd-illegal-transition"
        assert f"{old.value} -> {new.value}" in str(err.value)


def test_every_state_has_a_row_and_a_way_out():
    assert set(TRANSITIONS) == set(S)
    for state in S:
        if state is not S.LOGGED_OUT:
            assert S.LOGGED_OUT in TRANSITIONS[state]
        assert state not in TRANSITIONS[state]


def test_illegal_transition_is_a_model_error():
    with pytest.raises(ModelError):
        transition(S.PAUSED, S.RINGING)


# ---------------------------------------------------------------- conditions and steps


def test_attribute_equals_defaults_agent_attr():
    assert AttributeEquals("age_band") == AttributeEquals("age_band", "age_band")
    assert AttributeEquals("tier", "level").agent_attr == "level"


@pytest.mark.parametrize("make", [
    lambda: SkillAtLeast("", 3), lambda: SkillAtLeast("sales", 0), lambda: SkillAtLeast("sales", 6),
    lambda: AttributeEquals(""), lambda: AttributeEquals("a", ""), lambda: AttributeEquals(3),
    lambda: AdjacentBand(""), lambda: LanguageMatch(""),
])
def test_bad_conditions(make):
    with pytest.raises(ModelError):
        make()


def test_caller_attribute_of():
    assert caller_attribute_of(SkillAtLeast("s", 1)) is None
    assert caller_attribute_of(AttributeEquals("x", "y")) == "x"
    assert caller_attribute_of(AdjacentBand()) == "age_band"
    assert caller_attribute_of(LanguageMatch()) == "language"


def test_step_validation():
    assert Step([SkillAtLeast("s", 1)], 5).conditions == (SkillAtLeast("s", 1),)
    assert Step((), math.inf).expiry == math.inf
    for expiry in (0, -1, math.nan, "20", None, True):
        with pytest.raises(ModelError, match="step.expiry"):
            Step((), expiry)
    with pytest.raises(ModelError, match=r"step.conditions\[1\]"):
        Step((SkillAtLeast("s", 1), "skill>3"), 5)
    with pytest.raises(ModelError, match="step.conditions"):
        Step("x", 5)


def test_default_steps():
    steps = default_steps("sales")
    assert steps == (
        Step((AttributeEquals("age_band"), SkillAtLeast("sales", 3)), 20.0),
        Step((AdjacentBand("age_band"), SkillAtLeast("sales", 3)), 20.0),
        Step((SkillAtLeast("sales", 1),), 30.0),
    )
    assert hash(steps) == hash(default_steps("sales"))


# ---------------------------------------------------------------- JSON form


@pytest.mark.parametrize("condition", [
    SkillAtLeast("sales", 4), AttributeEquals("age_band"), AttributeEquals("tier", "level"),
    AdjacentBand(), AdjacentBand("generation"), LanguageMatch(), LanguageMatch("lang"),
])
def test_condition_round_trip(condition):
    data = json.loads(json.dumps(condition_to_dict(condition)))
    assert condition_from_dict(data) == condition


def test_condition_dict_shapes():
    assert condition_to_dict(SkillAtLeast("sales", 4)) == {"kind": "skill_at_least", "level": 4, "skill": "sales"}
    assert condition_to_dict(LanguageMatch()) == {"kind": "language_match", "attr": "language"}
    assert condition_from_dict({"kind": "adjacent_band"}) == AdjacentBand("age_band")
    assert condition_from_dict({"kind": "attribute_equals", "caller_attr": "vip"}) == AttributeEquals("vip", "vip")


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "skill_at_most", "skill": "s", "level": 1}, r"cond.kind: unknown condition kind 'skill_at_most'"),
    ({"skill": "s", "level": 1}, r"cond.kind: unknown condition kind None"),
    ({"kind": "skill_at_least", "skill": "s"}, r"cond: skill_at_least needs \['level'\]"),
    ({"kind": "skill_at_least", "skill": "s", "level": 9}, r"cond: skill_at_least.level: skill level"),
    ({"kind": "skill_at_least", "skill": "s", "level": 2, "max": 3}, r"cond: skill_at_least does not take \['max'\]"),
    ({"kind": "language_match", "attr": ""}, r"cond: language_match.attr"),
    ("skill_at_least", r"cond: expected an object"),
])
def test_condition_from_bad_dict(data, message):
    with pytest.raises(ModelError, match=message):
        condition_from_dict(data, "cond")


def test_steps_round_trip_through_json_including_never_expiring():
    steps = (*default_steps("billing"), Step((LanguageMatch(),), math.inf))
    text = json.dumps(steps_to_list(steps))
    assert json.loads(text)[-1]["expiry"] is None
    assert steps_from_list(json.loads(text)) == steps


def test_step_dict_shape():
    assert step_to_dict(Step((SkillAtLeast("s", 2),), 15)) == {
        "conditions": [{"kind": "skill_at_least", "level": 2, "skill": "s"}], "expiry": 15}
    assert step_from_dict({"conditions": [], "expiry": 15}) == Step((), 15.0)


@pytest.mark.parametrize(("data", "message"), [
    ({"conditions": []}, r"steps\[0\]: expected keys \['conditions', 'expiry'\]"),
    ({"conditions": [], "expiry": 0}, r"steps\[0\].expiry: expected seconds > 0 or null, got 0"),
    ({"conditions": [], "expiry": "20"}, r"steps\[0\].expiry"),
    ({"conditions": {}, "expiry": 20}, r"steps\[0\].conditions: expected a list"),
    ({"conditions": [{"kind": "nope"}], "expiry": 20},
     r"steps\[0\].conditions\[0\].kind: unknown condition kind 'nope'"),
    ({"conditions": [], "expiry": 20, "extra": 1}, r"steps\[0\]: expected keys"),
    (7, r"steps\[0\]: expected an object"),
])
def test_steps_from_bad_list(data, message):
    with pytest.raises(ModelError, match=message):
        steps_from_list([data])


def test_steps_from_list_needs_a_list():
    with pytest.raises(ModelError, match="steps: expected a list of steps"):
        steps_from_list({"conditions": [], "expiry": 20})


def test_second_bad_step_is_named():
    good = step_to_dict(default_steps("s")[0])
    with pytest.raises(ModelError, match=r"steps\[1\].conditions\[0\]: skill_at_least needs"):
        steps_from_list([good, {"conditions": [{"kind": "skill_at_least"}], "expiry": 5}])


# ---------------------------------------------------------------- views


def make_agent(**changes):
    fields = dict(id="a1", queues={"sales"}, skills={"sales": 3}, age_band="25-34", languages={"en"},
                  state=S.AVAILABLE, idle_since=10.0, logged_in=True)
    fields.update(changes)
    return AgentView(**fields)


def test_agent_view_normalises_collections():
    agent = make_agent(queues=["sales", "sales"], languages=("en",))
    assert agent.queues == frozenset({"sales"})
    assert agent.languages == frozenset({"en"})
    assert agent.available
    assert dict(agent.skills) == {"sales": 3}


def test_agent_attribute_lookup():
    agent = make_agent(attributes={"region": "north"})
    assert agent.attribute("age_band") == "25-34"
    assert agent.attribute("region") == "north"
    assert agent.attribute("missing") is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"id": ""}, "agent.id"),
    ({"queues": "sales"}, "queues: expected a collection"),
    ({"queues": {""}}, "queues item"),
    ({"skills": {"sales": 7}}, r"skills\['sales'\]"),
    ({"state": "available"}, "state: expected an AgentState"),
    ({"idle_since": None}, "idle_since"),
    ({"idle_since": math.nan}, "idle_since"),
    ({"logged_in": False}, "logged_in=False contradicts state available"),
    ({"state": S.LOGGED_OUT}, "logged_in=True contradicts state logged_out"),
    ({"age_band": 3}, "age_band"),
    ({"attributes": {"region": ["a"]}}, r"attributes\['region'\]"),
])
def test_agent_view_validation(changes, message):
    with pytest.raises(ModelError, match=message):
        make_agent(**changes)


def test_logged_out_agent_view():
    agent = make_agent(state=S.LOGGED_OUT, logged_in=False)
    assert not agent.available and not agent.logged_in


def test_call_view_defaults_and_queue_skill():
    call = CallView("c1", "sales", 0, 100.0)
    assert call.steps == () and dict(call.attributes) == {} and dict(call.required_skills) == {}
    assert call.queue_skill == "sales"
    assert CallView("c1", "sales_ko", 0, 100.0, skill="sales").queue_skill == "sales"
    assert CallView("c1", "sales", 0, 1.0, steps=list(default_steps("sales"))).steps == default_steps("sales")


@pytest.mark.parametrize(("changes", "message"), [
    ({"id": ""}, "call.id"),
    ({"queue": ""}, "queue"),
    ({"priority": 1.5}, "priority"),
    ({"priority": True}, "priority"),
    ({"enqueued_at": math.inf}, "enqueued_at"),
    ({"enqueued_at": "now"}, "enqueued_at"),
    ({"attributes": {"vip": {"gold": True}}}, r"attributes\['vip'\]"),
    ({"steps": ("x",)}, "steps"),
    ({"required_skills": {"sales": 0}}, r"required_skills\['sales'\]"),
    ({"skill": ""}, "skill"),
    ({"attributes": {"": 1}}, "attributes key"),
    ({"attributes": []}, "attributes: expected a mapping"),
    ({"required_skills": {"sales": True}}, r"required_skills\['sales'\]"),
    ({"required_skills": {"sales": 6}}, r"required_skills\['sales'\]"),
    ({"enqueued_at": True}, "enqueued_at"),
])
def test_call_view_validation(changes, message):
    fields = dict(id="c1", queue="sales", priority=0, enqueued_at=1.0)
    fields.update(changes)
    with pytest.raises(ModelError, match=message):
        CallView(**fields)


class _Name(str):
    pass


def test_a_plainly_valid_call_view_is_what_the_checks_make():
    """D38: a view whose fields are plainly valid is built without the checks' messages, into
    the same read-only copies; a value only the full checks accept (a str subclass) still
    goes through them and gives an equal view."""
    attributes, skills = {"age_band": "25-34", "vip": True}, {"sales": 3}
    call = CallView("c1", "sales", 0, 1.0, attributes, list(default_steps("sales")), skills)
    assert isinstance(call.attributes, MappingProxyType) and dict(call.attributes) == attributes
    assert isinstance(call.required_skills, MappingProxyType) and dict(call.required_skills) == skills
    assert call.steps == default_steps("sales") and isinstance(call.steps, tuple)
    attributes["vip"], skills["sales"] = False, 5
    assert call.attributes["vip"] is True and call.required_skills["sales"] == 3
    checked = CallView(_Name("c1"), "sales", 0, 1.0, {"age_band": "25-34", "vip": True},
                       default_steps("sales"), {_Name("sales"): 3})
    assert checked == call and isinstance(checked.attributes, MappingProxyType)


def test_views_are_frozen():
    agent = make_agent()
    with pytest.raises(AttributeError):
        agent.state = S.PAUSED   # type: ignore[misc]
    call = CallView("c1", "sales", 0, 1.0)
    with pytest.raises(AttributeError):
        call.priority = 3   # type: ignore[misc]


def test_equal_steps_hash_equal_and_hide_the_cache():
    a = Step((SkillAtLeast("s", 2), LanguageMatch()), 10)
    b = Step([SkillAtLeast("s", 2), LanguageMatch()], 10.0)
    assert a == b and hash(a) == hash(b)
    assert a != Step((SkillAtLeast("s", 2),), 10)
    assert "_hash" not in repr(a)
    assert step_to_dict(a) == step_to_dict(b)




_NAME = st.text("abc_", min_size=1, max_size=3)
_GARBAGE = st.one_of(st.none(), st.booleans(), st.integers(-2, 7), st.floats(allow_nan=True),
                     st.text(max_size=2), st.builds(_Name, _NAME), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.one_of(st.text(max_size=2), st.integers()), st.integers(-1, 7), max_size=2))
_VALID = dict(  # a plainly valid view, field by field
    id=_NAME, queue=_NAME, priority=st.integers(-3, 3), enqueued_at=st.floats(-1e9, 1e9),
    attributes=st.dictionaries(_NAME, st.one_of(st.none(), st.booleans(), st.integers(), _NAME), max_size=2),
    steps=st.just(default_steps("sales")),
    required_skills=st.dictionaries(_NAME, st.integers(1, 5), max_size=2),
    skill=st.one_of(st.none(), _NAME))
_EDGE_VALUES = dict(  # values at the edges of each field's checks (some pass, some must not)
    id=["", _Name("c")], queue=["", _Name("q")],
    priority=[True, 1.0, -0], enqueued_at=[math.inf, math.nan, True, 0],
    attributes=[{"": 1}, {"a": []}, {1: 1}, {_Name("a"): 1}, {"a": 1.5}, []],
    steps=[("x",), [], [default_steps("sales")[0]], "s"],
    required_skills=[{"a": 0}, {"a": 6}, {"a": True}, {"": 3}, {_Name("a"): 3}, {"a": 3.0}, []],
    skill=["", _Name("s"), 1])
_EDGES = {name: st.sampled_from(values) for name, values in _EDGE_VALUES.items()}


@st.composite
def _call_view_fields(draw):
    """A plainly valid view's fields with at most two of them pushed to an edge or garbage."""
    fields = {name: draw(strategy) for name, strategy in _VALID.items()}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        fields[name] = draw(st.one_of(_EDGES[name], _GARBAGE))
    return fields


@settings(max_examples=1000, deadline=None)
@given(fields=_call_view_fields())
def test_the_plain_path_never_accepts_what_the_checks_refuse(fields):
    """D38's shortcut is sound: whatever it lets through, the full checks accept too."""
    view = _view_of(fields)
    if view._plainly_valid():
        view._check_each_field()      # raises if the checks would refuse it


def _view_of(fields: dict) -> CallView:
    view = object.__new__(CallView)     # unchecked, as __post_init__ sees it
    for name, value in fields.items():
        object.__setattr__(view, name, value)
    return view


@pytest.mark.parametrize("name,value", [(name, value) for name, values in _EDGE_VALUES.items()
                                        for value in values])
def test_each_edge_alone_is_refused_by_both_paths_or_accepted_by_both(name, value):
    fields = dict(id="c1", queue="sales", priority=0, enqueued_at=1.0, attributes={"vip": True},
                  steps=default_steps("sales"), required_skills={"sales": 3}, skill=None)
    view = _view_of({**fields, name: value})
    try:
        view._check_each_field()
        accepted = True
    except ModelError:
        accepted = False
    assert not view._plainly_valid() or accepted

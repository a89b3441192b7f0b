"""ACD domain data: age bands, skills, agent states, routing steps, agent and call views.

Pure data with validation and a JSON-able form for routing steps; no I/O, no clock.
``acd.policy`` decides who gets which call from these values.

Routing ticket semantics (Amazon Connect routing steps, Twilio TaskRouter workflow steps,
Genesys bullseye rings, FreeSWITCH mod_callcenter tiers):

* A call carries ordered :class:`Step` s. Each step is a conjunction of conditions plus an
  ``expiry`` in seconds. The step clock starts at ``CallView.enqueued_at``.
* Conditions compare a caller attribute (``CallView.attributes``) with an agent attribute
  (:meth:`AgentView.attribute`). A missing value on either side never matches: a caller
  with no known age band cannot satisfy "same age band", so that step is impossible for the
  call and the policy skips it at once.
* After the last step, any logged-in agent of the queue may take the call.
* ``CallView.required_skills`` are hard minimums checked on every step, the last one too.
"""
from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

logger = logging.getLogger(__name__)

SKILL_MIN = 1
SKILL_MAX = 5
AGE_BAND_ATTR = "age_band"
LANGUAGE_ATTR = "language"

_SCALARS = (str, int, float, bool, type(None))


class ModelError(ValueError):
    """Invalid ACD data; ``code`` is a stable id, the message names the offending field."""

    code = "acd-invalid-data"


class IllegalTransition(ModelError):
    """A state change that a transition table forbids (an agent's here, a call's in
    ``acd.state``); ``subject`` names whose state it was."""

    code = "acd-illegal-transition"

    def __init__(self, old: enum.Enum, new: enum.Enum, subject: str = "agent") -> None:
        super().__init__(f"illegal {subject} state transition {old.value} -> {new.value}")
        self.old = old
        self.new = new


# ---------------------------------------------------------------- small validators


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ModelError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_name(value: object, where: str) -> str:
    _require(isinstance(value, str) and value != "", f"{where}: expected a non-empty string, got {value!r}")
    return value


def check_level(level: object, where: str = "level") -> int:
    """Return ``level`` if it is an int skill level within 1..5, else raise ModelError."""
    _require(_is_int(level) and SKILL_MIN <= level <= SKILL_MAX,
             f"{where}: skill level must be an integer {SKILL_MIN}..{SKILL_MAX}, got {level!r}")
    return level


def check_skills(skills: Mapping[str, int], where: str = "skills") -> Mapping[str, int]:
    """Validate a skill -> level mapping and return a read-only copy."""
    _require(isinstance(skills, Mapping), f"{where}: expected a mapping of skill -> level, got {skills!r}")
    for name, level in skills.items():
        _check_name(name, f"{where} key")
        check_level(level, f"{where}[{name!r}]")
    return MappingProxyType(dict(skills))


def _check_attributes(attributes: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    _require(isinstance(attributes, Mapping), f"{where}: expected a mapping, got {attributes!r}")
    for name, value in attributes.items():
        _check_name(name, f"{where} key")
        _require(isinstance(value, _SCALARS),
                 f"{where}[{name!r}]: expected str, int, float, bool or None, got {value!r}")
    return MappingProxyType(dict(attributes))


def _plain_skills(skills: object) -> bool:
    """``check_skills`` would accept ``skills`` (checked without building its messages)."""
    return isinstance(skills, Mapping) and all(
        type(name) is str and name != "" and type(level) is int and SKILL_MIN <= level <= SKILL_MAX
        for name, level in skills.items())


def _plain_attributes(attributes: object) -> bool:
    """``_check_attributes`` would accept ``attributes`` (checked without its messages)."""
    return isinstance(attributes, Mapping) and all(
        type(name) is str and name != "" and isinstance(value, _SCALARS) for name, value in attributes.items())


def _check_names(values: Iterable[str], where: str) -> frozenset[str]:
    _require(not isinstance(values, str), f"{where}: expected a collection of names, got a string")
    names = frozenset(values)
    for name in names:
        _check_name(name, f"{where} item")
    return names


# ---------------------------------------------------------------- age bands


def _band_labels(bounds: tuple[int, ...]) -> tuple[str, ...]:
    inner = [f"{low}-{high - 1}" for low, high in zip(bounds, bounds[1:])]
    return (f"<{bounds[0]}", *inner, f"{bounds[-1]}+")


@dataclass(frozen=True)
class AgeBands:
    """Ordered age bands cut at ``bounds``; the default gives <25, 25-34, 35-44, 45-54, 55+.

    Band labels are derived from the bounds. Two bands are adjacent when they are next to
    each other in that order.
    """

    bounds: tuple[int, ...] = (25, 35, 45, 55)
    labels: tuple[str, ...] = field(init=False, compare=False)
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bounds = tuple(self.bounds) if isinstance(self.bounds, (list, tuple)) else self.bounds
        _require(isinstance(bounds, tuple) and len(bounds) > 0 and all(_is_int(b) and b > 0 for b in bounds),
                 f"age bands: bounds must be a non-empty list of positive integers, got {self.bounds!r}")
        _require(all(a < b for a, b in zip(bounds, bounds[1:])),
                 f"age bands: bounds must be strictly increasing, got {list(bounds)!r}")
        labels = _band_labels(bounds)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_index", MappingProxyType({label: i for i, label in enumerate(labels)}))

    def band_of(self, birth_year: int, today_year: int) -> str:
        """The band of someone born in ``birth_year``, using age = today_year - birth_year.

        Only years are known (the DB stores a birth year), so the age is the age reached
        during ``today_year``.
        """
        _require(_is_int(birth_year) and _is_int(today_year),
                 f"age bands: years must be integers, got {birth_year!r}, {today_year!r}")
        age = today_year - birth_year
        _require(age >= 0, f"age bands: birth year {birth_year} is after {today_year}")
        return self.labels[sum(1 for bound in self.bounds if age >= bound)]

    def index(self, label: str) -> int:
        """Position of ``label`` in the band order; ModelError for an unknown label."""
        try:
            return self._index[label]
        except (KeyError, TypeError):
            raise ModelError(f"age bands: unknown band {label!r}, expected one of {list(self.labels)!r}") from None

    def distance(self, a: object, b: object) -> int | None:
        """How many bands apart ``a`` and ``b`` are; None if either is not a known band."""
        ia, ib = self._position(a), self._position(b)
        return None if ia is None or ib is None else abs(ia - ib)

    def _position(self, label: object) -> int | None:
        return self._index.get(label) if isinstance(label, str) else None

    def adjacent(self, a: object, b: object) -> bool:
        """True if ``a`` and ``b`` are neighbouring bands (not equal)."""
        return self.distance(a, b) == 1

    def same_or_adjacent(self, a: object, b: object) -> bool:
        """True if ``a`` and ``b`` are the same band or neighbours."""
        distance = self.distance(a, b)
        return distance is not None and distance <= 1

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgeBands:
        _require(isinstance(data, Mapping) and set(data) <= {"bounds"},
                 f"age bands: expected {{'bounds': [...]}}, got {data!r}")
        bounds = data.get("bounds", list(DEFAULT_AGE_BANDS.bounds))
        _require(isinstance(bounds, list), f"age bands: bounds must be a list, got {bounds!r}")
        return cls(tuple(bounds))


DEFAULT_AGE_BANDS = AgeBands()


# ---------------------------------------------------------------- skills


@dataclass(frozen=True)
class Skill:
    """A named proficiency from 1 (novice) to 5 (expert)."""

    name: str
    level: int

    def __post_init__(self) -> None:
        _check_name(self.name, "skill name")
        check_level(self.level, f"skill {self.name!r}")


# ---------------------------------------------------------------- agent states


class AgentState(enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


_S = AgentState
#: Allowed moves. Self-moves are not listed: the caller skips no-op changes.
#: Every logged-in state may go to LOGGED_OUT (forced logout: admin, phone unregistered).
TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = MappingProxyType({
    _S.LOGGED_OUT: frozenset({_S.AVAILABLE, _S.PAUSED}),                    # login (ready / paused)
    _S.AVAILABLE: frozenset({_S.RINGING, _S.ON_CALL, _S.PAUSED, _S.LOGGED_OUT}),   # ON_CALL: auto-answer
    _S.RINGING: frozenset({_S.ON_CALL, _S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT}),   # PAUSED: no-answer
    _S.ON_CALL: frozenset({_S.WRAP_UP, _S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT}),   # AVAILABLE: no wrap-up
    _S.WRAP_UP: frozenset({_S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT}),
    _S.PAUSED: frozenset({_S.AVAILABLE, _S.LOGGED_OUT}),
})


def can_transition(old: AgentState, new: AgentState) -> bool:
    return new in TRANSITIONS[old]


def transition(old: AgentState, new: AgentState) -> AgentState:
    """Return ``new`` if ``old -> new`` is allowed, else raise IllegalTransition."""
    if not can_transition(old, new):
        raise IllegalTransition(old, new)
    return new


# ---------------------------------------------------------------- conditions and steps


@dataclass(frozen=True)
class SkillAtLeast:
    """The agent has ``skill`` at ``level`` or more."""

    skill: str
    level: int

    def __post_init__(self) -> None:
        _check_name(self.skill, "skill_at_least.skill")
        check_level(self.level, "skill_at_least.level")


@dataclass(frozen=True)
class AttributeEquals:
    """caller.attributes[caller_attr] == agent attribute ``agent_attr`` (default: same name)."""

    caller_attr: str
    agent_attr: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.caller_attr, "attribute_equals.caller_attr")
        if self.agent_attr is None:
            object.__setattr__(self, "agent_attr", self.caller_attr)
        _check_name(self.agent_attr, "attribute_equals.agent_attr")


@dataclass(frozen=True)
class AdjacentBand:
    """The agent's band ``attr`` is the caller's band or a neighbouring one."""

    attr: str = AGE_BAND_ATTR

    def __post_init__(self) -> None:
        _check_name(self.attr, "adjacent_band.attr")


@dataclass(frozen=True)
class LanguageMatch:
    """caller.attributes[attr] is one of the agent's languages."""

    attr: str = LANGUAGE_ATTR

    def __post_init__(self) -> None:
        _check_name(self.attr, "language_match.attr")


Condition: TypeAlias = SkillAtLeast | AttributeEquals | AdjacentBand | LanguageMatch
CONDITION_TYPES = (SkillAtLeast, AttributeEquals, AdjacentBand, LanguageMatch)


def caller_attribute_of(condition: Condition) -> str | None:
    """The caller attribute a condition reads, or None (skill conditions read none)."""
    if isinstance(condition, AttributeEquals):
        return condition.caller_attr
    if isinstance(condition, (AdjacentBand, LanguageMatch)):
        return condition.attr
    return None


@dataclass(frozen=True)
class Step:
    """All ``conditions`` must hold; the step lasts ``expiry`` seconds (math.inf: forever).

    A step with no conditions is met by every agent of the queue.
    """

    conditions: tuple[Condition, ...]
    expiry: float
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require(isinstance(self.conditions, (tuple, list)),
                 f"step.conditions: expected a list, got {self.conditions!r}")
        object.__setattr__(self, "conditions", tuple(self.conditions))
        for i, condition in enumerate(self.conditions):
            _require(isinstance(condition, CONDITION_TYPES), f"step.conditions[{i}]: not a condition: {condition!r}")
        _require(_is_number(self.expiry) and not math.isnan(self.expiry) and self.expiry > 0,
                 f"step.expiry: expected seconds > 0, got {self.expiry!r}")
        object.__setattr__(self, "_hash", hash((self.conditions, self.expiry)))

    def __hash__(self) -> int:   # cached: the policy keys its caches by steps
        return self._hash


def default_steps(skill: str) -> tuple[Step, ...]:
    """Every queue's default relaxation, ``skill`` being the queue's skill.

    1. same age band and skill >= 3, 20 s; 2. same or adjacent band and skill >= 3, 20 s;
    3. skill >= 1, 30 s; then any agent of the queue.
    """
    return (
        Step((AttributeEquals(AGE_BAND_ATTR), SkillAtLeast(skill, 3)), 20.0),
        Step((AdjacentBand(AGE_BAND_ATTR), SkillAtLeast(skill, 3)), 20.0),
        Step((SkillAtLeast(skill, 1),), 30.0),
    )


# ---------------------------------------------------------------- JSON form of steps

_KINDS: Mapping[type, str] = MappingProxyType({
    SkillAtLeast: "skill_at_least",
    AttributeEquals: "attribute_equals",
    AdjacentBand: "adjacent_band",
    LanguageMatch: "language_match",
})
_FIELDS: Mapping[str, tuple[type, frozenset[str], frozenset[str]]] = MappingProxyType({
    # kind: (class, required keys, optional keys)
    "skill_at_least": (SkillAtLeast, frozenset({"skill", "level"}), frozenset()),
    "attribute_equals": (AttributeEquals, frozenset({"caller_attr"}), frozenset({"agent_attr"})),
    "adjacent_band": (AdjacentBand, frozenset(), frozenset({"attr"})),
    "language_match": (LanguageMatch, frozenset(), frozenset({"attr"})),
})


def condition_to_dict(condition: Condition) -> dict[str, Any]:
    kind = _KINDS[type(condition)]
    return {"kind": kind, **{key: getattr(condition, key) for key in sorted(_fields_of(kind))}}


def _fields_of(kind: str) -> frozenset[str]:
    _, required, optional = _FIELDS[kind]
    return required | optional


def condition_from_dict(data: Mapping[str, Any], where: str = "condition") -> Condition:
    """Build a condition from ``{"kind": ..., ...}``; ModelError names ``where`` and the problem."""
    _require(isinstance(data, Mapping), f"{where}: expected an object, got {data!r}")
    kind = data.get("kind")
    _require(kind in _FIELDS, f"{where}.kind: unknown condition kind {kind!r}, expected one of {sorted(_FIELDS)!r}")
    cls, required, optional = _FIELDS[kind]
    keys = set(data) - {"kind"}
    _require(required <= keys, f"{where}: {kind} needs {sorted(required - keys)!r}")
    _require(keys <= required | optional, f"{where}: {kind} does not take {sorted(keys - required - optional)!r}")
    try:
        return cls(**{key: data[key] for key in keys})
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None


def step_to_dict(step: Step) -> dict[str, Any]:
    expiry = None if math.isinf(step.expiry) else step.expiry
    return {"conditions": [condition_to_dict(c) for c in step.conditions], "expiry": expiry}


def step_from_dict(data: Mapping[str, Any], where: str = "step") -> Step:
    """``{"conditions": [...], "expiry": seconds}``; ``"expiry": null`` means never expires."""
    _require(isinstance(data, Mapping), f"{where}: expected an object, got {data!r}")
    _require(set(data) == {"conditions", "expiry"},
             f"{where}: expected keys ['conditions', 'expiry'], got {sorted(map(str, data))!r}")
    conditions = data["conditions"]
    _require(isinstance(conditions, list), f"{where}.conditions: expected a list, got {conditions!r}")
    expiry = math.inf if data["expiry"] is None else data["expiry"]
    _require(_is_number(expiry) and not math.isnan(expiry) and expiry > 0,
             f"{where}.expiry: expected seconds > 0 or null, got {data['expiry']!r}")
    parsed = tuple(condition_from_dict(c, f"{where}.conditions[{i}]") for i, c in enumerate(conditions))
    return Step(parsed, float(expiry))


def steps_to_list(steps: Iterable[Step]) -> list[dict[str, Any]]:
    return [step_to_dict(step) for step in steps]


def steps_from_list(data: object, where: str = "steps") -> tuple[Step, ...]:
    _require(isinstance(data, list), f"{where}: expected a list of steps, got {data!r}")
    return tuple(step_from_dict(item, f"{where}[{i}]") for i, item in enumerate(data))


# ---------------------------------------------------------------- views


@dataclass(frozen=True)
class AgentView:
    """What the policy knows about one agent at one instant.

    ``idle_since`` is when the agent last became available (smaller = idle longer).
    ``attributes`` holds extra agent attributes for AttributeEquals (region, tier...).
    ``logged_in`` must agree with ``state`` (False exactly when LOGGED_OUT).
    """

    id: str
    queues: frozenset[str]
    skills: Mapping[str, int] = field(hash=False)
    age_band: str | None
    languages: frozenset[str]
    state: AgentState
    idle_since: float
    logged_in: bool
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        where = f"agent {self.id!r}"
        _check_name(self.id, "agent.id")
        object.__setattr__(self, "queues", _check_names(self.queues, f"{where}.queues"))
        object.__setattr__(self, "skills", check_skills(self.skills, f"{where}.skills"))
        object.__setattr__(self, "languages", _check_names(self.languages, f"{where}.languages"))
        object.__setattr__(self, "attributes", _check_attributes(self.attributes, f"{where}.attributes"))
        _require(self.age_band is None or isinstance(self.age_band, str),
                 f"{where}.age_band: expected a string or None")
        _require(isinstance(self.state, AgentState), f"{where}.state: expected an AgentState, got {self.state!r}")
        _require(_is_number(self.idle_since) and not math.isnan(self.idle_since),
                 f"{where}.idle_since: expected a number, got {self.idle_since!r}")
        _require(self.logged_in is (self.state is not AgentState.LOGGED_OUT),
                 f"{where}: logged_in={self.logged_in!r} contradicts state {self.state.value}")

    @property
    def available(self) -> bool:
        return self.state is AgentState.AVAILABLE

    def offered(self) -> AgentView:
        """This agent, RINGING: a copy without the checks of ``__post_init__`` (every field
        was checked when this view was built; RINGING keeps ``logged_in`` true).  The
        router makes one per offer, on the way to the agent's phone."""
        ringing = object.__new__(AgentView)
        ringing.__dict__.update(self.__dict__)
        ringing.__dict__["state"] = AgentState.RINGING
        return ringing

    def attribute(self, name: str) -> Any:
        """Agent attribute ``name`` for conditions: ``age_band`` or an entry of ``attributes``."""
        return self.age_band if name == AGE_BAND_ATTR else self.attributes.get(name)


@dataclass(frozen=True)
class CallView:
    """One waiting call and its routing ticket.

    ``priority``: larger is more urgent. ``enqueued_at``: when the call entered the queue
    (a callback keeps the original time). ``skill``: the queue's skill, used for the
    proficiency tie-breaker; None means the skill is named like the queue.
    ``steps=()`` sends the call straight to "any agent of the queue"; use
    :func:`default_steps` for the standard relaxation.
    """

    id: str
    queue: str
    priority: int
    enqueued_at: float
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)
    steps: tuple[Step, ...] = ()
    required_skills: Mapping[str, int] = field(default_factory=dict, hash=False)
    skill: str | None = None

    def __post_init__(self) -> None:
        if self._plainly_valid():     # built on the way to an agent's phone: no messages made
            object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))
            object.__setattr__(self, "steps", tuple(self.steps))
            object.__setattr__(self, "required_skills", MappingProxyType(dict(self.required_skills)))
            return
        self._check_each_field()

    def _plainly_valid(self) -> bool:
        """Every check of :meth:`_check_each_field`, without building its messages (D38)."""
        return (type(self.id) is str and self.id != "" and type(self.queue) is str and self.queue != ""
                and _is_int(self.priority) and _is_number(self.enqueued_at) and math.isfinite(self.enqueued_at)
                and _plain_attributes(self.attributes) and isinstance(self.steps, (tuple, list))
                and all(isinstance(s, Step) for s in self.steps) and _plain_skills(self.required_skills)
                and (self.skill is None or (type(self.skill) is str and self.skill != "")))

    def _check_each_field(self) -> None:
        where = f"call {self.id!r}"
        _check_name(self.id, "call.id")
        _check_name(self.queue, f"{where}.queue")
        _require(_is_int(self.priority), f"{where}.priority: expected an integer, got {self.priority!r}")
        _require(_is_number(self.enqueued_at) and math.isfinite(self.enqueued_at),
                 f"{where}.enqueued_at: expected a finite number, got {self.enqueued_at!r}")
        object.__setattr__(self, "attributes", _check_attributes(self.attributes, f"{where}.attributes"))
        _require(isinstance(self.steps, (tuple, list)) and all(isinstance(s, Step) for s in self.steps),
                 f"{where}.steps: expected a tuple of Step")
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "required_skills", check_skills(self.required_skills, f"{where}.required_skills"))
        _require(self.skill is None or (isinstance(self.skill, str) and self.skill != ""),
                 f"{where}.skill: expected a non-empty string or None")

    @property
    def queue_skill(self) -> str:
        return self.skill if self.skill is not None else self.queue

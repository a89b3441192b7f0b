"""Fuzz suites at the edge: hypothesis-generated flow documents and configuration files
must end in the documented validation result and nothing else:

* a flow document: :func:`ivr.schema.check` returns a list of :class:`FlowError` (never
  raises), :func:`ivr.schema.parse` raises only :class:`FlowInvalid`, the CLI's reader
  only its one-line error;
* a configuration (TOML file, environment): :func:`callpilot.infra.config.load` returns a
  Config or raises only :class:`ConfigError`, whose message is one line.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callpilot.infra import config as config_mod
from ivr import schema
from ivr.errors import FlowError, FlowInvalid
from ivr.flows import builtin_names, load_builtin
from ivr.nodes import NODE_TYPES

FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

NODE_KEYS = ["type", "text", "next", "options", "fallback", "queue", "prompt", "digits", "timeout",
             "retries", "target", "phrases", "key", "language", "branches", "default", "audio",
             "min_confidence", "confirm_below", "skills", "priority", "steps", "variable"]
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(NODE_KEYS) | st.text(max_size=8),
                                             inner, max_size=5), max_leaves=25)


@st.composite
def flow_like(draw) -> dict:
    """Documents near real ones: node ids, types and keys taken from the real vocabulary."""
    ids = draw(st.lists(st.text("abcdefgh_", min_size=1, max_size=6), min_size=1, max_size=6,
                        unique=True))
    nodes = {}
    for nid in ids:
        node = draw(st.dictionaries(st.sampled_from(NODE_KEYS),
                                    st.sampled_from(ids) | json_values, max_size=6))
        if draw(st.booleans()):
            node["type"] = draw(st.sampled_from(sorted(NODE_TYPES)) | st.text(max_size=5))
        nodes[nid] = node
    doc = {"name": draw(st.sampled_from(["main", "x y", "", "a" * 70]) | st.text(max_size=10)),
           "start": draw(st.sampled_from(ids) | json_values), "nodes": nodes}
    for key in draw(st.sets(st.sampled_from(["language", "timezone", "description", "bogus"]))):
        doc[key] = draw(json_values)
    return doc


@st.composite
def mutated_builtin(draw) -> dict:
    """A built-in flow with a few values somewhere replaced by random JSON."""
    doc = copy.deepcopy(load_builtin(draw(st.sampled_from(builtin_names()))))
    for _ in range(draw(st.integers(1, 4))):
        target = doc
        path = []
        while isinstance(target, (dict, list)) and target and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(target) if isinstance(target, dict)
                                       else list(range(len(target)))))
            path.append(key)
            if not isinstance(target[key], (dict, list)):
                break
            target = target[key]
        if isinstance(target, dict):
            target[draw(st.sampled_from(sorted(target) or ["x"]) | st.sampled_from(NODE_KEYS))] = \
                draw(json_values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(json_values)
    return doc


def assert_only_documented_results(doc) -> None:
    errors = schema.check(doc)
    assert isinstance(errors, list) and all(isinstance(e, FlowError) for e in errors)
    try:
        flow = schema.parse(doc)
    except FlowInvalid as exc:
        assert exc.errors
        return
    assert not errors and flow.nodes


@FUZZ
@given(json_values | flow_like())
def test_any_document_gets_a_list_of_problems_never_an_exception(doc) -> None:
    assert_only_documented_results(doc)


@FUZZ
@given(mutated_builtin())
def test_mutated_builtin_flows_too(doc) -> None:
    assert_only_documented_results(doc)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_the_cli_reader_fails_in_one_line_on_any_file(tmp_path_factory, data) -> None:
    from callpilot.app import flows_cli
    path = tmp_path_factory.mktemp("doc") / "flow.json"
    path.write_bytes(data)
    try:
        document = flows_cli._read_document(path)
    except flows_cli._CliError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(document, dict)
    assert_only_documented_results(document)


# --- configuration ---------------------------------------------------------------------

TOP = ["state_dir", "database_url", "agi_host", "agi_port", "web_host", "web_port", "tts_voice",
       "tts_rate", "speech_model", "bogus"]
SECTIONS = {
    "asterisk": ["binary", "rootfs", "sip_host", "sip_port", "trunk_ips", "ari_port", "ari_url",
                 "ami_port", "rtp_start", "rtp_end", "app_name", "dids", "agi_dids", "queue_dids",
                 "agent_qualify_seconds", "queue_bench_did", "acd_bench_did", "bogus"],
    "acd": ["ring_timeout", "wrapup_seconds", "general_queue", "age_bands", "bogus"],
}
toml_scalars = (st.booleans() | st.integers(-2**40, 2**40)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20)
                | st.sampled_from(["5060", "127.0.0.2", "sqlite:///x.db", "a,b", "", "800"]))
toml_values = (toml_scalars | st.lists(st.integers(-5, 200) | st.text(max_size=8), max_size=4)
               | st.dictionaries(st.text("0123456789ab", min_size=1, max_size=4),
                                 st.text(max_size=8), max_size=3))


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0.0"
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)      # a valid TOML basic string/integer
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


@st.composite
def config_files(draw) -> str:
    lines = [f"{k} = {toml_value(draw(toml_values))}"
             for k in draw(st.sets(st.sampled_from([t for t in TOP if t != "state_dir"]), max_size=4))]
    for section, keys in SECTIONS.items():
        chosen = draw(st.sets(st.sampled_from(keys), max_size=4))
        if chosen:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(draw(toml_values))}" for k in sorted(chosen)]
    return "\n".join(lines) + "\n"


def assert_loads_or_config_error(tmp_path, text: str, env: dict[str, str]) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = config_mod.load(path, env={"CALLPILOT_STATE_DIR": str(tmp_path / "state"), **env})
    except config_mod.ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert 1 <= cfg.asterisk.sip_port <= 65535 and cfg.acd.ring_timeout >= 1
    assert all(isinstance(ip, str) for ip in cfg.asterisk.trunk_ips)


@FUZZ
@given(config_files())
def test_any_config_file_loads_or_fails_with_one_config_error(tmp_path_factory, text) -> None:
    assert_loads_or_config_error(tmp_path_factory.mktemp("cfg"), text, {})


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(config_mod._ENV_KEYS) + ["CALLPILOT_SIPPORT",
                                                                       "CALLPILOT_X"]),
                       st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]),
                               max_size=20).filter(lambda v: "\x00" not in v), max_size=4))
def test_any_environment_loads_or_fails_with_one_config_error(tmp_path_factory, env) -> None:
    env.pop("CALLPILOT_STATE_DIR", None)
    assert_loads_or_config_error(tmp_path_factory.mktemp("env"), "", env)


def test_a_path_under_a_home_that_does_not_exist_is_one_config_error(tmp_path) -> None:
    """Found by the fuzz above in a fresh-clone run: ``~0`` (no user "0") made pathlib raise
    RuntimeError out of the config loader."""
    (tmp_path / "c.toml").write_text('[asterisk]\nrootfs = "~nobody-callpilot-test/root"\n')
    with pytest.raises(config_mod.ConfigError, match="asterisk.rootfs: '~0': Could not determine"):
        config_mod.load(tmp_path / "c.toml", env={"CALLPILOT_STATE_DIR": str(tmp_path / "s"),
                                                  "CALLPILOT_ASTERISK_ROOTFS": "~0"})
    with pytest.raises(config_mod.ConfigError, match="'~nobody-callpilot-test/root': Could not"):
        config_mod.load(tmp_path / "c.toml", env={"CALLPILOT_STATE_DIR": str(tmp_path / "s")})
    (tmp_path / "d.toml").write_text('database_url = "sqlite:///~nobody-callpilot-test/c.db"\n')
    with pytest.raises(config_mod.ConfigError, match="database_url: '~nobody-callpilot-test/c.db'"):
        config_mod.load(tmp_path / "d.toml", env={"CALLPILOT_STATE_DIR": str(tmp_path / "s")})


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_config_file_fail_cleanly(tmp_path_factory, data) -> None:
    tmp = tmp_path_factory.mktemp("raw")
    path = tmp / "raw.toml"
    path.write_bytes(data)
    try:
        config_mod.load(path, env={"CALLPILOT_STATE_DIR": str(tmp / "state")})
    except config_mod.ConfigError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("name", builtin_names())
def test_the_builtin_flows_pass(name) -> None:
    assert schema.check(load_builtin(name)) == []

"""Issue 9's probes, one test per row of its table (rows needing Asterisk are e2e:
tests/e2e/test_degraded_path.py, tests/e2e/test_serve_instance.py,
tests/e2e/test_issue9_probes.py).  Each CLI probe must end in ONE line on stderr, a
non-zero exit, and no traceback."""
from __future__ import annotations

import asyncio
import copy
import json
import stat
import tempfile
import threading

import pytest

from callpilot.app.cli import main
from callpilot.app.status import StatusServer
from callpilot.infra import config as config_mod
from callpilot.infra.asterisk import runner
from ivr import schema
from ivr.flows import load_builtin


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLPILOT_STATE_DIR", str(tmp_path / "state"))
    for name in ("CALLPILOT_CONFIG", "CALLPILOT_SPEECH_MODEL", "CALLPILOT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, toml: str | None = None) -> tuple[int, str, str]:
        if toml is not None:
            path = tmp_path / "probe.toml"
            path.write_text(toml)
            args = ("--config", str(path), *args)
        try:
            code = main(list(args))
        except SystemExit as exc:               # argparse
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err
    return run


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]


# --- row: a 5 MB flow (51,500 nodes) published -------------------------------------------

def test_row_huge_flow_is_refused_and_rendering_is_bounded(cli, tmp_path) -> None:
    doc = copy.deepcopy(load_builtin("main"))
    for i in range(51_500):
        doc["nodes"][f"n{i}"] = {"type": "say", "text": f"Prompt number {i}.", "next": "greeting"}
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    code, _out, err = cli("flows", "publish", "main", "--file", str(path))
    one_line_error(code, err, "at most", str(schema.MAX_DOCUMENT_BYTES))
    code, out, _err = cli("flows", "list")
    assert code == 0 and "main" not in out              # nothing stored
    assert schema.check(doc)[0].reason.startswith("document is ")


async def test_row_huge_flow_rendering_stops_at_its_bounds(tmp_path) -> None:
    from ivr.runner import prerender
    from ivr.tts import PromptCache
    from testkit.ivr_fakes import ToneSynthesizer
    doc = copy.deepcopy(load_builtin("main"))
    for i in range(50):
        doc["nodes"][f"n{i}"] = {"type": "say", "text": f"Prompt number {i}.", "next": "greeting"}
    doc["nodes"]["greeting"]["next"] = "n0"
    for i in range(49):
        doc["nodes"][f"n{i}"]["next"] = f"n{i + 1}"
    doc["nodes"]["n49"]["next"] = "main_menu"
    flow = schema.parse(doc)
    cache = PromptCache(tmp_path / "p", synthesizer=ToneSynthesizer())
    assert await prerender(cache, flow, max_seconds=0) == 0              # time bound
    done = await prerender(cache, flow, max_bytes=20_000)                # disk bound
    assert 0 < done < len(flow.static_prompts())
    assert cache.usage_bytes() < 20_000 + 50_000                         # one prompt over at most


# --- row: a 10,000-character prompt --------------------------------------------------------

def test_row_ten_thousand_character_prompt_is_refused(cli, tmp_path) -> None:
    doc = copy.deepcopy(load_builtin("main"))
    doc["nodes"]["greeting"]["text"] = "x" * 10_000
    path = tmp_path / "long.json"
    path.write_text(json.dumps(doc))
    code, _out, err = cli("flows", "publish", "main", "--file", str(path))
    assert code == 1 and "prompt of 10000 characters; at most 600" in err and "Traceback" not in err


# --- row: flows publish --file with an invalid document -----------------------------------

def test_row_invalid_publish_file_keeps_the_draft(cli, tmp_path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(load_builtin("main")))
    broken = copy.deepcopy(load_builtin("main"))
    broken["start"] = "nowhere"
    bad.write_text(json.dumps(broken))
    assert cli("flows", "import", "main", str(good))[0] == 0
    assert cli("flows", "publish", "main", "--file", str(bad))[0] == 1
    _code, out, _err = cli("flows", "export", "main", "--draft")
    assert json.loads(out)["start"] == load_builtin("main")["start"]


# --- row: duplicate keys; an unchanged draft; a flow named ../../x y -----------------------

def test_row_duplicate_keys_unchanged_draft_and_bad_name(cli, tmp_path) -> None:
    dup = tmp_path / "dup.json"
    dup.write_text('{"name": "main", "name": "other", "start": "a", "nodes": {}}')
    code, _out, err = cli("flows", "validate", str(dup))
    one_line_error(code, err, "key 'name' appears twice")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(load_builtin("main")))
    assert cli("flows", "publish", "main", "--file", str(good))[0] == 0
    code, out, _err = cli("flows", "publish", "main")
    assert code == 0 and "unchanged, version 1 stays live" in out
    assert json.loads(cli("flows", "list", "main", "--json")[1])[-1]["version"] == 1
    code, _out, err = cli("flows", "import", "../../x y", str(good))
    assert code == 1 and "flow name '../../x y'" in err
    assert "x y" not in cli("flows", "list")[1]


# --- row: tracebacks -----------------------------------------------------------------------

def test_row_database_url_into_a_missing_directory(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CALLPILOT_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/cp.db")
    one_line_error(*cli("status")[::2], "database_url: directory", "does not exist")


def test_row_state_dir_that_is_a_file(cli, monkeypatch, tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("CALLPILOT_STATE_DIR", str(tmp_path / "afile"))
    one_line_error(*cli("status")[::2], "state_dir", "is not a directory")


def test_row_corrupt_secrets_file(cli, tmp_path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "secrets.toml").write_bytes(b"ari_password = \"\x00\xff")
    one_line_error(*cli("status")[::2], "secrets file", "delete it to generate new secrets")


def test_row_trunk_ips_127(cli) -> None:
    one_line_error(*cli("status", toml="[asterisk]\ntrunk_ips = 127\n")[::2],
                   "asterisk.trunk_ips", "valid list")
    one_line_error(*cli("status", toml='[asterisk]\ntrunk_ips = ["127"]\n')[::2],
                   "asterisk.trunk_ips.0", "does not appear to be an IPv4 or IPv6 address")


def test_row_database_url_5(cli) -> None:
    one_line_error(*cli("status", toml="database_url = 5\n")[::2], "database_url", "valid string")


def test_row_call_dtmf_x_leaves_no_temp_dir(cli, monkeypatch, tmp_path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    one_line_error(*cli("call", "800", "--dtmf", "X")[::2], "--dtmf", "0-9")
    assert list(scratch.iterdir()) == []
    from testkit.sipua import Caller
    with pytest.raises(ValueError):
        Caller("800", dtmf="1X")                         # the library refuses before mkdtemp
    assert list(scratch.iterdir()) == []


# --- row: silently accepted settings ------------------------------------------------------

@pytest.mark.parametrize("toml, words", [
    ("[asterisk]\nsip_port = true\n", ("asterisk.sip_port", "whole number", "(got True)")),
    ("[asterisk]\nsip_port = 5060.9\n", ("asterisk.sip_port", "whole number", "5060.9")),
    ("[acd]\nring_timeout = -5\n", ("acd.ring_timeout", "greater than or equal to 1", "-5")),
])
def test_row_sip_port_true_fraction_and_negative_ring_timeout(cli, toml, words) -> None:
    one_line_error(*cli("status", toml=toml)[::2], "configuration error", *words)


def test_row_misspelled_environment_variable(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CALLPILOT_DATABASEURL", f"sqlite:///{tmp_path}/x.db")
    one_line_error(*cli("status")[::2], "CALLPILOT_DATABASEURL",
                   "did you mean CALLPILOT_DATABASE_URL?")


def test_env_values_are_typed_too(tmp_path) -> None:
    env = {"CALLPILOT_STATE_DIR": str(tmp_path), "CALLPILOT_SIP_PORT": "true"}
    with pytest.raises(config_mod.ConfigError, match="asterisk.sip_port"):
        config_mod.load(env=env)
    env["CALLPILOT_SIP_PORT"] = "5070"
    assert config_mod.load(env=env).asterisk.sip_port == 5070


def test_debug_shows_the_traceback(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CALLPILOT_DATABASEURL", "x")
    with pytest.raises(config_mod.ConfigError):
        main(["--debug", "status"])


# --- row: agents pause --reason 'a&b=c d' --------------------------------------------------

async def test_row_pause_reason_with_ampersand_equals_and_space(cli, tmp_path) -> None:
    seen: list[tuple[str, str, str]] = []

    def command(ext: str, action: str, reason: str) -> dict:
        seen.append((ext, action, reason))
        return {"agent": ext, "state": "paused", "pause_reason": reason}

    server = StatusServer(tmp_path / "state" / "serve.sock", dict, command)
    await server.start()
    try:
        result: list = []
        thread = threading.Thread(target=lambda: result.append(
            cli("agents", "pause", "1001", "--reason", "a&b=c d")))
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.05)
    finally:
        await server.stop()
    assert seen == [("1001", "pause", "a&b=c d")]
    assert result[0][:2] == (0, "agent 1001: paused a&b=c d\n")


# --- row: the SQLite database file (and the other files at rest) --------------------------

def test_row_files_at_rest_are_private(cli, tmp_path) -> None:
    assert cli("flows", "list")[0] == 0                 # creates the database
    state = tmp_path / "state"
    config = config_mod.load(env={"CALLPILOT_STATE_DIR": str(state)})
    runner.render(config, [])
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)     # noqa: E731
    assert mode(state) == 0o700
    db_file = next(state.glob("*.db"))
    assert mode(db_file) == 0o600 and mode(state / "secrets.toml") == 0o600
    etc = config.asterisk_dir / "etc"
    assert mode(etc) == 0o700 and {mode(p) for p in etc.iterdir()} == {0o600}
    db_file.chmod(0o644)                                # an older install: tightened on open
    assert cli("flows", "list")[0] == 0 and mode(db_file) == 0o600

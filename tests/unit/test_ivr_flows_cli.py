"""``callpilot flows``: validate / import / publish / rollback / export / list on a SQLite file."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from callpilot.app.cli import main
from ivr.flows import load_builtin
from ivr.speech import default_model_path


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLPILOT_STATE_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CALLPILOT_CONFIG", raising=False)
    monkeypatch.delenv("CALLPILOT_SPEECH_MODEL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["flows", *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def write(tmp_path: Path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


def broken_ko() -> dict:
    doc = copy.deepcopy(load_builtin("main_ko"))
    doc["nodes"]["menu"]["options"][0]["target"] = "nowhere"
    doc["nodes"]["menu"]["options"][1]["phrases"] = {"ko": ["xyzzyq"]}
    return doc


def test_validate_names_the_nodes(cli, tmp_path) -> None:
    code, out, err = cli("validate", write(tmp_path, "bad.json", broken_ko()))
    assert code == 1 and out == ""
    assert "menu: target 'nowhere' does not exist" in err
    assert "to_billing: unreachable from the start node" in err
    code, out, _err = cli("validate", write(tmp_path, "ok.json", load_builtin("main_ko")))
    assert code == 0 and out.endswith(": valid\n")


def test_validate_checks_the_vocabulary_when_a_model_is_configured(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CALLPILOT_SPEECH_MODEL", str(default_model_path()))
    code, _out, err = cli("validate", write(tmp_path, "bad.json", broken_ko()))
    assert code == 1 and "menu: phrase 'xyzzyq': speech model does not know xyzzyq" in err


def test_validate_reports_unreadable_files(cli, tmp_path) -> None:
    (tmp_path / "x.json").write_text("{oops")
    code, _out, err = cli("validate", str(tmp_path / "x.json"))
    assert code == 2 and "not JSON: line 1" in err
    code, _out, err = cli("validate", str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in err


def test_import_publish_rollback_export_list(cli, tmp_path) -> None:
    code, _out, err = cli("import", "main_ko", write(tmp_path, "bad.json", broken_ko()))
    # the target, the node it no longer reaches, and the default Korean engine's vocabulary
    assert code == 1 and "draft main_ko stored, but: 3 problem(s)" in err
    code, _out, err = cli("publish", "main_ko")
    assert code == 1 and "flow main_ko not published" in err and "menu: target 'nowhere'" in err
    code, _out, err = cli("validate", "main_ko")                       # the stored draft
    assert code == 1 and "draft main_ko: 3 problem(s)" in err

    good = write(tmp_path, "good.json", load_builtin("main_ko"))
    assert cli("publish", "main_ko", "--file", good, "--comment", "first")[:2] == (
        0, "flow main_ko: version 1 published (live in serve within 2 s)\n")
    changed = load_builtin("main_ko")
    changed["nodes"]["greet"]["text"] = "안녕하세요."
    code, out, _err = cli("import", "main_ko", write(tmp_path, "v2.json", changed), "--publish")
    assert code == 0 and "version 2 published" in out
    code, out, _err = cli("rollback", "main_ko", "1")
    assert (code, out) == (0, "flow main_ko: version 1 published again as version 3\n")

    code, out, _err = cli("export", "main_ko")
    assert code == 0 and json.loads(out)["nodes"]["greet"]["text"] == "콜파일럿 은행입니다."
    code, out, _err = cli("export", "main_ko", "--version", "2")
    assert json.loads(out)["nodes"]["greet"]["text"] == "안녕하세요."
    exported = tmp_path / "out.json"
    assert cli("export", "main_ko", "--draft", "-o", str(exported))[0] == 0
    assert json.loads(exported.read_text())["nodes"]["greet"]["text"] == "안녕하세요."

    code, out, _err = cli("list")
    assert code == 0 and out.split() == ["main_ko", "live", "v3", "3", "version(s)"]
    code, out, _err = cli("list", "main_ko", "--json")
    history = json.loads(out)
    assert [(h["version"], h["comment"], h["rollback_of"]) for h in history] == [
        (1, "first", None), (2, "", None), (3, "rollback to version 1", 1)]


def test_unknown_flows_and_versions(cli) -> None:
    assert cli("export", "nope")[0] == 2
    code, _out, err = cli("rollback", "nope", "1")
    assert code == 2 and "flow 'nope' has no version 1" in err
    code, _out, err = cli("list", "nope")
    assert code == 2 and "has no published version" in err
    code, _out, err = cli("publish", "nope")
    assert code == 2 and "no draft of flow 'nope'" in err


def test_a_refused_publish_file_leaves_the_draft_as_it_was(cli, tmp_path) -> None:
    good = write(tmp_path, "good.json", load_builtin("main_ko"))
    assert cli("import", "main_ko", good)[0] == 0
    code, _out, err = cli("publish", "main_ko", "--file", write(tmp_path, "bad.json", broken_ko()))
    assert code == 1 and "not published (draft unchanged)" in err
    code, out, _err = cli("export", "main_ko", "--draft")
    assert code == 0 and json.loads(out) == {**load_builtin("main_ko"), "name": "main_ko"}


def test_duplicate_keys_are_refused(cli, tmp_path) -> None:
    path = tmp_path / "dup.json"
    text = json.dumps(load_builtin("main_ko"), ensure_ascii=False)
    path.write_text(text.replace('"start":', '"start": "menu", "start":', 1), encoding="utf-8")
    for args in (("validate", str(path)), ("import", "main_ko", str(path)),
                 ("publish", "main_ko", "--file", str(path))):
        code, _out, err = cli(*args)
        assert code == 2 and "key 'start' appears twice in one object" in err, args
    assert cli("export", "main_ko", "--draft")[0] == 2        # nothing was stored


def test_publishing_an_unchanged_draft_makes_no_version(cli, tmp_path) -> None:
    good = write(tmp_path, "good.json", load_builtin("main_ko"))
    assert cli("publish", "main_ko", "--file", good)[0] == 0
    code, out, _err = cli("publish", "main_ko", "--file", good)
    assert (code, out) == (0, "flow 'main_ko': unchanged, version 1 stays live: nothing published\n")
    code, out, _err = cli("list", "main_ko", "--json")
    assert [h["version"] for h in json.loads(out)] == [1]


def test_bad_flow_names_and_oversized_files_are_refused(cli, tmp_path) -> None:
    good = write(tmp_path, "good.json", load_builtin("main_ko"))
    code, _out, err = cli("import", "../../x y", good)
    assert code == 1 and "flow name '../../x y'" in err
    assert cli("list")[1] == ""
    big = tmp_path / "big.json"
    big.write_text('{"name": "x", "description": "' + "x" * 300_000 + '"}')
    code, _out, err = cli("publish", "main_ko", "--file", str(big))
    assert code == 2 and "a flow document has at most" in err


def test_render_seeds_the_builtins_and_renders_their_prompts(cli, tmp_path) -> None:
    code, out, _err = cli("render")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["flow main v1", "flow main_ko v1",
                                                                 "flow survey v1"]
    assert all(int(line.split(": ")[1].split()[0]) > 0 for line in out.splitlines())
    assert len(list((tmp_path / "var" / "prompts").glob("*.wav"))) >= 10


def test_validate_refuses_a_transfer_to_a_route_that_is_not_configured(tmp_path, capsys):
    """A flow names a route; only the admin's [routes] make one exist."""
    from callpilot.app import flows_cli
    from callpilot.app.cli import build_parser
    from callpilot.infra.config import Config
    doc = {"name": "x", "start": "t", "nodes": {
        "t": {"type": "transfer", "route": "fraud_desk", "fallback": "bye"},
        "bye": {"type": "hangup"}}}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    config = Config(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'f.db'}")
    args = build_parser().parse_args(["flows", "validate", str(path)])
    assert flows_cli.run(config, args) == 1
    assert "t: route 'fraud_desk' is not configured (config [routes]: none)" in capsys.readouterr().err
    config.routes = {"fraud_desk": {"number": "+18005550100", "trunk": "carrier"}}
    assert flows_cli.run(config, args) == 0

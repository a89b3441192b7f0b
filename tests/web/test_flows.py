"""Flow editor pages: drafts, node forms, errors on the node, publish, rollback, diff, audit."""
from __future__ import annotations

import html as html_mod
import json
import re

import pytest
from sqlalchemy import select

from admin_web import db
from tests.web.conftest import builtin_flow
from callpilot.infra.db.web_users import AuditEntry


def _graph(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="flow-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def _audit(app, action: str | None = None) -> list[AuditEntry]:
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return list(db.get().scalars(query))


def _break_billing(auth):
    """Priority out of range: a problem of this node only."""
    return auth.post("/flows/main/nodes/to_billing", {"queue": "billing", "priority": "500",
                                                      "skills": '{"billing": 1}'})


def test_list_shows_flows_with_live_version(client, auth):
    auth.login()
    html = client.get("/flows/").get_data(as_text=True)
    assert 'href="/flows/main/"' in html and "valid" in html
    assert re.search(r"main</a></td>\s*<td>1</td>", html)


def test_editor_draws_every_node_and_edge(client, auth, services):
    auth.login()
    graph = _graph(client.get("/flows/main/").get_data(as_text=True))
    ids = {e["data"]["id"] for e in graph["elements"] if "source" not in e["data"]}
    edges = {(e["data"]["source"], e["data"]["target"]) for e in graph["elements"] if "source" in e["data"]}
    assert ids == set(services.flows.draft("main")["nodes"])
    assert ("greeting", "main_menu") in edges and ("main_menu", "to_billing") in edges
    assert graph["start"] == "greeting"


def test_node_form_shows_the_node_fields(client, auth):
    auth.login()
    html = client.get("/flows/main/?node=main_menu").get_data(as_text=True)
    assert 'id="node-form"' in html
    for field in ("prompt", "options", "fallback", "retries", "no_input"):
        assert f'name="{field}"' in html
    assert builtin_flow("main")["nodes"]["main_menu"]["prompt"] in html


def test_broken_node_is_saved_as_draft_and_marked(client, auth, services):
    auth.login()
    response = _break_billing(auth)
    assert response.status_code == 302
    assert services.flows.draft("main")["nodes"]["to_billing"]["priority"] == 500
    assert services.flows.latest_versions()["main"] == 1          # nothing published
    html = client.get("/flows/main/?node=to_billing").get_data(as_text=True)
    assert 'id="node-errors"' in html and "priority must be within 0..100, got 500" in html
    graph = _graph(html)
    billing = next(e for e in graph["elements"] if e["data"]["id"] == "to_billing")
    assert "invalid" in billing["classes"].split()
    assert billing["data"]["errors"] == ["priority must be within 0..100, got 500"]
    others = [e for e in graph["elements"] if "source" not in e["data"] and e["data"]["id"] != "to_billing"]
    assert all("invalid" not in e["classes"].split() for e in others)
    assert re.search(r'id="publish"\s+disabled', html)


def test_invalid_draft_cannot_be_published(client, auth, services):
    auth.login()
    _break_billing(auth)
    response = auth.post("/flows/main/publish", {"comment": "oops"}, follow_redirects=True)
    assert b"Not published" in response.data
    assert services.flows.latest_versions()["main"] == 1


def test_fix_then_publish(client, auth, services):
    auth.login()
    _break_billing(auth)
    auth.post("/flows/main/nodes/to_billing", {"queue": "billing", "priority": "5"})
    auth.post("/flows/main/nodes/greeting", {"text": "Welcome back.", "next": "main_menu"})
    response = auth.post("/flows/main/publish", {"comment": "new greeting"}, follow_redirects=True)
    assert b"Version 2 published" in response.data
    assert services.flows.document("main", 2)["nodes"]["greeting"]["text"] == "Welcome back."
    published = _audit(client.application, "publish")
    assert published[-1].actor == "admin" and published[-1].after["version"] == 2
    assert published[-1].before["version"] == 1
    assert published[-1].detail == "new greeting"


def test_every_draft_change_is_audited_with_before_and_after(client, auth):
    auth.login()
    _break_billing(auth)
    entry = _audit(client.application, "save_draft")[-1]
    assert (entry.actor, entry.entity, entry.entity_id) == ("admin", "flow", "main")
    assert entry.before["nodes"]["to_billing"]["priority"] == 0
    assert entry.after["nodes"]["to_billing"]["priority"] == 500
    assert entry.detail == "1 problem(s)"
    assert "500" in client.get("/audit/").get_data(as_text=True)


def test_json_field_error_is_not_saved(client, auth, services):
    auth.login()
    before = services.flows.draft("main")
    response = auth.post("/flows/main/nodes/main_menu", {"prompt": "Hi", "options": "[{", "fallback": "to_general"},
                         follow_redirects=True)
    assert b"options: not valid JSON" in response.data
    assert services.flows.draft("main") == before


def test_add_and_delete_node(client, auth, services):
    auth.login()
    auth.post("/flows/main/nodes", {"node_id": "bye", "type": "hangup"})
    assert services.flows.draft("main")["nodes"]["bye"] == {"type": "hangup"}
    auth.post("/flows/main/nodes/bye/delete")
    assert "bye" not in services.flows.draft("main")["nodes"]
    actions = [e.action for e in _audit(client.application)]
    assert actions[-2:] == ["add_node", "delete_node"]


def test_new_flow(client, auth, services):
    auth.login()
    auth.post("/flows/new", {"name": "promo"})
    assert services.flows.draft("promo")["start"] == "goodbye"
    assert _audit(client.application, "create")[-1].entity_id == "promo"


def test_versions_rollback_and_diff(client, auth, services):
    auth.login()
    auth.post("/flows/main/nodes/greeting", {"text": "Version two.", "next": "main_menu"})
    auth.post("/flows/main/publish", {"comment": "v2"})
    html = client.get("/flows/main/versions").get_data(as_text=True)
    assert 'data-version="2"' in html and 'data-version="1"' in html and "Roll back to 1" in html
    diff = html_mod.unescape(client.get("/flows/main/diff?a=1&b=2").get_data(as_text=True))
    assert re.search(r'class="del">-\s+"text": "Welcome to CallPilot Bank."', diff)
    assert re.search(r'class="add">\+\s+"text": "Version two."', diff)
    auth.post("/flows/main/rollback/1")
    assert services.flows.latest_versions()["main"] == 3
    assert services.flows.document("main", 3) == services.flows.document("main", 1)
    entry = _audit(client.application, "rollback")[-1]
    assert entry.before["version"] == 2 and entry.after["version"] == 3
    assert b"No difference" in client.get("/flows/main/diff?a=1&b=3").data


def test_version_page_shows_the_document(client, auth):
    auth.login()
    html = client.get("/flows/main/versions/1").get_data(as_text=True)
    assert "Welcome to CallPilot Bank." in html
    assert client.get("/flows/main/versions/9").status_code == 404


def test_listen_to_a_prompt(client, auth):
    auth.login()
    html = client.get("/flows/main/?node=greeting").get_data(as_text=True)
    assert '<audio controls preload="none" src="/flows/main/nodes/greeting/audio/text"' in html
    response = client.get("/flows/main/nodes/greeting/audio/text")
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert response.data[:4] == b"RIFF" and len(response.data) > 8000     # > 0.5 s at 8 kHz
    assert client.get("/flows/main/nodes/greeting/audio/next").status_code == 404


class _KnowsEverything:
    name, language = "fake", "en"

    def knows(self, word: str) -> bool:
        return True

    def known_phrases(self, phrases: list[str]) -> list[str]:
        return phrases


def test_publish_while_the_speech_model_loads_says_try_again(client, auth, services, monkeypatch):
    """The web's model loads in the background (D40): a publish meanwhile is refused with
    the reason, never published with its phrases unchecked; once loaded it goes through."""
    import threading
    from ivr.speech.engines import Planned
    from ivr.speech.loading import SpeechLoading
    from ivr.wiring import validator
    held = threading.Event()
    loading = SpeechLoading({"en": Planned("en", _KnowsEverything, False)}, gate=lambda: held.wait(30)).start()
    check = validator(loading, wait=0.05)
    monkeypatch.setattr(services.flows, "_validate", check)      # what build_services wires
    monkeypatch.setattr(services, "validate_flow", check)
    auth.login()
    auth.post("/flows/main/nodes/greeting", {"text": "Welcome back.", "next": "main_menu"})
    response = auth.post("/flows/main/publish", {"comment": "too early"}, follow_redirects=True)
    assert b"Not published" in response.data and b"still loading" in response.data
    assert services.flows.latest_versions()["main"] == 1
    held.set()
    loading.wait_sync("en", 30)
    response = auth.post("/flows/main/publish", {"comment": "loaded"}, follow_redirects=True)
    assert b"Version 2 published" in response.data


# -- phrases are checked against the engines serve uses (D42), with the DEFAULT speech config --

def _publish_menu_phrase(auth, services, flow: str, node_id: str, language: str, phrase: str):
    """Add ``phrase`` to the first option of the menu ``node_id`` and publish the draft."""
    from admin_web import flow_forms
    node = services.flows.draft(flow)["nodes"][node_id]
    options = node["options"]
    options[0]["phrases"][language].append(phrase)
    form = {**flow_forms.to_form(node), "options": json.dumps(options, ensure_ascii=False)}
    auth.login()
    auth.post(f"/flows/{flow}/nodes/{node_id}", form)
    return auth.post(f"/flows/{flow}/publish", {"comment": "new phrase"}, follow_redirects=True)


def test_publish_refuses_a_korean_phrase_the_model_does_not_know_without_serve(client, auth, services):
    """No serve running: the web loads the configured engines itself (default config: Vosk
    for ko, pocketsphinx for en), as ``callpilot flows`` does, and names the phrase."""
    services.flows.seed("main_ko", builtin_flow("main_ko"))
    response = _publish_menu_phrase(auth, services, "main_ko", "menu", "ko", "뷁뷁")
    page = response.get_data(as_text=True)
    assert "Not published" in page and "뷁뷁" in page and "does not know" in page
    assert services.flows.latest_versions()["main_ko"] == 1


@pytest.fixture
def running_serve(tmp_path):
    """serve's status socket in this process, on a loop of its own, answering with the
    real engines of the default config (what ``serve`` builds: ``ivr.wiring.speech_loading``)."""
    import asyncio
    import threading
    from callpilot.app.status import StatusServer
    from callpilot.infra.config import Config
    from ivr.speech.vocabulary import answers_json
    from ivr.wiring import speech_loading
    loading = speech_loading(Config(state_dir=tmp_path)).start()
    asked = []

    async def unknown_words(words, wait):
        asked.append(words)
        return await answers_json(loading, words, wait)
    server = StatusServer(tmp_path / "serve.sock", lambda: {}, unknown_words=unknown_words)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    yield asked
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def test_publish_refuses_an_english_phrase_serve_does_not_know(client, auth, services, running_serve):
    response = _publish_menu_phrase(auth, services, "main", "main_menu", "en", "xyzzy")
    page = response.get_data(as_text=True)
    assert "Not published" in page and "xyzzy" in page and "does not know" in page
    assert services.flows.latest_versions()["main"] == 1
    assert any("xyzzy" in words.get("en", ()) for words in running_serve)   # serve was asked


def test_the_web_refuses_a_transfer_to_a_route_that_is_not_configured(tmp_path, db_file):
    """As ``callpilot flows validate`` does: a flow may transfer only to the admin's [routes]
    (the web checked no route before D42's follow-up)."""
    from callpilot.app.web import build_services
    from callpilot.infra.config import Config
    from callpilot.infra.db import session as dbs
    doc = {"name": "fraud", "start": "t", "nodes": {
        "t": {"type": "transfer", "route": "fraud_desk", "fallback": "bye"},
        "bye": {"type": "hangup"}}}
    engine = dbs.make_engine(db_file)
    dbs.create_schema(engine)
    config = Config(state_dir=tmp_path)
    errors = build_services(config, dbs.make_sessionmaker(engine)).validate_flow(doc)
    assert [str(e) for e in errors] == [
        "t: route 'fraud_desk' is not configured (config [routes]: none)"]
    config.routes = {"fraud_desk": {"number": "+18005550100", "trunk": "carrier"}}
    assert build_services(config, dbs.make_sessionmaker(engine)).validate_flow(doc) == []
    engine.dispose()

"""``callpilot callbacks list|cancel|token`` against a real SQLite database."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from callpilot.app.cli import main
from callpilot.infra.db.api_tokens import ApiTokens
from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import CallbackSource
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLPILOT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CALLPILOT_CONFIG", raising=False)
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    monkeypatch.setenv("CALLPILOT_DATABASE_URL", url)
    engine = make_engine(url)
    create_schema(engine)
    yield CallbackStore(make_sessionmaker(engine))
    engine.dispose()


def _add(store, number, minutes):
    return store.create(NewCallback(number=number, queue="cards", entered_at=T0 + timedelta(minutes=minutes),
                                    source=CallbackSource.IVR, expires_at=T0 + timedelta(days=400),
                                    reason="lost card"), T0)[0]


def test_list_in_line_order_and_cancel(store, capsys):
    late, early = _add(store, "+821012345678", 5), _add(store, "+821012345679", 1)
    assert main(["callbacks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [early.id, late.id] and rows[0]["reason"] == "lost card"
    assert main(["callbacks", "cancel", early.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "cancelled"
    assert main(["callbacks", "cancel", early.id]) == 1          # closed already
    assert "is cancelled" in capsys.readouterr().err
    assert main(["callbacks", "cancel", "nope"]) == 2
    capsys.readouterr()
    assert main(["callbacks", "list"]) == 0
    out = capsys.readouterr().out
    assert late.id in out and early.id not in out
    assert main(["callbacks", "list", "--all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_a_callback_being_dialled_is_not_cancelled(store, capsys):
    callback = _add(store, "+821012345678", 0)
    store.claim(callback.id, "1001", T0)
    assert main(["callbacks", "cancel", callback.id]) == 1
    assert "is dialling" in capsys.readouterr().err


def test_token_create_and_revoke(store, capsys):
    assert main(["callbacks", "token", "create", "website"]) == 0
    token = capsys.readouterr().out.strip()
    tokens = ApiTokens(store.sessions)
    assert tokens.holder(token) == "website"
    assert main(["callbacks", "token", "create", "website"]) == 1
    assert main(["callbacks", "token", "revoke", "website"]) == 0
    assert tokens.holder(token) is None

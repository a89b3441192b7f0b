"""flaskr-style fixtures: ``app`` (real flow store on a fresh SQLite file), ``client``,
``auth`` (log in as admin / supervisor / agent, with the CSRF token like a browser)."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from admin_web import accounts, db
from admin_web.app import create_app
from admin_web.security import hash_password
from callpilot.app.web import build_services
from callpilot.infra.config import Config
from callpilot.infra.db import session as dbs
from callpilot.infra.db.web_users import WebUser

FLOWS = Path(__file__).resolve().parents[2] / "ivr" / "flows"
PASSWORDS = {"admin": "admin-pw-1", "super": "super-pw-1", "agent": "agent-pw-1"}
ROLES = {"admin": "admin", "super": "supervisor", "agent": "agent"}
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|name="csrf-token" content="([^"]+)"')


@functools.cache
def _hashes() -> dict[str, str]:
    """argon2 is slow on purpose: hash the test passwords once per run."""
    return {username: hash_password(password) for username, password in PASSWORDS.items()}


def builtin_flow(name: str) -> dict:
    return json.loads((FLOWS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def db_file(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'web.db'}"


@pytest.fixture
def services(tmp_path, db_file):
    engine = dbs.make_engine(db_file)
    dbs.create_schema(engine)
    services = build_services(Config(state_dir=tmp_path), dbs.make_sessionmaker(engine))
    services.flows.seed("main", builtin_flow("main"))
    yield services
    engine.dispose()


@pytest.fixture
def app(tmp_path, db_file, services):
    app = create_app(Config(state_dir=tmp_path), services,
                     {"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": db_file})
    with app.app_context():
        session = db.get()
        for username in PASSWORDS:
            session.add(WebUser(username=username, password_hash=_hashes()[username],
                                role=ROLES[username], active=True, created_at=accounts.now(),
                                agent_extension="1001" if username == "agent" else None))
        session.commit()
    yield app
    db.dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, path: str = "/auth/login") -> str:
    """The CSRF token of the client's session, read from a page like a browser would."""
    match = TOKEN.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, username: str = "admin", password: str | None = None):
        token = csrf_token(self._client)
        return self._client.post("/auth/login", data={
            "username": username, "password": password or PASSWORDS[username], "csrf_token": token})

    def logout(self):
        return self._client.post("/auth/logout", data={"csrf_token": csrf_token(self._client)})

    def post(self, path: str, data: dict | None = None, **kwargs):
        """A form POST with the session's CSRF token."""
        return self._client.post(path, data={**(data or {}), "csrf_token": csrf_token(self._client)}, **kwargs)


@pytest.fixture
def auth(client):
    return AuthActions(client)

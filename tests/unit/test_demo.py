"""Demo data seeding (SQLite, no Asterisk)."""
from __future__ import annotations

import stat

from sqlalchemy import select

from callpilot.infra import config as config_mod
from callpilot.app import demo
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.models import Agent, Customer, QueueMember
from callpilot.infra.db.session import make_engine, make_sessionmaker


def test_seed_is_idempotent_and_keeps_passwords(tmp_path):
    config = config_mod.load(env={"CALLPILOT_STATE_DIR": str(tmp_path)})
    first = demo.seed(config)
    assert sorted(first) == ["1001", "1002", "1003", "1004"]
    assert len(set(first.values())) == 4
    path = tmp_path / demo.PASSWORDS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo.seed(config) == first
    engine = make_engine(config.db_url)
    with make_sessionmaker(engine)() as session:
        agents = {a.extension: a for a in session.scalars(select(Agent))}
        members = {(m.queue_name, m.agent_extension) for m in session.scalars(select(QueueMember))}
        customers = list(session.scalars(select(Customer)))
    engine.dispose()
    assert {a.birth_year for a in agents.values()} == {1995, 1987, 1979, 1968}
    for ext, password in first.items():
        assert agents[ext].sip_md5_cred == sip_md5_cred(ext, password)
        assert password not in agents[ext].sip_md5_cred
    assert members == {("billing", "1001"), ("billing", "1002"), ("cards", "1003"),
                       ("cards", "1004"), *(("general", e) for e in first)}
    assert any(c.phone == "15550001" and c.birth_year for c in customers)


def test_lost_password_file_gives_new_passwords_and_new_digests(tmp_path):
    config = config_mod.load(env={"CALLPILOT_STATE_DIR": str(tmp_path)})
    first = demo.seed(config)
    (tmp_path / demo.PASSWORDS_FILE).unlink()
    second = demo.seed(config)
    assert second != first
    assert demo.read_passwords(tmp_path / demo.PASSWORDS_FILE) == second

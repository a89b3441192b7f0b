"""Demo data: three queues, four agents with SIP passwords and skills, a few customers.

``seed`` is idempotent: agents keep the passwords already written to
``<state_dir>/demo-agents.txt`` (mode 0600, one ``extension password`` per line); only the
md5 digest credential goes into the database.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sqlalchemy.orm import Session

from callpilot.infra.config import Config
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.models import Agent, AgentSkill, Customer, Queue, QueueMember
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

logger = logging.getLogger(__name__)

PASSWORDS_FILE = "demo-agents.txt"

QUEUES = {
    "billing": "Billing and payments",
    "cards": "Cards: lost, stolen, limits",
    "general": "General enquiries",
}
# extension -> (name, birth year, {queue: proficiency 1-5 in the queue's skill})
AGENTS = {
    "1001": ("Mina Park", 1995, {"billing": 5, "general": 3}),
    "1002": ("Daniel Cho", 1987, {"billing": 3, "general": 4}),
    "1003": ("Sofia Lee", 1979, {"cards": 4, "general": 3}),
    "1004": ("James Han", 1968, {"cards": 3, "general": 5}),
}
# phone -> (name, birth year, segment)
CUSTOMERS = {
    "15550001": ("Alice Kim", 1992, "standard"),
    "15550002": ("Brian Yoon", 1981, "gold"),
    "15550003": ("Clara Jung", 1966, "standard"),
    "15550004": ("David Seo", 1954, "platinum"),
    "15550005": ("Erin Lim", 2001, "standard"),
}


def seed(config: Config) -> dict[str, str]:
    """Create (or complete) the demo data; return ``{extension: clear password}``."""
    passwords = _passwords(config.state_dir / PASSWORDS_FILE)
    engine = make_engine(config.db_url)
    try:
        create_schema(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            _seed_queues(session)
            _seed_agents(session, passwords)
            _seed_customers(session)
    finally:
        engine.dispose()
    logger.info("demo data seeded: %d queues, %d agents, %d customers",
                len(QUEUES), len(AGENTS), len(CUSTOMERS))
    return passwords


def read_passwords(path: Path) -> dict[str, str]:
    """``{extension: password}`` from a demo-agents file (empty if it does not exist)."""
    if not path.exists():
        return {}
    pairs = (line.split(None, 1) for line in path.read_text().splitlines() if line.strip())
    return {p[0]: p[1].strip() for p in pairs if len(p) == 2 and not p[0].startswith("#")}


def _passwords(path: Path) -> dict[str, str]:
    known = read_passwords(path)
    passwords = {ext: known.get(ext) or secrets.token_hex(8) for ext in AGENTS}
    if passwords != {ext: known.get(ext) for ext in AGENTS}:
        _write_passwords(path, passwords)
    return passwords


def _write_passwords(path: Path, passwords: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# demo agent SIP accounts: extension password (realm callpilot)\n"
    text += "".join(f"{ext} {pw}\n" for ext, pw in sorted(passwords.items()))
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    logger.info("wrote demo agent passwords to %s", path)


def _seed_queues(session: Session) -> None:
    for name, title in QUEUES.items():
        queue = session.get(Queue, name) or Queue(name=name)
        queue.title = queue.title or title
        session.add(queue)


def _seed_agents(session: Session, passwords: dict[str, str]) -> None:
    for ext, (name, birth_year, queues) in AGENTS.items():
        agent = session.get(Agent, ext) or Agent(extension=ext, name=name, birth_year=birth_year)
        agent.sip_md5_cred = sip_md5_cred(ext, passwords[ext])
        session.add(agent)
        session.flush()
        for queue, level in queues.items():
            if session.get(QueueMember, (queue, ext)) is None:
                session.add(QueueMember(queue_name=queue, agent_extension=ext))
            if session.get(AgentSkill, (ext, queue)) is None:
                session.add(AgentSkill(agent_extension=ext, skill=queue, level=level))


def _seed_customers(session: Session) -> None:
    for phone, (name, birth_year, segment) in CUSTOMERS.items():
        if session.get(Customer, phone) is None:
            session.add(Customer(phone=phone, name=name, birth_year=birth_year, segment=segment))

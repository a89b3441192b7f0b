"""Configs for isolated instances on one machine (tests, benchmarks, a second node on a
laptop): an own state dir, free loopback ports and an own block of RTP ports."""
from __future__ import annotations

import logging
import os
import random
import secrets
import socket
from pathlib import Path

from callpilot.infra import config as config_mod
from callpilot.infra.config import Config
from callpilot.infra.db import models
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from testkit.ports import free_port as _free_port, port_free

logger = logging.getLogger(__name__)

TCP_UDP = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
RTP_RANGE = (10000, 15800)    # below testkit.ports' media and listen ports (and the ephemeral range)


def free_port(kinds: tuple[int, ...] = (socket.SOCK_STREAM,)) -> int:
    """A loopback port free for every socket kind in ``kinds``, reserved for this process
    (``testkit.ports``: never handed out twice)."""
    return _free_port("127.0.0.1", kinds)


def free_rtp_range(block: int = 200) -> tuple[int, int]:
    """A block of RTP ports whose ends are free (random start: parallel runs differ)."""
    for _ in range(100):
        start = random.randrange(RTP_RANGE[0], RTP_RANGE[1] - block, 2)
        probe = (start, start + 1, start + block // 2, start + block - 1)
        if all(port_free("127.0.0.1", p, socket.SOCK_DGRAM) for p in probe):
            return start, start + block - 1
    raise RuntimeError("no free RTP port block")


def isolated_config(state_dir: Path, *, rtp_block: int = 200, **asterisk_overrides) -> Config:
    """A Config for an isolated instance: own state dir, free ports, loopback only."""
    rtp_start, rtp_end = free_rtp_range(rtp_block)
    env = {
        "CALLPILOT_STATE_DIR": str(state_dir),
        "CALLPILOT_SIP_PORT": str(free_port(TCP_UDP)),
        "CALLPILOT_ARI_PORT": str(free_port()),
        "CALLPILOT_AMI_PORT": str(free_port()),
        "CALLPILOT_AGI_PORT": str(free_port()),
        "CALLPILOT_WEB_PORT": str(free_port()),
        "CALLPILOT_METRICS_PORT": str(free_port()),
        "CALLPILOT_RTP_START": str(rtp_start),
        "CALLPILOT_RTP_END": str(rtp_end),
    }
    for name in ("CALLPILOT_ASTERISK_ROOTFS", "CALLPILOT_ASTERISK_BINARY"):
        if name in os.environ:
            env[name] = os.environ[name]
    config = config_mod.load(env=env)
    config.agi_host = "127.0.0.1"
    config.asterisk.sip_host = "127.0.0.1"
    config.asterisk.agent_qualify_seconds = 0
    for key, value in asterisk_overrides.items():
        setattr(config.asterisk, key, value)
    return config


def seed_queue_agents(config: Config, queue: str, n: int, *, ext_base: int = 2001,
                      **queue_fields) -> dict[str, str]:
    """Queue ``queue`` (``queue_fields`` set on it) and ``n`` auto-login agents
    ``ext_base``.. in it (birth years spread over the age bands, proficiency 3-5 in the
    queue's skill); returns ``{extension: SIP password}``.  Before ``runner.up``: the
    agents' PJSIP endpoints are rendered from the database."""
    passwords = {str(ext_base + i): secrets.token_hex(8) for i in range(n)}
    engine = make_engine(config.db_url)
    try:
        create_schema(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            session.add(models.Queue(name=queue, **queue_fields))
            for i, (ext, password) in enumerate(sorted(passwords.items())):
                session.add(models.Agent(extension=ext, name=f"Agent {ext}",
                                         birth_year=1960 + 4 * (i % 12), auto_login=True,  # 1960..2004
                                         sip_md5_cred=sip_md5_cred(ext, password)))
                session.flush()
                session.add(models.QueueMember(queue_name=queue, agent_extension=ext))
                session.add(models.AgentSkill(agent_extension=ext, skill=queue, level=3 + i % 3))
    finally:
        engine.dispose()
    return passwords

"""``callpilot web``: the admin web wired to the IVR's flow store, TTS and serve's status.

The composition root for the web process: ``admin_web`` imports no domain, so the flow store
(``ivr.store``), its validation (the same as serve's and the CLI's: phrases are checked
against serve's loaded speech engines, asked over its socket, or against the same configured
engines loaded here when serve is not running, D42), the prompt renderer (``ivr.tts``) and serve's live
status (``callpilot.app.status``) are built here and passed to ``create_app``.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.shared_state import ChangeLog

logger = logging.getLogger(__name__)


def build_services(config: Config, sessions=None):
    from admin_web.services import WebServices
    from callpilot.app.serve_metrics import snapshot_families
    from ivr.nodes import NODE_TYPES
    from ivr.store import FlowStore
    from ivr.tts import PromptCache
    from ivr.wiring import validator
    if sessions is None:
        engine = db.make_engine(config.db_url)
        db.create_schema(engine)
        sessions = db.make_sessionmaker(engine)
    sock = config.state_dir / "serve.sock"
    # phrases are checked by serve's engines, or by the same ones loaded here (D40, D42)
    local = _local_vocabulary(tuple(sorted(config.speech.items())), config.speech_model)
    # the same checks as ``callpilot flows``: routes too (a transfer names only a configured one)
    validate = validator(ServeVocabulary(sock, local), set(config.routes))
    prompts = PromptCache(config.prompts_dir, config.tts_voice, config.tts_rate)
    return WebServices(flows=FlowStore(sessions, validate=validate), validate_flow=validate,
                       render_prompt=lambda text, language: prompts.render(text, language),
                       live_status=_center(config, sessions, sock), local_status=lambda: _live_status(sock),
                       serve_gauges=snapshot_families,
                       node_types=tuple(NODE_TYPES), check_queue_steps=_check_steps,
                       queue_stats=lambda since: _queue_stats(sessions, since),
                       queue_report=lambda start, end, minutes: _queue_report(sessions, start, end, minutes),
                       queue_log_path=config.state_dir / "queue_log",
                       age_band=_age_bands(config),
                       agent_command=lambda ext, action, reason: _agent_command(sock, ext, action, reason),
                       notify_serve=lambda what: _tell_nodes(ChangeLog(sessions), sock, what),
                       campaigns=CampaignsAdapter(sessions))


class ServeVocabulary:
    """The web's vocabulary source (``ivr.speech.vocabulary``): serve's loaded engines, asked
    over its socket; when serve is not reachable (or too old to answer), the same configured
    engines loaded in this process, from the first publish that needs them (D42)."""

    def __init__(self, sock: Path, local) -> None:
        self.sock = sock
        self.local = local                      # a LocalVocabulary, started only if needed

    @property
    def languages(self) -> set[str]:
        return self.local.languages             # the same plan as serve's: the same config

    def unknown(self, words, wait: float):
        answers = self._ask_serve(words, wait)
        if answers is not None:
            return answers
        logger.info("serve not reachable on %s: checking phrases with the engines loaded here", self.sock)
        return self.local.unknown(words, wait)

    def _ask_serve(self, words, wait: float):
        from callpilot.app.status import request_sync
        from ivr.speech.vocabulary import VocabularyAnswer
        if not self.sock.exists():
            return None
        body = {language: sorted(asked) for language, asked in words.items()}
        try:
            status, answer = request_sync(self.sock, "POST", f"/speech/unknown?wait={wait:g}",
                                          timeout=wait + SERVE_ANSWER_MARGIN, body=body)
            if status != 200:
                return None
            return {language: VocabularyAnswer.from_dict(each) for language, each in answer.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("serve's vocabulary answer unusable (%s): checking here", exc)
            return None


SERVE_ANSWER_MARGIN = 5.0        # seconds beyond the validator's wait for serve to answer


@functools.cache
def _local_vocabulary(speech: tuple[tuple[str, str], ...], speech_model: str):
    """One per process and setting (a web process has one config; the tests build many
    apps): the models are loaded at most once, and only when no serve answers."""
    from ivr.speech.engines import plan
    from ivr.speech.loading import SpeechLoading, gate_from_env
    from ivr.speech.vocabulary import LocalVocabulary
    return LocalVocabulary(SpeechLoading(plan(dict(speech), speech_model), gate=gate_from_env()))


class CampaignsAdapter:
    """``admin_web.services.Campaigns`` on ``outbound``'s store, report and CSV import."""

    ACTIONS = ("start", "pause", "resume", "finish")

    def __init__(self, sessions) -> None:
        from outbound.store import CampaignStore
        self.sessions = sessions
        self.store = CampaignStore(sessions)

    def report(self, name: str) -> dict:          # CampaignError is a ValueError
        from outbound import report
        from callpilot.infra.db.records import utcnow
        return report.build(self.store, name, utcnow())

    def set_state(self, name: str, action: str) -> str:
        from callpilot.app.campaigns_cli import STATE_OF
        if action not in self.ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        self.store.set_state(name, STATE_OF[action])
        return STATE_OF[action].value

    def create(self, name: str, template: str, fields: dict) -> int:
        from outbound.settings import campaign_settings, check_name
        from callpilot.infra.db.records import utcnow
        return self.store.create(check_name(name), template, utcnow(), **campaign_settings(template=template, **fields))

    def preview(self, template: str, sample: dict, keys: dict) -> tuple[str, list[str]]:
        from outbound.settings import preview, replies_from, template_fields
        return preview(template, sample, replies_from(keys, ())), sorted(template_fields(template))

    def defaults(self) -> dict:
        from outbound.model import DEFAULT_REPLIES, DEFAULT_RETRY_DELAYS
        return {"keys": {reply: key for key, reply in DEFAULT_REPLIES.items()}, "retry": dict(DEFAULT_RETRY_DELAYS)}

    def import_csv(self, name: str, text: str, region: str) -> dict:
        import io
        from outbound.contacts_csv import import_contacts
        from callpilot.infra.db.records import utcnow
        with self.sessions.kw["bind"].begin() as connection:
            return import_contacts(connection, name, io.StringIO(text), utcnow(), region).as_dict()


def _tell_nodes(changes, sock: Path, what: str) -> bool:
    """The change counted in the database (every node sharing it reloads it, D43), then this
    node's serve told at once; True when it took the change."""
    from sqlalchemy.exc import SQLAlchemyError
    from callpilot.infra.db.records import utcnow
    try:
        changes.bump(what, utcnow())
    except SQLAlchemyError:
        logger.exception("%s change not counted: other nodes reload it at their next start", what)
    return _notify(sock, what)


def _notify(sock: Path, what: str) -> bool:
    """True when serve took the change (agents: roster, PJSIP config and Asterisk's reload
    done, hence the longer deadline)."""
    from callpilot.app.status import request_sync
    try:
        status, _body = request_sync(sock, "POST", f"/reload/{what}", timeout=15.0)
    except OSError:
        return False
    return status == 200


def _queue_stats(sessions, since):
    from acd.queue_report import queue_stats
    return queue_stats(sessions, since=since)


def _queue_report(sessions, start, end, minutes):
    from acd import queue_report as qr
    from acd.nps import nps_by_queue
    from callpilot.infra.db.surveys import SurveyStore
    visits = qr.visits_between(sessions, start, end)
    scores = [s for s in SurveyStore(sessions).scores(since=start) if s.at < end]
    return {"intervals": qr.interval_stats(visits, start, end, minutes),
            "agents": qr.agent_stats(visits, start, end), "nps": nps_by_queue(scores)}


def _age_bands(config: Config):
    from datetime import date
    from acd.model import AgeBands
    bands = AgeBands(tuple(config.acd.age_bands))
    return lambda birth_year: bands.band_of(birth_year, date.today().year)


def _agent_command(sock: Path, extension: str, action: str, reason: str):
    from urllib.parse import quote
    from callpilot.app.status import request_sync
    query = f"?reason={quote(reason)}" if reason else ""
    try:
        return request_sync(sock, "POST", f"/agents/{quote(extension)}/{action}{query}", timeout=5.0)
    except OSError:
        return 503, {"error": "serve is not running"}


def _check_steps(data) -> str | None:
    from acd.model import ModelError, steps_from_list
    try:
        steps_from_list(data, where="steps")
    except ModelError as exc:
        return str(exc)
    return None


def _center(config: Config, sessions, sock: Path):
    """The live picture the web shows: this node's serve's, merged with the other nodes'
    when several share the database (D43)."""
    from admin_web.live import merge_center
    from callpilot.app.nodes import CenterPicture, shares_agents
    from callpilot.infra.db.shared_state import NodeBoard
    if not shares_agents(config):
        return lambda: _live_status(sock)
    return CenterPicture(lambda: _live_status(sock), NodeBoard(sessions), config.node_name, merge_center)


def _live_status(sock: Path):
    from callpilot.app.status import fetch_sync
    return fetch_sync(sock)


def make_app(config: Config):
    from admin_web.app import create_app
    return create_app(config, build_services(config))


def run(config: Config) -> None:
    from waitress import serve
    app = make_app(config)
    logger.info("admin web on http://%s:%d (%d threads, at most %d live pages)", config.web_host,
                config.web_port, config.web_threads, config.web_live_streams)
    serve(app, host=config.web_host, port=config.web_port, threads=config.web_threads, ident="callpilot")


def bootstrap_admin(config: Config) -> str | None:
    """Create the first admin if there is no account yet; its password (show it once) or None."""
    from admin_web import accounts
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        with db.make_sessionmaker(engine)() as session:
            return accounts.bootstrap_admin(session)
    finally:
        engine.dispose()


def manage_user(config: Config, action: str, username: str, role: str,
                agent: str | None = None) -> str:
    """``add`` a user or set a new ``password``; returns the generated password."""
    from admin_web import accounts
    from admin_web.security import generate_password
    password = generate_password()
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        with db.make_sessionmaker(engine)() as session:
            if action == "add":
                accounts.create_user(session, username, password, role, agent)
            else:
                accounts.set_password(session, username, password)
    finally:
        engine.dispose()
    return password

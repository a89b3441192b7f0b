"""Phase-2 node types run through the FlowRunner with a scripted caller and fake services."""
from __future__ import annotations

import copy

import json
from datetime import date, datetime, time, timezone
from pathlib import Path

import pytest

from callpilot.infra.calendar import Calendar, Hours
from ivr.flows import load_builtin
from ivr.nodes.collect_digits import luhn_ok, mask
from ivr.runner import FlowRunner
from ivr.schema import check, parse
from acd.model import DEFAULT_AGE_BANDS
from callpilot.infra.db.customers import phone_keys
from ivr.services import ServiceError
from testkit.ivr_fakes import Barge, FakeDriver, FakeServices, HangsUp, Say, ToneSynthesizer
from ivr.tts import PromptCache

MONDAY_10_SEOUL = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)     # 10:00 KST
MONDAY_20_SEOUL = datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc)    # 20:00 KST


@pytest.fixture
def prompts(tmp_path: Path) -> PromptCache:
    return PromptCache(tmp_path, "en-us", 160, synthesizer=ToneSynthesizer())


def runner(prompts, services=None, now=MONDAY_10_SEOUL, **kw) -> FlowRunner:
    return FlowRunner(prompts, services=services, clock=lambda: now, **kw)


def flow(start: str, **nodes) -> dict:
    """A flow of ``nodes`` plus ``done`` (hangup) and ``failed`` (general) when referenced."""
    text = json.dumps(nodes)
    if '"done"' in text:
        nodes.setdefault("done", {"type": "hangup"})
    if '"failed"' in text:
        nodes.setdefault("failed", {"type": "enqueue", "queue": "general"})
    return {"name": "t", "start": start, "nodes": nodes}


# ------------------------------------------------------------------ collect_digits

CARD = "4111111111111111"


def digits_flow(**extra) -> dict:
    node = {"type": "collect_digits", "prompt": "Enter your card number, then hash.",
            "variable": "card", "max_digits": 16, "min_digits": 16, "luhn": True,
            "secret": True, "invalid": "That number is not valid.", "next": "done",
            "fallback": "failed"}
    node.update(extra)
    return flow("card", card=node)


@pytest.mark.parametrize("digits, ok", [(CARD, True), ("4111111111111112", False),
                                        ("79927398713", True), ("0", True), ("12a", False)])
def test_luhn(digits, ok) -> None:
    assert luhn_ok(digits) is ok


def test_mask() -> None:
    assert mask(CARD) == "************1111" and mask("12") == "12"


async def test_collect_digits_stores_a_valid_card_and_masks_the_journey(prompts) -> None:
    driver = FakeDriver(["4111111111111112#", CARD + "#"])
    result = await runner(prompts).run(digits_flow(), driver, {})
    assert result.variables["card"] == CARD and result.outcome.kind == "hangup"
    assert [i["value"] for i in result.inputs] == ["************1112", "************1111"]
    assert driver.reads[0]["max_digits"] == 16 and driver.reads[0]["terminator"] == "#"


async def test_collect_digits_gives_up_after_retries(prompts) -> None:
    doc = digits_flow(luhn=False, secret=False, min_digits=4, max_digits=6, pattern=r"9\d+")
    result = await runner(prompts).run(doc, FakeDriver(["123", "123456", ""]), {})
    assert result.outcome.queue == "general" and "card" not in result.variables
    assert [i["kind"] for i in result.inputs] == ["dtmf", "dtmf", "timeout"]


async def test_collect_digits_pattern_accepts(prompts) -> None:
    doc = digits_flow(luhn=False, min_digits=4, max_digits=6, pattern=r"9\d+")
    result = await runner(prompts).run(doc, FakeDriver(["90210#"]), {})
    assert result.variables["card"] == "90210"


def test_collect_digits_validation() -> None:
    errors = [e.reason for e in check(digits_flow(min_digits=20, pattern="(", terminator="x"))]
    assert "min_digits 20 is above max_digits 16" in errors
    assert any(e.startswith("pattern is not a regular expression") for e in errors)
    assert "terminator must be '#', '*' or null, got 'x'" in errors
    node = digits_flow()
    del node["nodes"]["card"]["max_digits"]
    assert "missing max_digits" in [e.reason for e in check(node)]


# ------------------------------------------------------------------ ask

def yes_no_flow() -> dict:
    return flow("q", q={"type": "ask", "yes_no": True, "prompt": "Are you calling about a card?",
                        "variable": "about_card", "targets": {"yes": "done", "no": "failed"},
                        "fallback": "failed"})


async def test_ask_yes_no_by_key(prompts) -> None:
    result = await runner(prompts).run(yes_no_flow(), FakeDriver(["1"]), {})
    assert result.variables["about_card"] == "yes" and result.outcome.kind == "hangup"
    result = await runner(prompts).run(yes_no_flow(), FakeDriver(["2"]), {})
    assert result.variables["about_card"] == "no" and result.outcome.queue == "general"


async def test_ask_yes_no_by_voice_in_korean(prompts) -> None:
    driver = FakeDriver([Say("아니요", 0.95)], speech=True)
    result = await runner(prompts).run(yes_no_flow(), driver, {"language": "ko"})
    assert result.variables["about_card"] == "no"
    assert driver.grammars == [["네", "예", "아니요", "아니오"]]


async def test_ask_listens_only_in_languages_with_a_speech_model(prompts) -> None:
    driver = FakeDriver(["1"], speech=True)
    result = await runner(prompts, speech_languages={"ko"}).run(yes_no_flow(), driver, {})
    assert result.variables["about_card"] == "yes" and driver.grammars == []


async def test_ask_small_grammar_sets_value_and_goes_next(prompts) -> None:
    doc = flow("q", q={"type": "ask", "prompt": "Balance or transfer?", "variable": "intent",
                       "choices": [{"value": "balance", "phrases": ["balance"], "key": "1"},
                                   {"value": "transfer", "phrases": ["transfer", "send money"],
                                    "target": "failed"}],
                       "next": "done", "fallback": "failed"})
    driver = FakeDriver([Say("send money")], speech=True)
    result = await runner(prompts).run(doc, driver, {})
    assert result.variables["intent"] == "transfer" and result.outcome.queue == "general"
    result = await runner(prompts).run(doc, FakeDriver(["1"]), {})
    assert result.variables["intent"] == "balance" and result.outcome.kind == "hangup"


def test_ask_validation() -> None:
    doc = flow("q", q={"type": "ask", "prompt": "?", "choices": [{"value": "a", "key": "1"}],
                       "fallback": "done"})
    assert [e.reason for e in check(doc)] == [
        "missing variable", "choice 0 has no target and the node has no next"]


# ------------------------------------------------------------------ lookup

ADA = {"phone": "5551234", "name": "Ada", "birth_year": 1960, "segment": "gold", "language": "ko"}


def lookup_flow(**extra) -> dict:
    node = {"type": "lookup", "source": "customer", "next": "hello", "not_found": "failed"}
    node.update(extra)
    return flow("who", who=node,
                hello={"type": "say", "text": "Hello {customer_name}.", "next": "route"},
                route={"type": "enqueue", "queue": "vip", "skills": {"vip": 2}})


async def test_lookup_customer_sets_profile_and_routing_attributes(prompts) -> None:
    services = FakeServices(customers={"5551234": ADA})
    driver = FakeDriver([])
    result = await runner(prompts, services).run(lookup_flow(), driver, {})
    v = result.variables
    assert (v["customer_known"], v["customer_name"], v["age"], v["age_band"], v["segment"]) == (
        True, "Ada", 66, "55+", "gold")
    assert result.outcome.queue == "vip"
    assert result.outcome.attributes == {"language": "en-us", "age_band": "55+", "segment": "gold",
                                         "customer_name": "Ada", "customer_known": True}


async def test_lookup_unknown_caller_goes_to_not_found(prompts) -> None:
    result = await runner(prompts, FakeServices()).run(lookup_flow(), FakeDriver([]), {})
    assert result.outcome.queue == "general" and result.variables["customer_known"] is False


async def test_lookup_failure_goes_to_error_target(prompts) -> None:
    services = FakeServices(customers={"5551234": ServiceError("db down")})
    doc = lookup_flow(error="done")
    result = await runner(prompts, services).run(doc, FakeDriver([]), {})
    assert result.outcome.kind == "hangup"


async def test_webhook_lookup_and_fallback_on_timeout(prompts) -> None:
    url = "http://crm.invalid/lookup"
    doc = flow("crm", crm={"type": "lookup", "source": "webhook", "url": url, "method": "GET",
                           "timeout": 1.5, "params": {"who": "{caller_id}"}, "into": "crm",
                           "next": "say", "error": "failed"},
               say={"type": "say", "text": "Your balance is {crm.balance}.", "next": "done"})
    services = FakeServices(webhooks={url: {"balance": 12}})
    result = await runner(prompts, services).run(doc, FakeDriver([]), {})
    assert result.variables["crm"] == {"balance": 12} and result.outcome.kind == "hangup"
    assert services.calls[0][1]["payload"]["who"] == "5551234"
    assert services.calls[0][1]["timeout"] == 1.5
    services = FakeServices(webhooks={url: ServiceError("timeout")})
    result = await runner(prompts, services).run(doc, FakeDriver([]), {})
    assert result.outcome.queue == "general"


def test_lookup_validation() -> None:
    doc = flow("l", l={"type": "lookup", "source": "webhook", "url": "ftp://x", "method": "PUT",
                       "next": "done"})
    assert [e.reason for e in check(doc)] == ["webhook needs an http:// or https:// url",
                                              "method must be GET or POST, got 'PUT'"]
    doc = flow("l", l={"type": "lookup", "source": "fax", "next": "done"})
    assert [e.reason for e in check(doc)] == ["source must be one of customer, webhook, got 'fax'"]


@pytest.mark.parametrize("birth, band", [(2005, "<25"), (2001, "25-34"), (1990, "35-44"),
                                         (1975, "45-54"), (1971, "55+")])
def test_age_band(birth, band) -> None:
    assert DEFAULT_AGE_BANDS.band_of(birth, 2026) == band   # the one age-band function


def test_phone_keys() -> None:
    assert phone_keys("+82 10-1234") == ["+82 10-1234", "82101234", "+82101234"]


# ------------------------------------------------------------------ branch

def hours_flow(**extra) -> dict:
    node = {"type": "branch", "timezone": "Asia/Seoul", "holidays": ["2026-12-25"],
            "rules": [{"when": {"any": [{"holiday": True}, {"weekday": ["sat", "sun"]},
                                        {"not": {"time": {"from": "09:00", "to": "18:00"}}}]},
                       "target": "done"},
                      {"when": {"var": "segment", "eq": "gold"}, "target": "vip"}],
            "else": "failed"}
    node.update(extra)
    return flow("open", open=node, vip={"type": "enqueue", "queue": "vip"})


@pytest.mark.parametrize("now, segment, expected", [
    (MONDAY_10_SEOUL, "gold", "vip"),
    (MONDAY_10_SEOUL, "basic", "general"),
    (MONDAY_20_SEOUL, "gold", None),                                          # closed: hangup
    (datetime(2026, 12, 25, 1, 0, tzinfo=timezone.utc), "gold", None),        # holiday
    (datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc), "gold", None),        # Sunday
])
async def test_branch_on_time_weekday_holiday_and_data(prompts, now, segment, expected) -> None:
    result = await runner(prompts, now=now).run(hours_flow(), FakeDriver([]), {"segment": segment})
    assert result.outcome.queue == expected


async def test_branch_holiday_calendar_from_services(prompts) -> None:
    services = FakeServices(calendars={"kr": frozenset({date(2026, 11, 23)})})
    doc = hours_flow(calendar="kr")
    result = await runner(prompts, services).run(doc, FakeDriver([]), {"segment": "gold"})
    assert result.outcome.kind == "hangup"


async def test_branch_uses_the_flow_time_zone(prompts) -> None:
    doc = hours_flow()
    del doc["nodes"]["open"]["timezone"]
    doc["timezone"] = "Asia/Seoul"
    result = await runner(prompts).run(doc, FakeDriver([]), {"segment": "gold"})
    assert result.outcome.queue == "vip"
    doc["timezone"] = "UTC"     # 01:00 UTC: closed
    result = await runner(prompts).run(doc, FakeDriver([]), {"segment": "gold"})
    assert result.outcome.kind == "hangup"


def bank_calendar(**kw) -> Calendar:
    return Calendar("bank", "Asia/Seoul", {date(2026, 11, 23): "Bank day"},
                    (Hours(0, time(9), time(18)), Hours(1, time(9), time(18))), **kw)


@pytest.mark.parametrize("now, expected", [
    (MONDAY_10_SEOUL, "holiday"),                                           # closed day
    (datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc), "open"),            # Tue 10:00 KST
    (datetime(2026, 11, 24, 11, 0, tzinfo=timezone.utc), "closed"),         # Tue 20:00 KST
    (datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc), "closed"),          # Wed: no hours
])
async def test_branch_on_a_stored_calendar_by_name(prompts, now, expected) -> None:
    services = FakeServices(calendars={"bank": bank_calendar()})
    doc = flow("b", b={"type": "branch", "rules": [
        {"when": {"holiday": "bank"}, "target": "holiday"},
        {"when": {"open": "bank"}, "target": "open"}], "else": "closed"},
        holiday={"type": "enqueue", "queue": "holiday"}, open={"type": "enqueue", "queue": "open"},
        closed={"type": "enqueue", "queue": "closed"})
    result = await runner(prompts, services, now=now).run(doc, FakeDriver([]), {})
    assert result.outcome.queue == expected


async def test_branch_on_an_unknown_calendar_is_not_a_holiday(prompts) -> None:
    doc = flow("b", b={"type": "branch", "rules": [{"when": {"holiday": "nope"}, "target": "h"}],
                       "else": "x"}, h={"type": "enqueue", "queue": "h"}, x={"type": "enqueue", "queue": "x"})
    result = await runner(prompts, FakeServices()).run(doc, FakeDriver([]), {})
    assert result.outcome.queue == "x"


def test_branch_validation() -> None:
    doc = hours_flow(timezone="Mars/Olympus", holidays=["someday"],
                     rules=[{"when": {"weekday": ["funday"]}, "target": "done"}, {"if": 1}])
    assert [(e.node_id, e.reason) for e in check(doc)] == [
        ("open", "rule 0 when.weekday must be a list of mon, tue, wed, thu, fri, sat, sun"),
        ("open", "rule 1 must be {when, target}"), ("open", "unknown time zone 'Mars/Olympus'"),
        ("open", "holiday 'someday' is not YYYY-MM-DD"),
        ("vip", "unreachable from the start node")]


# ------------------------------------------------------------------ set_language, transfer

async def test_set_language_switches_voice_and_routing_attribute(prompts) -> None:
    doc = flow("lang", lang={"type": "set_language", "variable": "customer_language", "next": "hi"},
               hi={"type": "say", "text": {"en": "Hello", "ko": "안녕하세요"}, "next": "q"},
               q={"type": "enqueue", "queue": "general"})
    doc["nodes"]["hi"] = {"type": "say", "prompt": {"text": {"en": "Hello", "ko": "안녕하세요"}},
                          "next": "q"}
    synth = ToneSynthesizer()
    cache = PromptCache(prompts.directory, "en-us", 160, synthesizer=synth)
    result = await FlowRunner(cache).run(doc, FakeDriver([]), {"customer_language": "ko"})
    assert synth.calls == [("안녕하세요", "ko", 160)]
    assert result.outcome.attributes["language"] == "ko"


async def test_set_language_keeps_language_when_variable_unset(prompts) -> None:
    doc = flow("lang", lang={"type": "set_language", "variable": "customer_language", "next": "q"},
               q={"type": "enqueue", "queue": "general"})
    result = await runner(prompts).run(doc, FakeDriver([]), {})
    assert result.variables["language"] == "en-us"


def test_set_language_validation_and_prerender_languages() -> None:
    bad = flow("l", l={"type": "set_language", "language": "korean!", "next": "done"})
    assert [e.reason for e in check(bad)] == [
        "language 'korean!' is not a language tag such as 'ko' or 'en-us'"]
    good = flow("l", l={"type": "set_language", "language": "ko", "next": "s"},
                s={"type": "say", "text": "네", "next": "done"})
    good["language"] = "en-us"
    assert sorted(parse(good).static_prompts()) == [("네", "en-us"), ("네", "ko")]


class ConnectingDriver(FakeDriver):
    """A FakeDriver that can bridge the caller to another endpoint, with a canned result."""

    def __init__(self, result: str) -> None:
        super().__init__([])
        self.result, self.connected = result, []

    async def connect(self, endpoint: str, *, timeout: int, label: str) -> str:
        self.connected.append((endpoint, timeout, label))
        return self.result


def transfer_flow(**node) -> dict:
    node = {"type": "transfer", "prompt": "Transferring.", **node}
    return flow("t", t=node, sorry={"type": "enqueue", "queue": "general"})


async def test_transfer_to_a_queue_hands_the_call_to_the_acd(prompts) -> None:
    result = await runner(prompts).run(transfer_flow(queue="billing", fallback="sorry"),
                                       FakeDriver([]), {})
    assert (result.outcome.kind, result.outcome.queue, result.outcome.reason) == (
        "enqueue", "billing", "transfer")


async def test_transfer_to_an_agent_bridges_or_falls_back(prompts) -> None:
    driver = ConnectingDriver("completed")
    result = await runner(prompts).run(transfer_flow(agent="1002", fallback="sorry", timeout=15),
                                       driver, {})
    assert driver.connected == [("PJSIP/1002", 15, "agent 1002")]
    assert (result.outcome.kind, result.outcome.target) == ("transfer", "agent:1002")
    busy = ConnectingDriver("busy")
    result = await runner(prompts).run(transfer_flow(agent="1002", fallback="sorry"), busy, {})
    assert result.outcome.queue == "general" and result.variables["transfer_result"] == "busy"


async def test_transfer_to_a_route_dials_only_the_configured_number(prompts) -> None:
    services = FakeServices(routes={"fraud_desk": "PJSIP/+18005550100@out-carrier"})
    driver = ConnectingDriver("completed")
    doc = transfer_flow(route="fraud_desk", fallback="sorry")
    result = await runner(prompts, services).run(doc, driver, {"dest": "900442079460000"})
    assert [c[0] for c in driver.connected] == ["PJSIP/+18005550100@out-carrier"]
    assert result.outcome.target == "route:fraud_desk"
    unknown = ConnectingDriver("completed")
    doc = transfer_flow(route="elsewhere", fallback="sorry")
    result = await runner(prompts, services).run(doc, unknown, {})
    assert unknown.connected == [] and result.outcome.queue == "general"


async def test_transfer_without_connect_capability_falls_back(prompts) -> None:
    result = await runner(prompts).run(transfer_flow(agent="1002", fallback="sorry"),
                                       FakeDriver([]), {})
    assert result.outcome.queue == "general"


@pytest.mark.parametrize("node, reason", [
    ({"route": "{dest}", "fallback": "sorry"},
     "route '{dest}' must be a fixed name, not built from input"),
    ({"agent": "{digits}", "fallback": "sorry"},
     "agent '{digits}' must be a fixed extension (digits), not built from input"),
    ({"agent": "PJSIP/trunk", "fallback": "sorry"},
     "agent 'PJSIP/trunk' must be a fixed extension (digits), not built from input"),
    ({"target": "PJSIP/{extension}"}, "needs exactly one of queue, agent, route"),
    ({"route": "fraud_desk"}, "missing target fallback"),
    ({"queue": "billing", "agent": "1002", "fallback": "sorry"},
     "needs exactly one of queue, agent, route"),
])
def test_transfer_destination_is_fixed_in_the_flow(node, reason) -> None:
    """Toll fraud: no destination can come from a variable, i.e. from what a caller keyed."""
    doc = transfer_flow(**node)
    assert reason in [e.reason for e in check(doc)]


# ------------------------------------------------------------------ survey

async def test_survey_by_keys(prompts) -> None:
    driver = FakeDriver(["10#"])
    result = await runner(prompts).run(load_builtin("survey"), driver, {})
    assert result.variables["nps"] == 10 and result.variables["survey"] == {"nps": 10}
    assert driver.hung_up and driver.reads[0]["max_digits"] == 2


def _survey(speech: bool) -> dict:
    doc = copy.deepcopy(load_builtin("survey"))
    doc["nodes"]["nps"]["speech"] = speech
    return doc


async def test_survey_out_of_range_then_voice(prompts) -> None:
    driver = FakeDriver(["42", Say("칠")], speech=True)
    result = await runner(prompts).run(_survey(True), driver, {"language": "ko"})
    assert result.variables["nps"] == 7
    assert [i["kind"] for i in result.inputs] == ["dtmf", "speech"]


async def test_built_in_survey_takes_keys_only(prompts) -> None:
    """A caller's remark is never a score: the built-in survey does not listen."""
    driver = FakeDriver(["8"], speech=True)
    result = await runner(prompts).run(_survey(False), driver, {"language": "ko"})
    assert result.variables["nps"] == 8 and [i["kind"] for i in result.inputs] == ["dtmf"]
    assert load_builtin("survey")["nodes"]["nps"]["speech"] is False


async def test_survey_without_answer_ends_without_score(prompts) -> None:
    result = await runner(prompts).run(load_builtin("survey"), FakeDriver(["", ""]), {})
    assert "nps" not in result.variables and result.outcome.kind == "hangup"


async def test_caller_hangs_up_during_survey(prompts) -> None:
    result = await runner(prompts).run(load_builtin("survey"), FakeDriver([HangsUp()]), {})
    assert result.outcome.reason == "caller"


# ------------------------------------------------------------------ korean demo flow

async def test_korean_demo_flow(prompts) -> None:
    services = FakeServices(customers={"5551234": ADA})
    driver = FakeDriver([Say("아니요"), Say("분실")], speech=True)
    result = await runner(prompts, services).run(load_builtin("main_ko"), driver, {})
    assert result.outcome.queue == "cards" and result.outcome.attributes["language"] == "ko"
    assert result.path == ["profile", "greet_known", "wants_agent", "menu", "to_cards"]
    assert driver.grammars == [["네", "예", "아니요", "아니오"],
                               ["잔액", "일", "분실", "카드", "이", "상담원", "상담사", "영"]]
    assert driver.languages == ["ko", "ko"]


async def test_korean_demo_flow_barge_in_key(prompts) -> None:
    driver = FakeDriver([Barge("1")], speech=True)
    result = await runner(prompts, FakeServices()).run(load_builtin("main_ko"), driver, {})
    assert result.outcome.queue == "general" and result.variables["wants_agent"] == "yes"


# ------------------------------------------------------------------ confidence: confirm or re-prompt

def confirm_flow(**extra) -> dict:
    return flow("menu", menu={"type": "menu", "prompt": "잔액 또는 분실?", "min_confidence": 0.5,
                              "confirm_below": 0.8, "no_match": "다시 말씀해 주세요.",
                              "options": [{"key": "1", "phrases": ["잔액"], "target": "done"},
                                          {"key": "2", "phrases": ["분실"], "target": "failed"}],
                              "fallback": "failed", **extra})


async def test_sure_answer_is_taken_without_confirmation(prompts) -> None:
    driver = FakeDriver([Say("잔액", 0.95)], speech=True)
    result = await runner(prompts).run(confirm_flow(), driver, {"language": "ko"})
    assert result.outcome.kind == "hangup" and len(driver.grammars) == 1


async def test_unsure_answer_confirmed_by_voice(prompts) -> None:
    driver = FakeDriver([Say("잔액", 0.6), Say("네", 0.9)], speech=True)
    result = await runner(prompts).run(confirm_flow(), driver, {"language": "ko"})
    assert result.outcome.kind == "hangup"
    assert driver.grammars[1] == ["네", "예", "아니요", "아니오"]
    assert [i["node"] for i in result.inputs] == ["menu", "menu.confirm"]
    spoken = prompts.synthesizer.calls[-1][0]
    assert spoken.startswith("잔액, 맞습니까?")


async def test_unsure_answer_denied_reprompts_with_no_match(prompts) -> None:
    driver = FakeDriver([Say("잔액", 0.6), "2", Say("분실", 0.9)], speech=True)
    result = await runner(prompts).run(confirm_flow(), driver, {"language": "ko"})
    assert result.outcome.queue == "general"          # 분실 -> failed
    assert [i["value"] for i in result.inputs] == ["잔액", "2", "분실"]
    assert "다시 말씀해 주세요." in [call[0] for call in prompts.synthesizer.calls]


async def test_too_unsure_answer_is_no_match(prompts) -> None:
    driver = FakeDriver([Say("잔액", 0.3), "1"], speech=True)
    result = await runner(prompts).run(confirm_flow(), driver, {"language": "ko"})
    assert result.outcome.kind == "hangup" and len(driver.grammars) == 2
    assert [i["kind"] for i in result.inputs] == ["speech", "dtmf"]


async def test_keys_are_never_confirmed_and_custom_confirm_prompt(prompts) -> None:
    doc = confirm_flow(confirm="{heard}? 1번은 예.")
    driver = FakeDriver(["1"], speech=True)
    assert (await runner(prompts).run(doc, driver, {"language": "ko"})).outcome.kind == "hangup"
    driver = FakeDriver([Say("잔액", 0.7), "1"], speech=True)
    assert (await runner(prompts).run(doc, driver, {"language": "ko"})).outcome.kind == "hangup"
    assert prompts.synthesizer.calls[-1][0] == "잔액? 1번은 예."


def test_confirm_below_validation() -> None:
    assert [(e.node_id, e.reason) for e in check(confirm_flow(confirm_below=1.5))] == [
        ("menu", "confirm_below must be within 0..1, got 1.5")]


async def test_speech_timing_goes_into_the_journey(prompts) -> None:
    from ivr.driver import Recognition

    class TimedDriver(FakeDriver):
        async def listen(self, grammar, *, timeout, barge_in_sounds, language=None):
            return Recognition("잔액", 0.99, {"barge_in_ms": 101.0, "eos_ms": 470.0})

    result = await runner(prompts).run(confirm_flow(), TimedDriver([], speech=True), {"language": "ko"})
    assert result.inputs[0]["timing"] == {"barge_in_ms": 101.0, "eos_ms": 470.0}
    assert result.journey()["inputs"][0]["timing"]["eos_ms"] == 470.0

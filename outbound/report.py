"""Campaign results: per contact (outcome, attempts, last reply) and per campaign (totals,
reach rate, abandon rate over 30 days, agent minutes of the calls handed to agents)."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select

from callpilot.infra.db.campaigns import CampaignAttempt, CampaignContact
from callpilot.infra.db.models import CallRecord
from outbound.model import ContactOutcome
from outbound.policy.pacing import abandon_rate
from outbound.store import CampaignStore, channel_id

REACHED = {ContactOutcome.REACHED.value, ContactOutcome.CONFIRMED.value,
           ContactOutcome.TRANSFERRED.value, ContactOutcome.OPTED_OUT.value}


def build(store: CampaignStore, name: str, now: datetime) -> dict:
    campaign = store.get(name)
    with store.sessions() as s:
        contacts = list(s.scalars(select(CampaignContact).where(CampaignContact.campaign_id == campaign.id)
                                  .order_by(CampaignContact.id)))
        transferred = [channel_id(i) for i in s.scalars(select(CampaignAttempt.id).where(
            CampaignAttempt.campaign_id == campaign.id,
            CampaignAttempt.outcome == ContactOutcome.TRANSFERRED.value))]
        talk = s.execute(select(CallRecord.answered_at, CallRecord.ended_at).where(
            CallRecord.id.in_(transferred))).all() if transferred else []
    live, dropped = store.abandon_counts(campaign.id, now)
    outcomes = Counter(c.outcome or "pending" for c in contacts)
    tried = sum(1 for c in contacts if c.attempts > 0)
    agent_seconds = sum((end - start).total_seconds() for start, end in talk if start and end)
    return {
        "campaign": campaign.name, "purpose": campaign.purpose, "state": campaign.state,
        "mode": campaign.mode,
        "totals": {"contacts": len(contacts), "tried": tried,
                   "attempts": sum(c.attempts for c in contacts), "outcomes": dict(sorted(outcomes.items())),
                   "reach_rate": round(sum(outcomes[o] for o in REACHED) / tried, 4) if tried else 0.0,
                   "live_answers_30d": live, "abandoned_30d": dropped,
                   "abandon_rate_30d": round(abandon_rate(live, dropped), 4),
                   "agent_minutes": round(agent_seconds / 60, 2)},
        "contacts": [{"phone": c.phone, "name": c.name, "status": c.status, "outcome": c.outcome,
                      "attempts": c.attempts, "last_reply": c.last_reply,
                      "next_attempt_at": c.next_attempt_at.isoformat() if c.next_attempt_at else None}
                     for c in contacts],
    }


def format_text(report: dict) -> str:
    t = report["totals"]
    lines = [f"campaign {report['campaign']} ({report['state']}, {report['mode']}): {report['purpose']}",
             f"  contacts {t['contacts']}, tried {t['tried']}, attempts {t['attempts']}, "
             f"reach rate {t['reach_rate']:.1%}, abandon rate {t['abandon_rate_30d']:.2%} "
             f"({t['abandoned_30d']} of {t['live_answers_30d']} live answers, 30 days), "
             f"agent minutes {t['agent_minutes']}",
             "  outcomes: " + ", ".join(f"{k} {v}" for k, v in t["outcomes"].items())]
    for c in report["contacts"]:
        lines.append(f"  {c['phone']:<16} {c['name'][:20]:<20} {c['outcome'] or c['status']:<12} "
                     f"attempts {c['attempts']}  reply {c['last_reply'] or '-'}")
    return "\n".join(lines)

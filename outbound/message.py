"""What a campaign call says: the message from the template and the contact's values, and the
short fixed messages (thanks, opted out, safe-harbor abandon message)."""
from __future__ import annotations

from dataclasses import dataclass

MENU_HINT = "Press 1 to confirm. Press 2 to talk to an agent. Press 3 to hear this again. " \
            "Press 9 to stop these calls."
# what each reply's key does, as the menu hint says it
HINTS = {"confirm": "to confirm", "agent": "to talk to an agent", "repeat": "to hear this again",
         "opt_out": "to stop these calls"}


def menu_hint(replies: dict) -> str:
    """``{"1": "confirm", ...}`` -> "Press 1 to confirm. ..." (keys only; spoken phrases are
    not announced).  The default replies give :data:`MENU_HINT`."""
    return " ".join(f"Press {key} {HINTS[reply]}." for key, reply in replies.items()
                    if len(key) == 1 and not key.isalpha() and reply in HINTS)


class _Missing(dict):
    def __missing__(self, key: str) -> str:      # the import refuses rows missing a variable
        return ""


def render(template: str, name: str, variables: dict) -> str:
    return template.format_map(_Missing({**variables, "name": name}))


@dataclass(frozen=True)
class Texts:
    """Every sentence one campaign speaks; each distinct text is rendered once by TTS."""
    message: str
    voicemail: str
    thanks: str
    opted_out: str
    abandoned: str
    goodbye: str = "Goodbye."


def texts_for(template: str, voicemail_template: str, callback_number: str, caller_name: str,
              name: str, variables: dict, has_menu: bool, replies: dict | None = None) -> Texts:
    message = render(template, name, variables)
    hint = menu_hint(replies) if replies else MENU_HINT
    number = " ".join(callback_number) if callback_number else "the number on your statement"
    return Texts(
        message=f"{message} {hint}" if has_menu else message,
        voicemail=render(voicemail_template, name, variables) if voicemail_template else "",
        thanks="Thank you. Your answer has been recorded. Goodbye.",
        opted_out="You will not receive these calls again. Goodbye.",
        # TSR 16 CFR 310.4(b)(4)(iii): the seller's name and a number to call back
        abandoned=f"This is {caller_name}. We are sorry we missed you. Please call us back at {number}.",
    )

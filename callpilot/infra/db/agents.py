"""Agent SIP credentials: only the digest hash is stored, never the password."""
from __future__ import annotations

import hashlib

SIP_REALM = "callpilot"


def sip_md5_cred(ext: str, password: str, realm: str = SIP_REALM) -> str:
    """md5(``ext:realm:password``) hex, as PJSIP's md5 digest credential expects."""
    return hashlib.md5(f"{ext}:{realm}:{password}".encode()).hexdigest()

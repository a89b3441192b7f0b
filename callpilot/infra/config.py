"""One typed configuration for every CallPilot process.

Sources, later wins: built-in defaults, a TOML file (``--config`` or ``CALLPILOT_CONFIG``),
then ``CALLPILOT_*`` environment variables.  Secrets (ARI password, AMI secret) are never
defaults: they are generated once per install into ``<state_dir>/secrets.toml`` (mode 0600).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("var")
DEFAULT_ROOTFS = Path.home() / ".cache" / "callpilot" / "asterisk-rootfs"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass
class AsteriskConfig:
    binary: str | None = None          # None: system asterisk if on PATH, else the rootfs
    rootfs: Path = DEFAULT_ROOTFS      # Debian sid rootfs built by mmdebstrap, cached
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    trunk_ips: list[str] = field(default_factory=lambda: ["127.0.0.2"])
    ari_port: int = 8088
    # Where serve reaches ARI (REST and events); "" = Asterisk's own listener on ari_port.
    # Tests and bench point it at a fault-injecting proxy (testkit/ari_faults.py).
    ari_url: str = ""
    ami_port: int = 5038
    rtp_start: int = 10000
    rtp_end: int = 10999
    app_name: str = "callpilot"
    # DID -> flow name, answered by the Stasis app; agi_dids run the flow over FastAGI.
    dids: dict[str, str] = field(default_factory=lambda: {"800": "main"})
    agi_dids: dict[str, str] = field(default_factory=lambda: {"801": "main"})
    # DID -> queue: straight into the ACD without IVR (a hotline, a VIP line)
    queue_dids: dict[str, str] = field(default_factory=dict)
    agent_qualify_seconds: int = 0     # OPTIONS ping to agent phones; 0 = off
    # DID that reaches a plain app_queue queue "bench" (the benchmark baseline); "" = none.
    queue_bench_did: str = ""
    # DID answered then sent straight to the ACD queue "bench" (Stasis enqueue, no IVR),
    # the CallPilot side of the same benchmark; "" = none.
    acd_bench_did: str = ""
    # carrier trunks for outbound calls: name -> "host:port".  Rendered as PJSIP endpoint
    # "out-<name>" that nothing inbound can match; only serve dials through it, and only the
    # fixed numbers of [routes].
    outbound_trunks: dict[str, str] = field(default_factory=dict)


@dataclass
class AcdConfig:
    ring_timeout: int = 15             # seconds an agent phone rings before the next agent
    wrapup_seconds: int = 5
    general_queue: str = "general"     # where the IVR sends callers it could not route
    # age-band lower bounds: [25, 35, 45, 55] gives <25, 25-34, 35-44, 45-54, 55+
    age_bands: list[int] = field(default_factory=lambda: [25, 35, 45, 55])


@dataclass
class Secrets:
    ari_user: str = "callpilot"
    ari_password: str = ""
    ami_user: str = "callpilot"
    ami_secret: str = ""


@dataclass
class Config:
    state_dir: Path = DEFAULT_STATE_DIR
    database_url: str = ""             # default: sqlite file in state_dir
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # the admin web is reached over HTTPS (a TLS proxy in front): session cookie marked Secure
    web_behind_tls: bool = False
    tts_voice: str = "en-us"
    tts_rate: int = 160
    # Vosk model directory for speech menus ("" = keys only); "ko:/path" names its language
    speech_model: str = ""
    # allow-listed outbound routes a flow's transfer node may name: name -> {number, trunk}.
    # The number is fixed here (never from caller input); trunk names asterisk.outbound_trunks.
    routes: dict[str, dict[str, str]] = field(default_factory=dict)
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    acd: AcdConfig = field(default_factory=AcdConfig)
    secrets: Secrets = field(default_factory=Secrets)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'callpilot.infra.db'}"

    @property
    def asterisk_dir(self) -> Path:
        """Runtime tree of the Asterisk instance: etc, run, log, lib, spool."""
        return self.state_dir.resolve() / "asterisk"

    @property
    def prompts_dir(self) -> Path:
        """Rendered TTS prompts; Asterisk reads them from the same absolute path."""
        return self.state_dir.resolve() / "prompts"

    @property
    def ari_url(self) -> str:
        """Asterisk's own ARI/HTTP listener: always loopback, whatever address SIP uses."""
        return f"http://127.0.0.1:{self.asterisk.ari_port}"

    @property
    def ari_client_url(self) -> str:
        """Where serve's ARI clients connect: ``asterisk.ari_url`` if set, else Asterisk's."""
        return self.asterisk.ari_url.rstrip("/") or self.ari_url


# Environment variables that override single keys: NAME -> (section or None, key).
_ENV_KEYS: dict[str, tuple[str | None, str]] = {
    "CALLPILOT_STATE_DIR": (None, "state_dir"),
    "CALLPILOT_DATABASE_URL": (None, "database_url"),
    "CALLPILOT_AGI_PORT": (None, "agi_port"),
    "CALLPILOT_WEB_PORT": (None, "web_port"),
    "CALLPILOT_WEB_BEHIND_TLS": (None, "web_behind_tls"),
    "CALLPILOT_SPEECH_MODEL": (None, "speech_model"),
    "CALLPILOT_ASTERISK_BINARY": ("asterisk", "binary"),
    "CALLPILOT_ASTERISK_ROOTFS": ("asterisk", "rootfs"),
    "CALLPILOT_SIP_PORT": ("asterisk", "sip_port"),
    "CALLPILOT_ARI_PORT": ("asterisk", "ari_port"),
    "CALLPILOT_ARI_URL": ("asterisk", "ari_url"),
    "CALLPILOT_AMI_PORT": ("asterisk", "ami_port"),
    "CALLPILOT_RTP_START": ("asterisk", "rtp_start"),
    "CALLPILOT_RTP_END": ("asterisk", "rtp_end"),
    "CALLPILOT_RING_TIMEOUT": ("acd", "ring_timeout"),
    "CALLPILOT_WRAPUP_SECONDS": ("acd", "wrapup_seconds"),
}


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Build the config from defaults, the TOML file and the environment; load secrets."""
    env = dict(os.environ if env is None else env)
    path = path or env.get("CALLPILOT_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        raw = _read_toml(Path(path))
    for name, (section, key) in _ENV_KEYS.items():
        if name in env:
            (raw.setdefault(section, {}) if section else raw)[key] = env[name]
    config = _build(Config, raw, "")
    _validate(config)
    config.secrets = load_secrets(config.state_dir)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(f"unknown config key(s) {sorted(unknown)} in [{where or 'top'}]")
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(fields[name], value, f"{where}.{name}".lstrip("."))
    return cls(**values)


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    nested = {"AsteriskConfig": AsteriskConfig, "AcdConfig": AcdConfig, "Secrets": Secrets}
    if kind in nested:
        if not isinstance(value, dict):
            raise ConfigError(f"[{where}] must be a table")
        return _build(nested[kind], value, where)
    try:
        if kind == "int":
            return int(value)
        if kind == "bool" and isinstance(value, str):
            return _boolean(value)
        if kind == "Path":
            return Path(value).expanduser()
        if kind == "list[str]" and isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if kind == "list[int]":
            items = value.split(",") if isinstance(value, str) else value
            return [int(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {kind}") from exc
    return value


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(value)
    return text in ("1", "true", "yes", "on")


def _validate(config: Config) -> None:
    a = config.asterisk
    ports = {"sip_port": a.sip_port, "ari_port": a.ari_port, "ami_port": a.ami_port,
             "agi_port": config.agi_port, "web_port": config.web_port}
    for name, port in ports.items():
        if not 1 <= port <= 65535:
            raise ConfigError(f"{name}: {port} is not a TCP/UDP port")
    if len(set(ports.values())) != len(ports):
        raise ConfigError(f"ports must differ: {ports}")
    bands = config.acd.age_bands
    if not bands or any(b <= a_ for a_, b in zip(bands, bands[1:])) or bands[0] <= 0:
        raise ConfigError(f"acd.age_bands {bands}: increasing positive ages, e.g. [25, 35, 45, 55]")
    if not a.rtp_start < a.rtp_end:
        raise ConfigError("asterisk.rtp_start must be below asterisk.rtp_end")
    all_dids = list(a.dids) + list(a.agi_dids) + list(a.queue_dids)
    for did in all_dids:
        if not did.isdigit():
            raise ConfigError(f"DID {did!r} must be digits only")
    if len(set(all_dids)) != len(all_dids):
        raise ConfigError(f"a DID is configured twice across dids/agi_dids/queue_dids: {all_dids}")
    for name in list(a.dids.values()) + list(a.agi_dids.values()) + list(a.queue_dids.values()):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ConfigError(f"flow or queue name {name!r}: letters, digits, _ and - only")
    for key in ("queue_bench_did", "acd_bench_did"):
        if getattr(a, key) and not str(getattr(a, key)).isdigit():
            raise ConfigError(f"asterisk.{key} {getattr(a, key)!r} must be digits only")
    if a.ari_url:
        _validate_ari_url(a.ari_url)
    _validate_routes(config)


def _validate_ari_url(url: str) -> None:
    """An http(s) base URL with a host and nothing after it: serve appends ``/ari/...``, and
    credentials live in secrets.toml, never in a URL."""
    why = f"asterisk.ari_url {url!r}: an http(s) base URL such as http://127.0.0.1:8089"
    try:
        parts = urlsplit(url)
        port = parts.port   # raises on a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigError(f"{why} ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(why)
    if parts.username or parts.password:
        raise ConfigError(f"{why}, without credentials (they live in secrets.toml)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{why}, with no path, query or fragment (serve appends /ari/...)")
    if port == 0:
        raise ConfigError(f"{why} (port 0)")


def _validate_routes(config: Config) -> None:
    trunks = config.asterisk.outbound_trunks
    for name, address in trunks.items():
        if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", name):
            raise ConfigError(f"asterisk.outbound_trunks: name {name!r}: letters, digits, _ only")
        if not isinstance(address, str) or not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?", address):
            raise ConfigError(f"asterisk.outbound_trunks.{name}: {address!r} is not host[:port]")
    for name, route in config.routes.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ConfigError(f"routes: name {name!r}: letters, digits, _ and - only")
        if not isinstance(route, dict) or set(route) != {"number", "trunk"}:
            raise ConfigError(f"routes.{name} must be {{number, trunk}}")
        if not re.fullmatch(r"\+?[0-9]{3,20}", str(route["number"])):
            raise ConfigError(f"routes.{name}.number {route['number']!r}: digits, optional leading +")
        if route["trunk"] not in trunks:
            raise ConfigError(f"routes.{name}.trunk {route['trunk']!r} is not in asterisk.outbound_trunks")


def outbound_endpoint(trunk: str) -> str:
    """The PJSIP endpoint rendered for an outbound trunk."""
    return f"out-{trunk}"


def route_dial_strings(config: Config) -> dict[str, str]:
    """route name -> ``PJSIP/<number>@out-<trunk>``: the only outside numbers serve dials."""
    return {name: f"PJSIP/{r['number']}@{outbound_endpoint(r['trunk'])}"
            for name, r in config.routes.items()}


def load_secrets(state_dir: Path) -> Secrets:
    """Read ``secrets.toml``, generating missing secrets once (file mode 0600)."""
    path = state_dir / "secrets.toml"
    data: dict[str, str] = {}
    if path.exists():
        data = tomllib.loads(path.read_text())
    changed = False
    for key in ("ari_password", "ami_secret"):
        if not data.get(key):
            data[key] = secrets.token_urlsafe(24)
            changed = True
    if changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f'{k} = "{v}"\n' for k, v in sorted(data.items()))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        logger.info("generated secrets in %s", path)
    return Secrets(**{k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(Secrets)}})


def to_toml(config: Config) -> str:
    """The config as a TOML file (secrets excluded: they live in secrets.toml)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            if f.name != "secrets":
                tables.append((f.name, value))
        else:
            lines.append(_toml_line(f.name, value))
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines.extend(_toml_line(k.name, getattr(table, k.name)) for k in dataclasses.fields(table))
    return "\n".join(line for line in lines if line) + "\n"


def _toml_line(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{key} = {value}"
    if isinstance(value, list):
        return f"{key} = [{', '.join(_quote(v) for v in value)}]"
    if isinstance(value, dict):
        return f"{key} = {_inline_table(value)}"
    return f"{key} = {_quote(value)}"


def _inline_table(table: dict) -> str:
    inner = ", ".join(f"{_quote(k)} = {_inline_table(v) if isinstance(v, dict) else _quote(v)}"
                      for k, v in table.items())
    return f"{{ {inner} }}"


def _quote(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

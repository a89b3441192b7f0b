"""One typed configuration for every CallPilot process.

Sources, later wins: built-in defaults, a TOML file (``--config`` or ``CALLPILOT_CONFIG``),
then ``CALLPILOT_*`` environment variables.  Secrets (ARI password, AMI secret) are never
defaults: they are generated once per install into ``<state_dir>/secrets.toml`` (mode 0600).
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import re
import secrets
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("var")
DEFAULT_ROOTFS = Path.home() / ".cache" / "callpilot" / "asterisk-rootfs"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why (one line)."""


# --- typed values: pydantic validates the dataclasses below at load ----------------------


def _whole_number(value: Any) -> Any:
    """Integers, or digit strings (environment variables); never true/false or 5060.9."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("a whole number, not true/false or a fraction")
    return value


def _comma_list(value: Any) -> Any:
    """``"a, b"`` (an environment variable) -> ``["a", "b"]``; lists stay lists."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _ip_address(value: str) -> str:
    ipaddress.ip_address(value)          # ValueError names the value
    return value


def expand_home(path: str | Path) -> Path:
    """``~/x`` -> the home directory's ``x``; ``~nobody-here/x`` (no such user) is a
    ValueError that names the path, not a ``RuntimeError`` from pathlib (config settings and
    the speech engines' model paths)."""
    try:
        return Path(path).expanduser()
    except RuntimeError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from None


Int = Annotated[int, BeforeValidator(_whole_number)]
Port = Annotated[Int, Field(ge=1, le=65535)]
Seconds = Annotated[Int, Field(ge=0, le=86400)]
IpList = Annotated[list[Annotated[str, AfterValidator(_ip_address)]], BeforeValidator(_comma_list),
                   Field(min_length=1)]
IntList = Annotated[list[Annotated[Int, Field(ge=1, le=150)]], BeforeValidator(_comma_list)]
DirPath = Annotated[Path, AfterValidator(expand_home)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Digits = Annotated[str, Field(pattern=r"^[0-9]{0,32}$")]
_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


@dataclass
class AsteriskConfig:
    __pydantic_config__ = _STRICT
    binary: str | None = None          # None: system asterisk if on PATH, else the rootfs
    rootfs: DirPath = DEFAULT_ROOTFS   # Debian sid rootfs built by mmdebstrap, cached
    sip_host: str = "127.0.0.1"
    sip_port: Port = 5060
    trunk_ips: IpList = field(default_factory=lambda: ["127.0.0.2"])
    ari_port: Port = 8088
    # Where serve reaches ARI (REST and events); "" = Asterisk's own listener on ari_port.
    # Tests and bench point it at a fault-injecting proxy (testkit/ari_faults.py).
    ari_url: str = ""
    # How serve's REST requests reach ARI: "auto" = over the events WebSocket when Asterisk
    # answers there (22.4+), else HTTP; "websocket" = only there; "http" (docs/decisions.md D26).
    ari_rest_transport: Annotated[str, Field(pattern=r"^(auto|websocket|http)$")] = "auto"
    ami_port: Port = 5038
    rtp_start: Port = 10000
    rtp_end: Port = 10999
    app_name: Name = "callpilot"
    # DID -> flow name, answered by the Stasis app; agi_dids run the flow over FastAGI.
    dids: dict[str, str] = field(default_factory=lambda: {"800": "main", "802": "main_ko"})
    agi_dids: dict[str, str] = field(default_factory=lambda: {"801": "main"})
    # DID -> queue: straight into the ACD without IVR (a hotline, a VIP line)
    queue_dids: dict[str, str] = field(default_factory=dict)
    agent_qualify_seconds: Seconds = 0  # OPTIONS ping to agent phones; 0 = off
    # DID that reaches a plain app_queue queue "bench" (the benchmark baseline); "" = none.
    queue_bench_did: Digits = ""
    # DID answered then sent straight to the ACD queue "bench" (Stasis enqueue, no IVR),
    # the CallPilot side of the same benchmark; "" = none.
    acd_bench_did: Digits = ""
    # DID answered then sent to the Stasis application "<app_name>-bare" that only
    # bench/acd/bare_ari.py runs (the floor of any ARI app, no ACD); "" = none.
    bare_bench_did: Digits = ""
    # the same for "<app_name>-raw" (bench/acd/bare_ari.py --raw: no ARI client at all)
    raw_bench_did: Digits = ""
    # carrier trunks for outbound calls: name -> "host:port".  Rendered as PJSIP endpoint
    # "out-<name>" that nothing inbound can match; only serve dials through it, and only the
    # fixed numbers of [routes].
    outbound_trunks: dict[str, str] = field(default_factory=dict)

    def queue_entry_dids(self) -> frozenset[str]:
        """DIDs whose calls enter an ACD queue as soon as they are answered (no flow first)."""
        return frozenset(self.queue_dids) | frozenset(d for d in (self.acd_bench_did,) if d)


@dataclass
class AcdConfig:
    __pydantic_config__ = _STRICT
    ring_timeout: Annotated[Int, Field(ge=1, le=600)] = 15   # seconds an agent phone rings
    wrapup_seconds: Annotated[Int, Field(ge=0, le=3600)] = 5
    # offers an agent's phone misses in a row (rang out, rejected, hung up before the bridge)
    # before the agent is paused "not responding"; an answered call starts the count again; 0 = off
    autopause_after: Annotated[Int, Field(ge=0, le=100)] = 3
    general_queue: Name = "general"    # where the IVR sends callers it could not route
    # age-band lower bounds: [25, 35, 45, 55] gives <25, 25-34, 35-44, 45-54, 55+
    age_bands: IntList = field(default_factory=lambda: [25, 35, 45, 55])
    # agents shared by several nodes on one database: held in the database before any node
    # rings them (acd.agent_holds), logged in / paused / logged out alike on every node
    # (acd.agent_presence); "auto" = on with PostgreSQL (the scale-out database), off with SQLite
    shared_agents: Literal["auto", "on", "off"] = "auto"
    # this node's name among the nodes on one database (each needs its own); "" = host name
    node: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,64}$")] = ""


@dataclass
class OutboundConfig:
    """Where campaign calls go: ``routes`` maps a number prefix ("+1212") to a carrier's
    ``host:port`` (longest prefix wins), ``default_route`` takes the rest ("" = no route:
    those contacts fail).  Calls leave through the PJSIP endpoint ``outbound``, which no
    inbound request can ever be matched to (docs/outbound.md)."""
    __pydantic_config__ = _STRICT
    routes: dict[str, str] = field(default_factory=dict)
    default_route: str = ""
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    # claimed_by on attempts; "" = the node's name (acd.node, else the host name), which
    # each node on one database needs of its own (D43)
    node: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,64}$")] = ""


@dataclass
class CallbacksConfig:
    """Callbacks (issue 12): numbers, retries, expiry, offer thresholds, the callback route."""
    __pydantic_config__ = _STRICT
    default_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "KR"   # numbers keyed without +
    # countries a callback may dial (toll-fraud guard); empty = the default country only
    allowed_countries: Annotated[list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]],
                                 BeforeValidator(_comma_list)] = field(default_factory=list)
    max_attempts: Annotated[Int, Field(ge=1, le=20)] = 3   # customer attempts before it fails
    retry_seconds: Seconds = 300           # after no answer, busy, unknown after a crash
    voicemail_retry_seconds: Seconds = 900  # after an answering machine
    expiry_seconds: Annotated[Int, Field(ge=60, le=7 * 86400)] = 4 * 3600   # then closed as expired
    customer_ring_seconds: Annotated[Int, Field(ge=5, le=120)] = 30
    offer_after_seconds: Seconds = 120     # offer when the estimated wait exceeds this (0 = never)
    offer_key: Annotated[str, Field(pattern=r"^[0-9*#]$")] = "5"   # asks for a callback at any time
    cancel_key: Annotated[str, Field(pattern=r"^[0-9*#]$")] = "9"  # on the callback call: cancel it
    customer_first_queues: Annotated[list[Name], BeforeValidator(_comma_list)] = field(default_factory=list)
    # the dedicated outbound route callbacks are dialled through: a pjsip endpoint whose only
    # contact is the carrier's ``trunk_uri`` (host:port); "" = no callback route
    trunk_endpoint: Name = "callback-trunk"
    trunk_uri: Annotated[str, Field(pattern=r"^([A-Za-z0-9.-]+:[0-9]{1,5})?$")] = ""
    caller_id: Digits = "800"              # the number customers see on a callback
    # per-queue offer threshold, seconds of estimated wait (default: offer_after_seconds)
    offer_after: dict[Name, Seconds] = field(default_factory=dict)
    api_rate_limit: str = "10 per minute"  # per token, on the web "call me" endpoint (Flask-Limiter)


@dataclass
class Secrets:
    __pydantic_config__ = _STRICT
    ari_user: str = "callpilot"
    ari_password: str = ""
    ami_user: str = "callpilot"
    ami_secret: str = ""


@dataclass
class Config:
    __pydantic_config__ = _STRICT
    state_dir: DirPath = DEFAULT_STATE_DIR
    database_url: str = ""             # default: sqlite file in state_dir
    agi_host: str = "127.0.0.1"
    agi_port: Port = 4573
    web_host: str = "127.0.0.1"
    web_port: Port = 8080
    # the admin web is reached over HTTPS (a TLS proxy in front): session cookie marked Secure
    web_behind_tls: bool = False
    # waitress threads of `callpilot web`, and how many of them open live pages (wallboard,
    # agent page: one event stream each) may hold; the rest always answer other requests
    web_threads: Annotated[Int, Field(ge=4, le=512)] = 24
    web_live_streams: Annotated[Int, Field(ge=1, le=500)] = 16
    # serve's Prometheus endpoint http://metrics_host:metrics_port/metrics (no auth: keep it
    # on loopback or behind a proxy); port 0 = none
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[Int, Field(ge=0, le=65535)] = 9464
    tts_voice: str = "en-us"
    tts_rate: Annotated[Int, Field(ge=80, le=450)] = 160
    # Speech engine per language (ivr.speech.engines): "pocketsphinx" (packaged en-us),
    # "vosk" (the packaged vosk-model-<lang>), "vosk:/path" (a downloaded model), "off".
    speech: dict[str, str] = field(default_factory=lambda: {"en": "pocketsphinx", "ko": "vosk"})
    # An extra Vosk model directory ("ko:/path" names its language); "" = none
    speech_model: str = ""
    # Models load in the background once serve runs (D40); a call's listens wait this long in
    # all for a model still loading, then ask by keys
    speech_load_wait: Annotated[Int, Field(ge=0, le=120)] = 5
    # allow-listed outbound routes a flow's transfer node may name: name -> {number, trunk}.
    # The number is fixed here (never from caller input); trunk names asterisk.outbound_trunks.
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)   # checked by _validate_routes
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    acd: AcdConfig = field(default_factory=AcdConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    secrets: Secrets = field(default_factory=Secrets)

    @property
    def node_name(self) -> str:
        """This node's name among the nodes on one database: ``acd.node``, else the host
        name (D43)."""
        return self.acd.node or socket.gethostname()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'callpilot.db'}"

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
    "CALLPILOT_METRICS_PORT": (None, "metrics_port"),
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


# Other CALLPILOT_* variables the project's tooling reads (not settings of this file).
TOOLING_ENV = frozenset({
    "CALLPILOT_CONFIG", "CALLPILOT_UID", "CALLPILOT_GID", "CALLPILOT_TOML", "CALLPILOT_EXTRAS",
    "CALLPILOT_QUEUE", "CALLPILOT_TEST_DATABASE_URL", "CALLPILOT_E2E_DATABASE",
    "CALLPILOT_PG_PORT", "CALLPILOT_SIPP", "CALLPILOT_KEEP_SIPP", "CALLPILOT_DUMPCAP",
    "CALLPILOT_WEB_BEHIND_TLS", "CALLPILOT_DEBUG", "CALLPILOT_UPDATE_SCREENSHOTS",
    "CALLPILOT_LOOP_LAG_INTERVAL"})   # serve's loop-lag ticker (callpilot.infra.loop_health)


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Build the config from defaults, the TOML file and the environment; load secrets.

    Every value is checked for type and range (ConfigError names the key); the state dir
    is created (mode 0700) and the SQLite database's directory must exist."""
    env = dict(os.environ if env is None else env)
    check_environment(env)
    path = path or env.get("CALLPILOT_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        raw = _read_toml(Path(path))
    for name, (section, key) in _ENV_KEYS.items():
        if name in env:
            table = raw.setdefault(section, {}) if section else raw
            if not isinstance(table, dict):
                raise ConfigError(f"[{section}] must be a table")
            table[key] = env[name]
    raw.pop("secrets", None)           # secrets live in <state_dir>/secrets.toml only
    config = _build(raw)
    _validate(config)
    prepare_state_dir(config.state_dir)
    _check_database_dir(config)
    config.secrets = load_secrets(config.state_dir)
    return config


def check_environment(env: dict[str, str]) -> None:
    """A CALLPILOT_* variable that is no setting: a near miss of one is an error (a typo
    would otherwise silently use the default), anything else a warning."""
    for name in sorted(n for n in env if n.startswith("CALLPILOT_")):
        if name in _ENV_KEYS or name in TOOLING_ENV:
            continue
        near = difflib.get_close_matches(name, [*_ENV_KEYS, *TOOLING_ENV], n=1, cutoff=0.8)
        if near and near[0] in _ENV_KEYS:
            raise ConfigError(f"unknown environment variable {name}; did you mean {near[0]}?")
        logger.warning("unknown environment variable %s ignored%s", name,
                       f"; did you mean {near[0]}?" if near else "")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.__class__.__name__}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


_ADAPTER = TypeAdapter(Config)


def _build(raw: dict[str, Any]) -> Config:
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top)"
    if error["type"] == "unexpected_keyword_argument":
        return f"unknown config key {where}"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a table"
    return f"{where}: {error['msg'].removeprefix('Value error, ')} (got {shown[:60]})"


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state dir (0700: it holds the database and the secrets)."""
    if state_dir.exists() and not state_dir.is_dir():
        raise ConfigError(f"state_dir {state_dir} exists and is not a directory")
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
    except OSError as exc:
        raise ConfigError(f"state_dir {state_dir} cannot be created: {exc.strerror}") from None


def _check_database_dir(config: Config) -> None:
    url = config.database_url
    if not url:
        return
    if not url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(f"database_url {url[:40]!r}: sqlite:///<file> or postgresql+psycopg://...")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        try:
            directory = expand_home(url.removeprefix("sqlite:///")).parent
        except ValueError as exc:
            raise ConfigError(f"database_url: {exc}") from None
        if not directory.is_dir():
            raise ConfigError(f"database_url: directory {directory} does not exist")


def _validate(config: Config) -> None:
    a = config.asterisk
    ports = {"sip_port": a.sip_port, "ari_port": a.ari_port, "ami_port": a.ami_port,
             "agi_port": config.agi_port, "web_port": config.web_port}
    if config.metrics_port:
        ports["metrics_port"] = config.metrics_port
    if len(set(ports.values())) != len(ports):
        raise ConfigError(f"ports must differ: {ports}")
    if config.web_live_streams > config.web_threads - 2:
        raise ConfigError(f"web_live_streams ({config.web_live_streams}) must leave at least 2 of "
                          f"web_threads ({config.web_threads}) for other requests")
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
    for key in ("queue_bench_did", "acd_bench_did", "bare_bench_did", "raw_bench_did"):
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
    data = _read_secrets(path)
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


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"secrets file {path} is unreadable or not TOML ({exc}); restore it "
                          f"or delete it to generate new secrets") from None
    bad = sorted(k for k, v in data.items() if not isinstance(v, str))
    if bad:
        raise ConfigError(f"secrets file {path}: {', '.join(bad)} must be strings")
    os.chmod(path, 0o600)
    return data


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

"""Start, stop and configure one Asterisk instance per CallPilot state dir.

Asterisk is either a system binary (``asterisk.binary`` or ``asterisk`` on PATH) or the
Debian sid rootfs built once with mmdebstrap into ``asterisk.rootfs``.  In the rootfs case
Asterisk runs chrooted in a private mount namespace where the instance's state dir is
bind-mounted at the SAME absolute path, so every path (configs, prompts, recordings) is
identical for CallPilot and for Asterisk.

All writable Asterisk directories live in ``config.asterisk_dir`` (etc, run, log, lib,
spool, cache); configs are rendered there from the Jinja2 templates in ``dialplans/``.
Several instances (different state dirs and ports) can run at the same time.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

import jinja2

from callpilot.infra.config import Config

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATES_DIR = REPO_ROOT / "dialplans"
PACKAGES_FILE = REPO_ROOT / "docker" / "asterisk-packages.txt"
FALLBACK_PACKAGES = ["asterisk", "asterisk-core-sounds-en-wav", "asterisk-moh-opsound-wav"]
ROOTFS_BINARY = "/usr/sbin/asterisk"
REALM = "callpilot"
RUNNER_PIDFILE = "callpilot-runner.pid"
DEGRADED_QUEUE = "callpilot-degraded"     # app_queue queue of the degraded path
TRUNK_CONTEXT = "from-trunk"              # the carrier's calls' context (pjsip.conf.j2)
QUEUE_LOG = "queue_log"                   # app_queue's log, in the instance's log dir
MMDEBSTRAP_TIMEOUT = 900
UNIQUEID_TAIL = 20           # "-<epoch>.<counter>" Asterisk puts after it (10 digits, a count up to 8)
CALL_ID_MAX = 64             # a call's id (its caller channel's unique id) in call_records

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_children: dict[int, subprocess.Popen] = {}


class AsteriskError(RuntimeError):
    """Asterisk could not be built, configured, started or reached."""


class AgentLike(Protocol):
    extension: str
    name: str
    sip_md5_cred: str


@dataclass(frozen=True)
class Install:
    """How to run Asterisk: a binary path, inside ``rootfs`` when that is set."""

    binary: str
    rootfs: Path | None


@dataclass(frozen=True)
class _AgentView:
    extension: str
    display_name: str
    sip_md5_cred: str


# --- public API ---------------------------------------------------------------------


def up(config: Config, timeout: float = 60.0) -> None:
    """Make sure Asterisk runs for ``config``: build/find it, render configs, start, wait."""
    if status(config) == "up":
        logger.info("asterisk already up in %s", config.asterisk_dir)
        return
    _stop_unresponsive(config)
    install = ensure_install(config)
    render(config, load_agents(config))
    started = time.monotonic()
    proc = _spawn(config, install)
    _wait_ready(config, proc, timeout)
    logger.info("asterisk up in %.2f s (pid %s, ARI %s)", time.monotonic() - started,
                proc.pid, config.ari_url)


def down(config: Config, timeout: float = 15.0) -> None:
    """Stop the instance of ``config`` (graceful SIGTERM, SIGKILL after ``timeout``)."""
    pid = _read_pid(config.asterisk_dir / "run" / RUNNER_PIDFILE)
    if pid is None or not _alive(pid):
        logger.info("asterisk not running in %s", config.asterisk_dir)
        _cleanup_pidfiles(config)
        return
    pids = [p for p in (pid, asterisk_pid(config)) if p is not None]
    _signal_group(pid, signal.SIGTERM)
    if not _wait_gone(pids, timeout):
        logger.warning("asterisk (pids %s) ignored SIGTERM for %.0f s; killing", pids, timeout)
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(pids, 5.0)
    _cleanup_pidfiles(config)
    logger.info("asterisk down in %s", config.asterisk_dir)


def _stop_unresponsive(config: Config) -> None:
    """A process of this instance that lives but does not answer ARI is stopped first."""
    pid = _read_pid(config.asterisk_dir / "run" / RUNNER_PIDFILE)
    if pid is not None and _alive(pid):
        logger.warning("asterisk pid %s of %s does not answer ARI; restarting it",
                       pid, config.asterisk_dir)
        down(config)


def status(config: Config) -> str:
    """``"up"`` when this instance's process lives and ARI answers, else ``"down"``."""
    pid = _read_pid(config.asterisk_dir / "run" / RUNNER_PIDFILE)
    if pid is None or not _alive(pid):
        return "down"
    return "up" if _ari_ready(config) else "down"


def render(config: Config, agents: Iterable[AgentLike]) -> list[Path]:
    """Render every template of ``dialplans/`` into ``asterisk_dir/etc``; return the files."""
    dirs = _make_dirs(config)
    context = _template_context(config, [_agent_view(a) for a in agents], dirs)
    env = _jinja_env()
    written = []
    for name in sorted(env.list_templates(filter_func=lambda n: n.endswith(".j2"))):
        target = dirs["etc"] / name[: -len(".j2")]
        _write_private(target, env.get_template(name).render(context))
        written.append(target)
    logger.debug("rendered %d asterisk config files into %s", len(written), dirs["etc"])
    return written


def reload_pjsip(config: Config, agents: Iterable[AgentLike] | None = None) -> str:
    """Re-render the configs with the current agents; reload res_pjsip and app_queue (the
    degraded path's queue lists the same agents)."""
    render(config, load_agents(config) if agents is None else agents)
    out = rx(config, "module reload res_pjsip.so")
    rx(config, "module reload app_queue.so")
    logger.info("reloaded res_pjsip in %s: %s", config.asterisk_dir, out.strip() or "ok")
    return out


def rx(config: Config, command: str, timeout: float = 15.0) -> str:
    """Run one CLI command on the running instance (``asterisk -rx``) and return its output."""
    argv = _rx_argv(config, resolve_install(config), command)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AsteriskError(f"asterisk -rx {command!r} failed ({done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def queue_log_path(config: Config) -> Path:
    """app_queue's queue_log of this instance (the degraded path's calls)."""
    return config.asterisk_dir / "log" / QUEUE_LOG


def conf_path(config: Config) -> Path:
    return config.asterisk_dir / "etc" / "asterisk.conf"


def asterisk_pid(config: Config) -> int | None:
    """PID of the asterisk process itself (written by Asterisk into its run dir)."""
    pid = _read_pid(config.asterisk_dir / "run" / "asterisk.pid")
    return pid if pid is not None and _alive(pid) else None


def log_tail(config: Config, lines: int = 40) -> str:
    """Last lines of the instance's console output and messages log, for error reports."""
    parts = []
    for name in ("console.out", "messages.log"):
        path = config.asterisk_dir / "log" / name
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} ---\n" + "\n".join(text))
    return "\n".join(parts) or f"(no log in {config.asterisk_dir / 'log'})"


# --- agents from the database ---------------------------------------------------------


def load_agents(config: Config) -> list[AgentLike]:
    """All agents of the database (schema created if missing)."""
    from sqlalchemy import select

    from callpilot.infra.db.models import Agent
    from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

    engine = make_engine(config.db_url)
    try:
        create_schema(engine)
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(Agent).order_by(Agent.extension)))
    finally:
        engine.dispose()


def _agent_view(agent: AgentLike) -> _AgentView:
    ext, cred = str(agent.extension), str(agent.sip_md5_cred).lower()
    if not _SAFE_NAME.match(ext):
        raise AsteriskError(f"agent extension {ext!r} is not a safe SIP user name")
    if not _MD5.match(cred):
        raise AsteriskError(f"agent {ext}: sip_md5_cred is not an md5 hex digest")
    name = re.sub(r'[\r\n"<>;\[\]]', "", getattr(agent, "name", "") or "") or f"Agent {ext}"
    return _AgentView(ext, name, cred)


# --- installation: system binary or cached rootfs --------------------------------------


def resolve_install(config: Config) -> Install:
    """The Asterisk to use, without building anything."""
    if config.asterisk.binary:
        return Install(config.asterisk.binary, None)
    system = shutil.which("asterisk")
    if system:
        return Install(system, None)
    return Install(ROOTFS_BINARY, Path(config.asterisk.rootfs).expanduser().resolve())


def ensure_install(config: Config) -> Install:
    """Like :func:`resolve_install`, building the rootfs once if it is missing."""
    install = resolve_install(config)
    if install.rootfs is None:
        if not Path(install.binary).exists() and not shutil.which(install.binary):
            raise AsteriskError(f"asterisk binary {install.binary!r} not found")
        return install
    if os.geteuid() != 0:
        raise AsteriskError("running Asterisk from the rootfs needs root (mount namespace + "
                            "chroot); install Asterisk or set asterisk.binary instead")
    ensure_rootfs(install.rootfs)
    return install


def ensure_rootfs(rootfs: Path) -> Path:
    """Build the Debian sid rootfs with Asterisk once (temp dir + atomic rename)."""
    if _rootfs_ready(rootfs):
        return rootfs
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with open(rootfs.parent / f".{rootfs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _rootfs_ready(rootfs):
            _build_rootfs(rootfs)
    return rootfs


def _rootfs_ready(rootfs: Path) -> bool:
    return (rootfs / ROOTFS_BINARY.lstrip("/")).exists()


def _build_rootfs(rootfs: Path) -> None:
    if not shutil.which("mmdebstrap"):
        raise AsteriskError("no asterisk on PATH and mmdebstrap is not installed "
                            "(apt-get install mmdebstrap) to build the Asterisk rootfs")
    packages = rootfs_packages()
    tmp = Path(tempfile.mkdtemp(prefix=f".{rootfs.name}.build-", dir=rootfs.parent))
    argv = ["mmdebstrap", "--variant=apt", "--aptopt=Acquire::Check-Valid-Until \"false\"",
            f"--include={','.join(packages)}", "sid", str(tmp)]
    logger.info("building asterisk rootfs %s with %s (once; ~30 s)", rootfs, packages)
    started = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT)
        if done.returncode != 0 or not _rootfs_ready(tmp):
            tail = "\n".join((done.stderr or done.stdout).splitlines()[-30:])
            raise AsteriskError(f"mmdebstrap failed ({done.returncode}):\n{tail}")
        if rootfs.exists():
            shutil.rmtree(rootfs)
        os.rename(tmp, rootfs)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("asterisk rootfs ready in %.1f s", time.monotonic() - started)


def rootfs_packages() -> list[str]:
    """Debian packages of the rootfs; shared with docker/ through asterisk-packages.txt."""
    if not PACKAGES_FILE.exists():
        logger.warning("%s missing; using the built-in package list", PACKAGES_FILE)
        return list(FALLBACK_PACKAGES)
    lines = (line.split("#", 1)[0].strip() for line in PACKAGES_FILE.read_text().splitlines())
    return [line for line in lines if line]


# --- rendering -------------------------------------------------------------------------


def _make_dirs(config: Config) -> dict[str, Path]:
    base = config.asterisk_dir
    dirs = {name: base / name for name in ("etc", "run", "log", "lib", "spool", "cache")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    (dirs["lib"] / "keys").mkdir(exist_ok=True)
    os.chmod(dirs["etc"], 0o700)
    config.prompts_dir.mkdir(parents=True, exist_ok=True)
    return dirs


def _template_context(config: Config, agents: list[_AgentView], dirs: dict[str, Path]) -> dict:
    a = config.asterisk
    _check_routing(config)
    return {
        "config": config, "a": a, "secrets": config.secrets, "agents": agents, "dirs": dirs,
        "realm": REALM, "system_name": system_name(config),
        "agi_host": config.agi_host, "agi_port": config.agi_port,
        "degraded_queue": DEGRADED_QUEUE,
        "degraded_dids": list(a.dids) + list(a.agi_dids) + list(a.queue_dids),
        "media_address": _media_address(a.sip_host),
        "secrets_file": config.state_dir.resolve() / "secrets.toml",
        "generated_by": "callpilot.infra.asterisk.runner",
    }


def system_name(config: Config) -> str:
    """Asterisk's ``systemname``, the head of every channel's unique id: ``<app>-<node>``.

    A caller channel's unique id is the call's id in the database.  Without the node in it,
    two nodes on one database give two calls one id whenever their Asterisks create a
    channel in the same second with the same count (two fresh ones: their first call).  A
    name too long for the id column keeps its head and a digest of the whole."""
    name = f"{config.asterisk.app_name}-{config.node_name}"
    room = CALL_ID_MAX - UNIQUEID_TAIL
    if len(name) <= room:
        return name
    digest = hashlib.blake2s(name.encode(), digest_size=4).hexdigest()
    return f"{name[:room - len(digest) - 1]}-{digest}"


def _check_routing(config: Config) -> None:
    a = config.asterisk
    for did, flow in list(a.dids.items()) + list(a.agi_dids.items()):
        if not str(did).isdigit() or not _SAFE_NAME.match(str(flow)):
            raise AsteriskError(f"DID {did!r} -> flow {flow!r}: digits -> [A-Za-z0-9_.-] only")
    if a.queue_bench_did and not a.queue_bench_did.isdigit():
        raise AsteriskError(f"asterisk.queue_bench_did {a.queue_bench_did!r}: digits only")
    if not _SAFE_NAME.match(a.app_name):
        raise AsteriskError(f"asterisk.app_name {a.app_name!r}: [A-Za-z0-9_.-] only")
    if not config.secrets.ari_password or not config.secrets.ami_secret:
        raise AsteriskError("ARI/AMI secrets are empty; load the config with config.load()")


def _media_address(sip_host: str) -> str | None:
    """RTP binds to the SIP address unless SIP listens on a wildcard address."""
    return None if sip_host in ("", "0.0.0.0", "::", "[::]") else sip_host


def _jinja_env() -> jinja2.Environment:
    if not TEMPLATES_DIR.is_dir():
        raise AsteriskError(f"template directory {TEMPLATES_DIR} not found")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


# --- process management -----------------------------------------------------------------


def _spawn(config: Config, install: Install) -> subprocess.Popen:
    argv = _run_argv(config, install)
    log_dir = config.asterisk_dir / "log"
    with open(log_dir / "console.out", "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True, env=_child_env())
    _children[proc.pid] = proc
    (config.asterisk_dir / "run" / RUNNER_PIDFILE).write_text(f"{proc.pid}\n")
    logger.debug("spawned %s (pid %s)", argv, proc.pid)
    return proc


def _child_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/root")}


def _run_argv(config: Config, install: Install) -> list[str]:
    conf = str(conf_path(config))
    if install.rootfs is None:
        return [install.binary, "-C", conf, "-f", "-n"]
    state = str(config.state_dir.resolve())
    _prepare_mountpoint(install.rootfs, state)
    # the host's resolv.conf/hosts replace the copies mmdebstrap froze at build time
    script = ('set -e; R="$1"; S="$2"; shift 2; '
              'mount --bind /dev "$R/dev"; mount -t proc proc "$R/proc"; '
              'for f in /etc/resolv.conf /etc/hosts; do '
              'if [ -f "$f" ] && [ -f "$R$f" ]; then mount --bind "$f" "$R$f"; fi; done; '
              'mount --bind "$S" "$R$S"; exec chroot "$R" "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--fork", "--",
            "sh", "-c", script, "callpilot-asterisk", str(install.rootfs), state,
            install.binary, "-C", conf, "-f", "-n"]


def _prepare_mountpoint(rootfs: Path, state: str) -> None:
    (rootfs / state.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (rootfs / "var" / "run" / "asterisk").mkdir(parents=True, exist_ok=True)


def _rx_argv(config: Config, install: Install, command: str) -> list[str]:
    conf = str(conf_path(config))
    if install.rootfs is None:
        return [install.binary, "-C", conf, "-rx", command]
    pid = asterisk_pid(config)
    if pid is None:
        raise AsteriskError(f"asterisk is not running in {config.asterisk_dir}")
    # enter the instance's mount namespace and its chroot: same view as the server
    return ["nsenter", f"--target={pid}", "--mount", "--root", "--wd",
            install.binary, "-C", conf, "-rx", command]


def _wait_ready(config: Config, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _cleanup_pidfiles(config)
            raise AsteriskError(f"asterisk exited with code {proc.returncode} during start-up"
                                f"\n{log_tail(config)}")
        if _ari_ready(config) and asterisk_pid(config) is not None:
            _wait_fully_booted(config, deadline)
            return
        time.sleep(0.1)
    down(config)
    raise AsteriskError(f"asterisk did not answer ARI at {config.ari_url} within "
                        f"{timeout:.0f} s\n{log_tail(config)}")


def _wait_fully_booted(config: Config, deadline: float) -> None:
    remaining = max(1.0, deadline - time.monotonic())
    rx(config, "core waitfullybooted", timeout=remaining)


def _ari_ready(config: Config) -> bool:
    s = config.secrets
    req = urllib.request.Request(f"{config.ari_url}/ari/asterisk/info")
    token = base64.b64encode(f"{s.ari_user}:{s.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=1.0) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True when ``pid`` runs (not a zombie) and looks like one of our Asterisk processes."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and b"asterisk" in cmdline


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _children.pop(pid, None)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)   # the runner started it as a session (and group) leader
    except ProcessLookupError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return not any(_alive(pid) for pid in pids)


def _cleanup_pidfiles(config: Config) -> None:
    for name in (RUNNER_PIDFILE, "asterisk.pid"):
        (config.asterisk_dir / "run" / name).unlink(missing_ok=True)

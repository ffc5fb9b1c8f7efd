"""docs/guides/deployment.md works as written.

The compose file is valid Compose, and its ``app`` service's command runs outside Docker, as
is: ``uvicorn app:app --workers 4`` with the service's environment, pointed at the test's
PostgreSQL and Redis. So does the guide's gunicorn command. Where nginx is installed, a stream
goes through the guide's ``nginx.conf`` to the same uvicorn workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from httpx_sse import aconnect_sse

from tests._databases import TestServers, require

from ._support import Server, free_port, running
from .blocks import DOCS, README, find_block, page_files, shell_commands

# Several uvicorn workers each: started beside other tests on two cores, their start-up
# outlasts any fair bound (see the serial marker in pyproject.toml).
pytestmark = pytest.mark.serial

DEPLOY = DOCS / "deploy"
GUIDE = DOCS / "guides" / "deployment.md"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SECRET = "Tq1x" + os.urandom(24).hex()  # not a placeholder: the app starts outside dev mode
STREAMS = 8  # spread over the four workers by the kernel
WORKERS = 4


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME:?message}`` substitution."""
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: env[m.group(1)], value)


def test_compose_file_is_valid_compose() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    services = COMPOSE["services"]
    assert set(services) == {"db", "redis", "app", "nginx"}
    assert (DEPLOY / "Dockerfile").is_file() and (DEPLOY / "app.py").is_file()
    mounted = services["nginx"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == DEPLOY / "nginx.conf"
    assert "--workers 4" in services["app"]["command"]
    assert "upstream capebase" in (DEPLOY / "nginx.conf").read_text()
    docker = shutil.which("docker")
    compose = docker and subprocess.run([docker, "compose", "version"], capture_output=True)
    if compose and compose.returncode == 0:
        result = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
            capture_output=True, text=True, env={**os.environ, "CAPEBASE_SECRET": SECRET},
        )
        assert result.returncode == 0, result.stderr


@pytest.fixture
def postgres_url(_servers: TestServers) -> Iterator[str]:
    require(_servers, "postgresql")
    name = _servers.create_database("postgresql")
    try:
        yield _servers.url("postgresql", name)
    finally:
        _servers.drop_database("postgresql", name)


def _compose_command(port: int) -> list[str]:
    command = shlex.split(COMPOSE["services"]["app"]["command"])
    assert command[:2] == ["uvicorn", "app:app"], command
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"  # the same, without listening outside
    return command


def _gunicorn_command(port: int) -> list[str]:
    commands = shell_commands(find_block(GUIDE, "gunicorn app:app", "shell"))
    command = shlex.split(next(c for c in commands if c.startswith("gunicorn")))
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    return command


def _environment(database: str, broker: str) -> dict[str, str]:
    env = {k: _interpolate(str(v), {"CAPEBASE_SECRET": SECRET})
           for k, v in COMPOSE["services"]["app"]["environment"].items()}
    assert env["DATABASE_URL"].startswith("postgresql://") and env["BROKER_URL"].startswith(
        "redis://")
    return {**env, "DATABASE_URL": database, "BROKER_URL": broker}


def _subscribers(broker: str) -> int:
    """Connections of this test's Redis database listening on a channel: one per worker."""
    client = redis.Redis.from_url(broker)
    db = client.connection_pool.connection_kwargs["db"]
    try:
        return sum(1 for c in client.client_list()
                   if int(c.get("db", -1)) == db and int(c.get("sub", 0)) > 0)
    finally:
        client.close()


async def _sign_up(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    password = "correct horse battery staple"
    response = await client.post("/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    response = await client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _fan_out(base: str, alice: dict[str, str] | None = None) -> None:
    """Streams on every worker receive each change, whichever worker committed it."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        alice = alice or await _sign_up(client, "alice@example.com")
        received: list[list[str]] = [[] for _ in range(STREAMS)]
        ready = [asyncio.Event() for _ in range(STREAMS)]

        arrived = asyncio.Event()

        async def follow(n: int) -> None:
            async with (
                httpx.AsyncClient(base_url=base, timeout=None) as own,  # a connection each
                aconnect_sse(own, "GET", "/todo/subscribe") as source,
            ):
                async for event in source.aiter_sse():
                    if event.event == "ready":
                        ready[n].set()
                    elif event.event == "message":
                        received[n].append(json.loads(event.data)["payload"]["task"])
                        arrived.set()

        tasks = [asyncio.create_task(follow(n)) for n in range(STREAMS)]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 30)
            tasks_sent = [f"task {n}" for n in range(6)]
            for task in tasks_sent:
                response = await client.post("/todo", json={"task": task}, headers=alice)
                assert response.status_code == 201, response.text
            deadline = time.monotonic() + 20
            while True:
                arrived.clear()  # before looking: a message arriving after this sets it again
                if all(r == tasks_sent for r in received) or time.monotonic() > deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), deadline - time.monotonic())
            assert all(r == tasks_sent for r in received), received
            listed = await client.get("/todo", params={"count": "true"})
            assert listed.headers["x-total-count"] == str(len(tasks_sent))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("server", ["uvicorn (compose)", "gunicorn (guide)"])
def test_four_workers_with_a_redis_broker(server: str, postgres_url: str, redis_url: str,
                                          tmp_path: Path) -> None:
    """The compose command's workers also serve a stream through the guide's nginx.conf (one
    set of workers for both checks; skipped after the fan-out where nginx is not installed)."""
    shutil.copy(DEPLOY / "app.py", tmp_path / "app.py")
    port = free_port()
    command = _compose_command(port) if server.startswith("uvicorn") else _gunicorn_command(port)
    assert f"--workers {WORKERS}" in " ".join(command)
    app = Server(command, tmp_path, tmp_path / "server.log",
                 env=_environment(postgres_url, redis_url))
    base = f"http://127.0.0.1:{port}"
    with running(app, f"{base}/healthz"):
        deadline = time.monotonic() + 60
        while _subscribers(redis_url) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _subscribers(redis_url) == WORKERS, app.output()
        asyncio.run(_fan_out(base))
        if server.startswith("uvicorn"):
            _streams_through_the_guides_nginx(tmp_path, port)


def test_readmes_several_workers(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    """README's "Several workers": the Quick start on PostgreSQL with a Redis broker, served by
    README's command."""
    fragment = find_block(README, 'broker="redis://localhost:6379/0"', "python").code
    app = page_files(README)["app.py"]
    quick_start_call = app[app.index("cape = CapeBase("):app.index("\n)\n", app.index(
        "cape = CapeBase(")) + 3]
    readme_call = fragment[fragment.index("cape = CapeBase("):]
    readme_call = readme_call.replace("postgresql://postgres@localhost/todos", postgres_url)
    readme_call = readme_call.replace("redis://localhost:6379/0", redis_url)
    (tmp_path / "app.py").write_text(app.replace(quick_start_call, readme_call))
    (command,) = shell_commands(find_block(README, "uvicorn app:app --workers", "shell"))
    port = free_port()
    server = Server([*shlex.split(command), "--port", str(port)], tmp_path, tmp_path / "log")
    base = f"http://127.0.0.1:{port}"
    with running(server, f"{base}/todo"):
        deadline = time.monotonic() + 60
        while _subscribers(redis_url) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _subscribers(redis_url) == WORKERS, server.output()
        asyncio.run(_fan_out(base, {"Authorization": "Bearer alice-token"}))


def _nginx_config(folder: Path, listen: int, upstream: int) -> Path:
    """The guide's nginx.conf in a minimal main configuration, on local ports."""
    site = (DEPLOY / "nginx.conf").read_text()
    site = site.replace("server app:8000;", f"server 127.0.0.1:{upstream};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    main = folder / "nginx-main.conf"
    main.write_text(
        "daemon off;\nworker_processes 1;\n"
        f"pid {folder}/nginx.pid;\nerror_log {folder}/nginx-error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {folder}/body;\n"
        f"  proxy_temp_path {folder}/proxy;\n"
        f"{site}\n}}\n"
    )
    return main


def _streams_through_the_guides_nginx(folder: Path, upstream: int) -> None:
    nginx = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path(
        "/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light); the fan-out passed")
    proxy_port = free_port()
    config = _nginx_config(folder, proxy_port, upstream)
    checked = subprocess.run([str(nginx), "-t", "-c", str(config)], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stderr
    proxy = Server([str(nginx), "-c", str(config)], folder, folder / "nginx.log")
    base = f"http://127.0.0.1:{proxy_port}"
    with running(proxy, f"{base}/healthz"):
        asyncio.run(_one_at_a_time(base))


async def _one_at_a_time(base: str) -> None:
    """Each event arrives through nginx before the next change is made: nothing buffered."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        alice = await _sign_up(client, "alice.behind.nginx@example.com")
        events: asyncio.Queue[Any] = asyncio.Queue(maxsize=100)

        async def follow() -> None:
            async with (
                httpx.AsyncClient(base_url=base, timeout=None) as own,
                aconnect_sse(own, "GET", "/todo/subscribe") as source,
            ):
                # nginx consumes X-Accel-Buffering itself: it never reaches the client.
                assert "x-accel-buffering" not in source.response.headers
                async for event in source.aiter_sse():
                    await events.put(event)

        task = asyncio.create_task(follow())

        async def next_event(seconds: float) -> Any:
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({getter, task}, timeout=seconds,
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                raise AssertionError(f"no event within {seconds} s; the stream: {task}")
            return getter.result()

        try:
            assert (await next_event(30)).event == "ready"
            for n in range(3):
                response = await client.post("/todo", json={"task": f"t{n}"}, headers=alice)
                assert response.status_code == 201
                event = await next_event(5)
                assert json.loads(event.data)["payload"]["task"] == f"t{n}"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

"""PostgreSQL restarted under ingest load: the service recovers, and no 2xx is a lie.

The shared cluster is not ours to restart, so the test runs a private PostgreSQL
(``initdb`` into a temporary directory, a free loopback port; as the ``postgres`` user
when the tests run as root, since PostgreSQL refuses to run as root), copies the test
database into it (schema, a tenant and a service key), and serves it with gunicorn as
in production (several processes, persistent connections, tasks in-process). Clients
submit outputs without pause while PostgreSQL is killed (``pg_ctl restart -m
immediate``: no clean shutdown, crash recovery at start). Then:

- the service answers 2xx again within 30 s of the restart;
- every output answered 2xx is in the database, under the id the answer gave.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from tests.conftest import REQUIRE_POSTGRES, make_client
from tests.factories import output_payload

ROOT = Path(__file__).resolve().parents[2]
RECOVERY_SECONDS = 30


def postgres_bindir() -> Path | None:
    """Where initdb, pg_ctl and pg_dump are: on the PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent  # /usr/local/bin may link initdb and pg_ctl alone
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def run_as() -> list[str] | None:
    """The command prefix that runs PostgreSQL: nothing, or ``runuser -u postgres --`` under root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


BINDIR, RUN_AS = postgres_bindir(), run_as()
UNAVAILABLE = (
    "no PostgreSQL server binaries (initdb)"
    if BINDIR is None
    else "running as root without a 'postgres' user and runuser to start PostgreSQL as"
    if RUN_AS is None
    else None
)
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),  # the tenant and key are committed, then copied
    pytest.mark.skipif(UNAVAILABLE is not None and not REQUIRE_POSTGRES, reason=f"private PostgreSQL: {UNAVAILABLE}"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """A throwaway cluster in ``directory``, listening on 127.0.0.1:``port`` only, trusting local clients."""

    def __init__(self, directory: Path):
        assert UNAVAILABLE is None, f"REQUIRE_POSTGRES=1 but a private PostgreSQL cannot run: {UNAVAILABLE}"
        self.directory, self.data, self.port = directory, directory / "data", free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/hitl"
        if RUN_AS:
            shutil.chown(directory, user="postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*RUN_AS, str(BINDIR / program), *args], check=True, capture_output=True, timeout=60)

    def _pg_ctl(self, action: str, *args: str) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.directory} "
            "-c fsync=off -c max_connections=50"  # fsync: the process dies, not the machine; the OS keeps what it wrote
        )
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "30", "-o", options, *args)

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.directory / "log"))

    def restart_abruptly(self) -> None:
        """Killed (no checkpoint, sessions cut), then started: crash recovery replays the WAL."""
        self._pg_ctl("restart", "-m", "immediate", "-l", str(self.directory / "log"))

    def stop(self) -> None:
        subprocess.run(
            [*RUN_AS, str(BINDIR / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w"],
            capture_output=True,
            timeout=60,
        )

    def copy_database(self, settings_dict: dict) -> None:
        """The test database (schema and committed rows) into a new database ``hitl`` here."""
        source = f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
        dump = subprocess.run(
            [str(BINDIR / "pg_dump"), "--no-owner", "--no-privileges", source],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE hitl")
        subprocess.run(  # psql: the dump holds psql's meta-commands
            [str(BINDIR / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url],
            input=dump,
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def private_postgres():
    with tempfile.TemporaryDirectory(prefix="hitl-pg-") as directory:
        server = PrivatePostgres(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def gunicorn(private_postgres, tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REQUIRE_", "CELERY_BROKER"))}
    env.update(DATABASE_URL=private_postgres.url, DEBUG="1", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:  # a file, not a pipe: a pipe nobody reads fills up and blocks the workers
        process = subprocess.Popen(
            # --preload: the application loads once and forks (each process starts its own embedded beat)
            [
                sys.executable,
                "-m",
                "gunicorn",
                "hitl.wsgi",
                "--preload",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.base_url = f"http://127.0.0.1:{port}"
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
        print(log.read_text(errors="replace")[-5000:])  # shown by pytest only on failure


def api_session(key: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # straight to 127.0.0.1, whatever proxies the environment names
    session.headers["Authorization"] = f"Bearer {key}"
    return session


class Load:
    """Clients submitting one output after another, each remembering what was answered."""

    def __init__(self, base_url: str, key: str, clients: int = 4):
        self.base_url, self.key = base_url, key
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.accepted: dict[str, str] = {}  # external id -> the output id a 2xx answered
        self.outcomes: list[tuple[float, float, int | str]] = []  # (sent, answered, status or error)
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def start(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _client(self, client: int) -> None:
        session = api_session(self.key)
        number = 0
        while not self.stopping.is_set():
            number += 1
            payload = output_payload(number, external_id=f"load-{client}-{number}")
            sent = time.monotonic()
            try:
                response = session.post(f"{self.base_url}/api/v1/outputs", json=payload, timeout=20)
                outcome: int | str = response.status_code
            except requests.RequestException as error:
                outcome = type(error).__name__
                time.sleep(0.05)
            with self.lock:
                self.outcomes.append((sent, time.monotonic(), outcome))
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    self.accepted[payload["external_id"]] = response.json()["id"]

    def successes_sent_after(self, moment: float) -> list[float]:
        with self.lock:
            return [answered for sent, answered, status in self.outcomes if sent > moment and status in (200, 201)]


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_postgres_restarted_under_ingest_load(tenant, private_postgres, gunicorn):
    key = make_client(tenant, "service").raw_key  # committed in the test database, then copied with it
    private_postgres.copy_database(connection.settings_dict)

    probe = api_session(key)

    def answering() -> bool:
        try:
            return probe.get(gunicorn.base_url + "/api/v1/outputs?page_size=1", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    assert wait_for(answering, 30), "gunicorn did not answer"
    load = Load(gunicorn.base_url, key).start()
    try:
        assert wait_for(lambda: len(load.successes_sent_after(0)) >= 30, 30), load.outcomes[-5:]
        restarted = time.monotonic()
        private_postgres.restart_abruptly()
        back = wait_for(lambda: load.successes_sent_after(restarted), RECOVERY_SECONDS)
        recovered = min(load.successes_sent_after(restarted), default=float("inf")) - restarted
        time.sleep(0.5)  # a little more load on the recovered service
    finally:
        load.stop()

    failures = [status for sent, _, status in load.outcomes if status not in (200, 201)]
    assert back, f"no 2xx within {RECOVERY_SECONDS} s of the restart; the last answers: {load.outcomes[-8:]}"
    assert recovered < RECOVERY_SECONDS
    assert set(failures) <= {500, 503, "ConnectionError"}, failures  # errors, never an answer that lies
    with psycopg.connect(private_postgres.url) as database:
        stored = dict(
            database.execute(
                "SELECT external_id, id::text FROM reviews_output WHERE external_id = ANY(%s)",
                [list(load.accepted)],
            ).fetchall()
        )
    missing = {external_id for external_id in load.accepted if external_id not in stored}
    assert not missing, f"answered 2xx but not in the database: {sorted(missing)[:10]}"
    assert all(stored[external_id] == output_id for external_id, output_id in load.accepted.items())
    print(f"{len(load.accepted)} accepted, {len(failures)} failed, recovered {recovered:.2f} s after the restart")

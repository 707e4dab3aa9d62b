"""Private service instances for fault injection: a Redis, a MariaDB and a supervisord that this
harness starts, stops, restarts and always cleans up. Nothing here touches a shared server.

Each process is a child of the harness in its own session, tracked by pid (never by name).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from stack import children_map  # bench/ is on sys.path (run as bench/chaos.py)
from stack import tree as process_tree

MARIADBD = os.environ.get("CHAOS_MARIADBD", "/usr/sbin/mariadbd")
MARIADB_INSTALL_DB = os.environ.get("CHAOS_MARIADB_INSTALL_DB", "mariadb-install-db")
REDIS_SERVER = os.environ.get("CHAOS_REDIS_SERVER", "redis-server")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _stop_popen(popen: subprocess.Popen | None, *, sig=signal.SIGTERM, timeout: float = 30) -> None:
    if popen is None or popen.poll() is not None:
        return
    try:
        popen.send_signal(sig)
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)
    except ProcessLookupError:
        pass


class PrivateRedis:
    """``redis-server`` on its own port, no persistence: a restart loses every queued message."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.popen: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self, timeout: float = 20) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use: pick another with --redis-port")
        log = open(self.dir / "redis.out", "ab")
        self.popen = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.popen.returncode}); see {self.dir}/redis.log")
            if self.ping():
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis did not answer on {self.port} within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        _stop_popen(self.popen, timeout=15)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class PrivateMariaDB:
    """``mariadbd`` on its own port and data directory (kept across restarts); root, empty password."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.dir = workdir / "mariadb"
        self.datadir = self.dir / "data"
        self.popen: subprocess.Popen | None = None

    def install(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [MARIADB_INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
             "--user=root", "--skip-test-db"],
            cwd=self.dir, capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def start(self, timeout: float = 60) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use: pick another with --mysql-port")
        log = open(self.dir / "mariadbd.out", "ab")
        self.popen = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.dir / 'sock'}", f"--pid-file={self.dir / 'mariadbd.pid'}", "--user=root",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci", "--skip-log-bin",
             "--innodb-buffer-pool-size=256M", "--max-connections=500", f"--log-error={self.dir / 'error.log'}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_ready(timeout)

    def connect(self, db: str | None = None, timeout: int = 3):
        import MySQLdb

        kwargs = {"db": db} if db else {}
        conn = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", passwd="", charset="utf8mb4",
                               connect_timeout=timeout, **kwargs)
        conn.autocommit(True)
        return conn

    def ready(self) -> bool:
        try:
            self.connect().close()
            return True
        except Exception:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"mariadbd exited ({self.popen.returncode}); see {self.dir}/error.log")
            if self.ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"mariadbd did not accept connections on {self.port} within {timeout}s")

    def create_database(self, name: str) -> None:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            # The collation docker-compose.yml gives the production database.
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            conn.close()

    def stop(self, timeout: float = 60) -> None:
        """A clean shutdown (SIGTERM), as a service manager's restart does."""
        _stop_popen(self.popen, timeout=timeout)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [part.decode(errors="replace") for part in fh.read().split(b"\0") if part]
    except OSError:
        return []


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total


class Supervisor:
    """``supervisord -n -c deploy/supervisord.conf`` as a child of the harness."""

    def __init__(self, conf: Path, env: dict[str, str], run_dir: Path, cwd: Path):
        self.conf, self.env, self.run_dir, self.cwd = conf, env, run_dir, cwd
        self.popen: subprocess.Popen | None = None

    def start(self, supervisord: str) -> None:
        out = open(self.run_dir / "supervisord.out", "ab")
        self.popen = subprocess.Popen([supervisord, "-n", "-c", str(self.conf)], cwd=self.cwd, env=self.env,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def programs(self) -> dict[str, int]:
        """Supervised process name -> pid, from /proc (the direct children of supervisord)."""
        if not self.alive():
            return {}
        out = {}
        for pid in children_map().get(self.popen.pid, []):
            args = cmdline(pid)
            text = " ".join(args)
            if "celery" in text and " worker" in text:
                # node names: worker<N>@host (scoring) or imports@host (file imports)
                name = next((a.split("@")[0] for a in args if "@" in a), "worker?")
                out[name] = pid
            elif "celery" in text and " beat" in text:
                out["beat"] = pid
            elif "gunicorn" in text:
                out["web"] = pid
            elif "daphne" in text:
                out["ws"] = pid
        return out

    def workers(self) -> dict[str, int]:
        return {name: pid for name, pid in self.programs().items() if name.startswith("worker")}

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM supervisord (it stops its programs, waiting stopwaitsecs each); SIGKILL what is left."""
        if self.popen is None:
            return
        tree = process_tree(self.popen.pid) if self.popen.poll() is None else []
        leftovers = {pid: cmdline(pid) for pid in tree[1:]}
        _stop_popen(self.popen, timeout=timeout)
        for pid, args in leftovers.items():
            if args and cmdline(pid) == args:  # still the same process (pids are not reused that fast)
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

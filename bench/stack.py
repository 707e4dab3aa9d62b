"""Start (or describe) the stack under test: embedded daphne, or gunicorn + daphne + Celery workers.

Every process is started by the benchmark and stopped by it (by pid, process group). Ports come
from BENCH_PORTS (default 8200-8299), so a shared machine's other services are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def port_range() -> range:
    low, _, high = os.environ.get("BENCH_PORTS", "8200-8299").partition("-")
    return range(int(low), int(high or low) + 1)


def free_port(taken: set[int]) -> int:
    for port in port_range():
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free port in {port_range()}")


# --- /proc: memory of a process tree ---------------------------------------------------------


def children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree(pid: int) -> list[int]:
    children = children_map()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _status_kb(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_kb(pid: int, field_name: str) -> int:
    """Sum of VmHWM (peak) or VmRSS (now) over a process and its descendants, in KiB."""
    return sum(_status_kb(p, field_name) for p in tree(pid))


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """user + system CPU of a process and its live descendants (and the children they reaped)."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def _pids_named(names: tuple[str, ...]) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() in names:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@dataclass
class Proc:
    role: str  # web | ws | worker
    name: str
    popen: subprocess.Popen
    log: Path
    peak_kb: int = 0

    def sample_peak(self) -> int:
        self.peak_kb = max(self.peak_kb, tree_kb(self.popen.pid, "VmHWM"))
        return self.peak_kb

    def rss_kb(self) -> int:
        return tree_kb(self.popen.pid, "VmRSS")


@dataclass
class Stack:
    kind: str  # embedded | prod | target
    api_url: str
    ws_url: str
    api_key: str
    database_url: str | None = None  # for direct checks (counts) and the raw-write floor
    workdir: Path | None = None
    procs: list[Proc] = field(default_factory=list)
    description: dict = field(default_factory=dict)
    env: dict | None = None  # the started processes' environment (to run Django code on the same database)

    def sample_peaks(self) -> None:
        for proc in self.procs:
            proc.sample_peak()

    def peak_rss_mb(self) -> dict[str, float]:
        self.sample_peaks()
        out: dict[str, float] = {}
        for proc in self.procs:
            out[proc.role] = round(out.get(proc.role, 0) + proc.peak_kb / 1024, 1)
        return out

    def rss_now_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs:
            out[proc.role] = round(out.get(proc.role, 0) + proc.rss_kb() / 1024, 1)
        return out

    def cpu_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs:
            out[proc.role] = out.get(proc.role, 0) + tree_cpu_seconds(proc.popen.pid)
        if self.kind == "prod":
            for pid in _pids_named(("mariadbd", "mysqld")):  # a shared server: other users count too
                out["db server (shared)"] = out.get("db server (shared)", 0) + tree_cpu_seconds(pid)
        return out

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace")[-3000:] if proc.log.exists() else ""
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; log tail:\n{tail}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait(timeout=5)


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "TARGETGRID_QUEUE"}}
    # bench.floor_settings = config.settings plus /bench/floor (see bench/floor_urls.py)
    env.update({"DJANGO_SETTINGS_MODULE": "bench.floor_settings", "LOG_LEVEL": "WARNING", "DEBUG": "0"})
    env.update(extra)
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def _spawn(role: str, name: str, args: list[str], env: dict[str, str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    fh = open(log, "wb")
    popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(role=role, name=name, popen=popen, log=log)


def _wait_healthy(stack: Stack, timeout: float = 90) -> dict:
    import json

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            with urllib.request.urlopen(stack.api_url + "/health", timeout=5) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")[:500]
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"the stack did not become healthy in {timeout}s: {last}")


def start_embedded(*, keep: bool = False) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix="tg-bench-"))
    env = _env({"TARGETGRID_DATA_DIR": str(workdir)})
    _manage(env, "migrate", "--noinput")
    api_key = _manage(env, "create_api_key", "--name", "bench").splitlines()[-1]
    port = free_port(set())
    stack = Stack(
        kind="embedded",
        api_url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}/ws/scores/",
        api_key=api_key,
        database_url=f"sqlite:///{workdir / 'targetgrid.sqlite3'}",
        workdir=workdir,
        description={"server": "daphne (HTTP + WebSocket + embedded worker)", "database": "SQLite WAL"},
    )
    stack.procs.append(
        _spawn("web", "daphne", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
               env, workdir)
    )
    try:
        _wait_healthy(stack)
    except Exception:
        stack.stop()
        raise
    stack.env = env
    return stack


def _fresh_mysql(database_url: str, *, allow_any: bool) -> None:
    import MySQLdb

    url = urlparse(database_url)
    name = url.path.lstrip("/")
    if not name.startswith("tg_bench") and not allow_any:
        raise SystemExit(f"refusing to drop database {name!r}: its name must start with tg_bench (or --allow-any-db)")
    conn = MySQLdb.connect(host=url.hostname or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           passwd=url.password or "")
    cur = conn.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def start_prod(*, database_url: str, redis_url: str, workers: int, concurrency: int, web_workers: int,
               web_threads: int, allow_any_db: bool, pool: str = "prefork",
               extra_env: dict[str, str] | None = None, import_workers: int = 0, outbound_workers: int = 0,
               outbound_concurrency: int = 1, outbound_nice: int = 0, beat: bool = False) -> Stack:
    import redis

    if not database_url.startswith("mysql"):
        raise SystemExit("--stack prod needs DATABASE_URL=mysql://...")
    _fresh_mysql(database_url, allow_any=allow_any_db)
    redis.Redis.from_url(redis_url).flushdb()
    workdir = Path(tempfile.mkdtemp(prefix="tg-bench-"))
    env = _env({"TARGETGRID_DATA_DIR": str(workdir), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                **(extra_env or {})})
    _manage(env, "migrate", "--noinput")
    api_key = _manage(env, "create_api_key", "--name", "bench").splitlines()[-1]
    taken: set[int] = set()
    api_port, ws_port = free_port(taken), free_port(taken)
    stack = Stack(
        kind="prod",
        api_url=f"http://127.0.0.1:{api_port}",
        ws_url=f"ws://127.0.0.1:{ws_port}/ws/scores/",
        api_key=api_key,
        database_url=database_url,
        workdir=workdir,
        description={
            "server": f"gunicorn -w {web_workers} -k gthread --threads {web_threads} (API) + daphne (WebSocket)",
            "workers": f"{workers} x celery -P {pool}" + ("" if pool == "solo" else f" -c {concurrency}"),
            "database": "MariaDB/MySQL",
            "redis": redis_url,
        },
    )
    gunicorn = [str(BIN / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{api_port}", "-w", str(web_workers),
                "-k", "gthread", "--threads", str(web_threads), "--keep-alive", "30", "--backlog", "2048", "--timeout", "120"]
    stack.procs.append(_spawn("web", "gunicorn", gunicorn, env, workdir))
    stack.procs.append(
        _spawn("ws", "daphne", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(ws_port), "config.asgi:application"],
               env, workdir)
    )
    for index in range(workers):
        # the scoring workers of `make worker` (the benchmark runs no file import)
        args = [str(BIN / "celery"), "-A", "config", "worker", "-l", "warning", "-P", pool,
                *([] if pool == "solo" else ["-c", str(concurrency)]), "-Q", "scoring,realtime,celery",
                "-n", f"bench{index}@%h", "--without-gossip", "--without-mingle"]
        stack.procs.append(_spawn("worker", f"celery{index}", args, env, workdir))
    for index in range(import_workers):
        # the long jobs' workers of `make worker-imports` (file imports, rescoring, decay refresh)
        args = [str(BIN / "celery"), "-A", "config", "worker", "-l", "warning", "-P", "prefork", "-c", "1",
                "-Q", "imports", "-n", f"bench-imports{index}@%h", "--without-gossip", "--without-mingle"]
        stack.procs.append(_spawn("imports", f"celery-imports{index}", args, env, workdir))
        workers += 1  # counted by /health like the others
    for index in range(outbound_workers):
        # the outbound webhook sender's workers (queue "outbound": a slow receiver never holds up scoring)
        args = [*(["nice", "-n", str(outbound_nice)] if outbound_nice else []),
                str(BIN / "celery"), "-A", "config", "worker", "-l", "warning", "-P", "prefork",
                "-c", str(outbound_concurrency), "-Q", "outbound", "-n", f"bench-outbound{index}@%h",
                "--without-gossip", "--without-mingle"]
        stack.procs.append(_spawn("outbound", f"celery-outbound{index}", args, env, workdir))
        workers += 1
    if beat:
        # the periodic sweeps (pending events, undispatched alerts, due deliveries), as `make beat`
        args = [str(BIN / "celery"), "-A", "config", "beat", "-l", "warning", "-s", str(workdir / "celerybeat-schedule")]
        stack.procs.append(_spawn("beat", "celery-beat", args, env, workdir))
    try:
        health = _wait_healthy(stack)
        deadline = time.monotonic() + 60
        while health["checks"]["workers"].get("count", 0) < workers and time.monotonic() < deadline:
            time.sleep(1)
            health = _wait_healthy(stack)
    except Exception:
        stack.stop()
        raise
    stack.env = env
    return stack


def cleanup(stack: Stack, keep: bool) -> None:
    stack.stop()
    if stack.workdir and not keep:
        shutil.rmtree(stack.workdir, ignore_errors=True)

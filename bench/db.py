"""Direct database access for the benchmark: counts for the correctness check, and the raw-write
floor (what the same engine writes when the same rows are batched, with no application around it).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

TABLES = ["leads_lead", "events_event", "scoring_scorechange"]


class Database:
    def __init__(self, url: str):
        self.url = url
        parsed = urlparse(url)
        self.vendor = "mysql" if parsed.scheme.startswith("mysql") else "sqlite"
        if self.vendor == "sqlite":
            self.path = url.split("sqlite:///", 1)[1]
            self.name = Path(self.path).name
        else:
            self.host = parsed.hostname or "127.0.0.1"
            self.port = parsed.port or 3306
            self.user = parsed.username or "root"
            self.password = parsed.password or ""
            self.name = parsed.path.lstrip("/")

    def connect(self, name: str | None = None):
        if self.vendor == "sqlite":
            conn = sqlite3.connect(name or self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        import MySQLdb

        conn = MySQLdb.connect(host=self.host, port=self.port, user=self.user, passwd=self.password,
                               db=name or self.name, charset="utf8mb4")
        conn.autocommit(True)
        return conn

    def scalar(self, sql: str, params=()):
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql.replace("?", "%s") if self.vendor == "mysql" else sql, params)
            return cur.fetchone()[0]
        finally:
            conn.close()

    def counts(self, tag: str) -> dict[str, int]:
        """Stored events, pending events, ScoreChange rows and distinct scored events of a workload."""
        like = f"{tag}-%"
        return {
            "events": self.scalar("SELECT COUNT(*) FROM events_event WHERE event_id LIKE ?", (like,)),
            "pending": self.scalar(
                "SELECT COUNT(*) FROM events_event WHERE event_id LIKE ? AND status = 'pending'", (like,)
            ),
            "score_changes": self.scalar(
                "SELECT COUNT(*) FROM scoring_scorechange sc JOIN events_event e ON sc.event_id = e.id "
                "WHERE e.event_id LIKE ?",
                (like,),
            ),
            "scored_events": self.scalar(
                "SELECT COUNT(DISTINCT sc.event_id) FROM scoring_scorechange sc JOIN events_event e "
                "ON sc.event_id = e.id WHERE e.event_id LIKE ?",
                (like,),
            ),
        }

    # --- the raw-write floor -------------------------------------------------------------------

    def _scratch(self):
        """A scratch copy of the three tables (same DDL, indexes and foreign keys), empty."""
        if self.vendor == "sqlite":
            path = str(Path(self.path).with_name("raw-floor.sqlite3"))
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
            src = sqlite3.connect(self.path)
            ddl = [
                row[0]
                for row in src.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name IN (?, ?, ?) AND sql IS NOT NULL "
                    "ORDER BY type DESC",  # tables before indexes
                    TABLES,
                )
            ]
            src.close()
            conn = self.connect(path)
            for statement in ddl:
                conn.execute(statement)
            return conn
        scratch = f"{self.name}_raw"
        conn = self.connect()
        cur = conn.cursor()
        ddl = []
        for table in TABLES:
            cur.execute(f"SHOW CREATE TABLE `{table}`")
            ddl.append(cur.fetchone()[1])
        cur.execute(f"DROP DATABASE IF EXISTS `{scratch}`")
        cur.execute(f"CREATE DATABASE `{scratch}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        conn.close()
        conn = self.connect(scratch)
        cur = conn.cursor()
        for statement in ddl:
            cur.execute(statement)
        return conn

    def drop_scratch(self) -> None:
        if self.vendor == "mysql":
            conn = self.connect()
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.name}_raw`")
            conn.close()

    def raw_write_rate(self, *, events: int, leads: int, batch: int, hot_share: float = 0.0, seed: int = 7) -> dict:
        """Time: per batch of ``batch`` events, one transaction = upsert the batch's leads, insert the
        event rows, insert the score-change rows. One writer, like one scoring worker."""
        import random

        rng = random.Random(seed)
        lead_ids = [uuid.uuid4().hex for _ in range(leads)]
        lead_emails = [f"raw-{i}@bench.example" for i in range(leads)]
        conn = self._scratch()
        mysql = self.vendor == "mysql"
        ph = "%s" if mysql else "?"
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

        def ts(dt: datetime):
            return dt.replace(tzinfo=None) if mysql else dt.isoformat(sep=" ")

        # (job_title .. fold_state: the scoring model's columns, issue #10; Django sets no database defaults)
        lead_cols = ("id, email, first_name, last_name, company, phone, current_score, max_score, "
                     "last_processed_event_time, last_processed_event_id, created_at, updated_at, "
                     "job_title, fit_score, grade, rule_version, score_as_of, decaying, fold_state")
        if mysql:
            lead_upsert = (" ON DUPLICATE KEY UPDATE current_score=VALUES(current_score), "
                           "last_processed_event_time=VALUES(last_processed_event_time), "
                           "last_processed_event_id=VALUES(last_processed_event_id), updated_at=VALUES(updated_at)")
        else:
            lead_upsert = (" ON CONFLICT(id) DO UPDATE SET current_score=excluded.current_score, "
                           "last_processed_event_time=excluded.last_processed_event_time, "
                           "last_processed_event_id=excluded.last_processed_event_id, updated_at=excluded.updated_at")
        q = "`" if mysql else '"'  # "partition" is a reserved word in MySQL
        event_cols = ("id, event_id, lead_id, event_type, timestamp, received_at, processed, processed_at, status, "
                      f"points, score_after, late, metadata, source, error, {q}partition{q}, rule_version")
        change_cols = ("lead_id, event_id, event_type, previous_score, new_score, delta, reason, late, timestamp, "
                       "created_at, rule_version, rules")

        def values_sql(cols: str, n: int) -> str:
            one = "(" + ", ".join([ph] * (cols.count(",") + 1)) + ")"
            return " VALUES " + ", ".join([one] * n)

        def insert(cur, table: str, cols: str, rows: list, suffix: str = "") -> None:
            per = max(1, 30_000 // (cols.count(",") + 1))  # SQLite's limit on bound variables
            for i in range(0, len(rows), per):
                part = rows[i : i + per]
                cur.execute(f"INSERT INTO {table} ({cols})" + values_sql(cols, len(part)) + suffix,
                            [v for row in part for v in row])

        cur = conn.cursor()
        seq = 0
        started = time.perf_counter()
        for start in range(0, events, batch):
            size = min(batch, events - start)
            now = datetime.now(timezone.utc)
            picks = [0 if hot_share and rng.random() < hot_share else rng.randrange(leads) for _ in range(size)]
            ev_rows, ch_rows, lead_rows = [], [], {}
            for pick in picks:
                seq += 1
                event_pk = uuid.uuid4().hex
                when = t0 + timedelta(milliseconds=seq)
                ev_rows.append((event_pk, f"raw-{seq:09d}", lead_ids[pick], "PAGE_VIEW", ts(when), ts(now), True,
                                ts(now), "processed", 5, seq % 1000, False, "{}", "batch", "", pick % 8, 1))
                ch_rows.append((lead_ids[pick], event_pk, "PAGE_VIEW", 0, 5, 5, "PAGE_VIEW +5", False, ts(when),
                                ts(now), 1, '["r1"]'))
                lead_rows[pick] = (lead_ids[pick], lead_emails[pick], "", "", "", "", seq % 1000, 1000, ts(when),
                                   f"raw-{seq:09d}", ts(now), ts(now), "", 0, "D4", 1, ts(now), False, "{}")
            leads_sorted = [lead_rows[k] for k in sorted(lead_rows, key=lambda k: lead_ids[k])]
            cur.execute("BEGIN" if not mysql else "START TRANSACTION")
            insert(cur, "leads_lead", lead_cols, leads_sorted, lead_upsert)
            insert(cur, "events_event", event_cols, ev_rows)
            insert(cur, "scoring_scorechange", change_cols, ch_rows)
            cur.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
        self.drop_scratch()
        return {"events": events, "batch": batch, "seconds": round(elapsed, 3), "events_per_s": round(events / elapsed)}

"""Production refuses unsafe settings; the embedded default needs nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_settings(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}}
    environ.update({"DJANGO_SETTINGS_MODULE": "config.settings", "TARGETGRID_DATA_DIR": str(tmp_path)}, **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "django-insecure-" + "x" * 60}, "SECRET_KEY"),
        ({"SECRET_KEY": "k" * 30 + "abcdefghijklmnopqrstuvwxyz", "DEBUG": "1"}, "DEBUG"),
        ({"SECRET_KEY": "k" * 30 + "abcdefghijklmnopqrstuvwxyz"}, "ALLOWED_HOSTS"),
    ],
)
def test_production_refuses_unsafe_settings(tmp_path, env, message):
    result = load_settings(tmp_path, TARGETGRID_ENV="production", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_safe_settings(tmp_path):
    result = load_settings(
        tmp_path,
        TARGETGRID_ENV="production",
        SECRET_KEY="k" * 30 + "abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="scores.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_embedded_default_keeps_its_generated_secret(tmp_path):
    assert load_settings(tmp_path).returncode == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert load_settings(tmp_path).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key


def test_bad_env_values_are_named(tmp_path):
    result = load_settings(tmp_path, TARGETGRID_LATE_EVENTS="sometimes")
    assert result.returncode != 0 and "TARGETGRID_LATE_EVENTS" in result.stderr
    result = load_settings(tmp_path, DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG" in result.stderr

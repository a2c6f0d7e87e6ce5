"""``python -m workers config``: what the worker would run with, secrets masked."""

from __future__ import annotations

import json

import pytest

from workers.cli import main


def test_config_prints_the_effective_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKERS_TENANTS", "acme,beats")
    monkeypatch.setenv("WORKERS_REDIS_URL", "rediss://fleet:s3cret@redis.internal:6380/0")
    monkeypatch.setenv("WORKERS_AUDIT_KEY", "k3y-material")
    monkeypatch.setenv("WORKERS_KAFKA_PRODUCER__COMPRESSION_TYPE", "zstd")
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "WORKERS_TENANTS=acme,beats" in lines
    assert "WORKERS_REDIS_URL=rediss://fleet:***@redis.internal:6380/0" in lines
    assert "WORKERS_KAFKA_PRODUCER__COMPRESSION_TYPE=zstd" in lines
    assert "WORKERS_AUDIT_KEY=**********" in lines
    assert not [line for line in lines if "s3cret" in line or "k3y-material" in line]
    assert main(["config", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["tenants"] == ["acme", "beats"] and as_json["audit_key"] == "**********"


def test_config_says_what_is_wrong_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKERS_KAFKA_CONSUMER__ENABLE_AUTO_COMMIT", "true")
    assert main(["config"]) == 2
    assert "enable.auto.commit: the worker sets these itself" in capsys.readouterr().err


def test_config_schema_describes_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--schema"]) == 0
    properties = json.loads(capsys.readouterr().out)["properties"]
    assert {"kafka_bootstrap", "redis_url", "tenants", "kafka_consumer"} <= set(properties)


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    """The distribution is `music-stream-workers` (PyPI's `workers` is another project):
    --version reads its metadata, not a fallback."""
    import importlib.metadata
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())[
        "project"
    ]
    assert project["name"] == "music-stream-workers"
    assert importlib.metadata.version(project["name"]) == project["version"]
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert project["version"] in capsys.readouterr().out

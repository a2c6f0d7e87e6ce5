"""README.md, README.fr.md and README.de.md say the same: structure, commands, contract."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from workers.core.errors import Reason
from workers.core.records import INPUT_TOPICS, OUTPUT_TOPICS
from workers.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
READMES = {
    lang: (ROOT / name).read_text()
    for lang, name in (("en", "README.md"), ("fr", "README.fr.md"), ("de", "README.de.md"))
}


def headings(text: str) -> list[int]:
    return [len(m.group(1)) for m in re.finditer(r"^(#+) ", text, re.M)]


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, content) of fenced blocks; shell blocks without their (translated) comments."""
    blocks = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang == "sh":
            commands = "\n".join(line.split("#")[0].rstrip() for line in body.splitlines())
            blocks.append((lang, commands))
        else:  # a picture: its labels are translated, its presence is what must agree
            blocks.append((lang, ""))
    return blocks


def table_shapes(text: str) -> list[int]:
    """Row count of each table, in order."""
    shapes, rows = [], 0
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows += 1
        elif rows:
            shapes.append(rows)
            rows = 0
    return shapes


def facts(text: str) -> dict[str, set[str]]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = set(re.findall(r"`([^`]+)`", text))
    return {
        "settings": set(re.findall(r"WORKERS_[A-Z_]+", text)),
        "topics": {t for t in (*INPUT_TOPICS, *OUTPUT_TOPICS) if f"`{t}`" in text},
        "reasons": {r.value for r in Reason if f"`{r.value}`" in text},
        "endpoints": {s for s in spans if re.fullmatch(r"/\w+", s)},
        "make": set(re.findall(r"make \w+", text)),
        "links": set(re.findall(r"\]\(([^)]+)\)", text)),
        "paths": {s for s in spans if re.fullmatch(r"(workers|deploy|schemas|tests)/[\w./-]*", s)},
    }


@pytest.mark.parametrize("lang", ["fr", "de"])
def test_translations_have_the_same_structure_and_commands(lang: str) -> None:
    english, other = READMES["en"], READMES[lang]
    assert headings(other) == headings(english)
    assert code_blocks(other) == code_blocks(english)
    assert table_shapes(other) == table_shapes(english)
    assert facts(other) == facts(english)


def test_readme_covers_the_contract() -> None:
    found = facts(READMES["en"])
    assert found["topics"] == {*INPUT_TOPICS, *OUTPUT_TOPICS}
    assert found["reasons"] == {r.value for r in Reason}
    assert found["endpoints"] >= {"/metrics", "/healthz", "/ready"}
    assert {
        f"WORKERS_{n.upper()}" for n in ("kafka_bootstrap", "redis_url", "tenants", "metrics_port")
    } <= found["settings"]
    documented = {f"WORKERS_{n.upper()}" for n in Settings.model_fields}
    assert documented <= found["settings"], documented - found["settings"]
    assert {"make demo", "make test"} <= found["make"]
    for path in found["paths"] | {p for p in found["links"] if not p.startswith("http")}:
        assert (ROOT / path.split("#")[0]).exists(), path


def test_the_contract_page_covers_topics_codes_and_endpoints() -> None:
    contract = (ROOT / "docs" / "contract.md").read_text()
    for topic in (*INPUT_TOPICS, *OUTPUT_TOPICS):
        assert f"`{topic}`" in contract, topic
    for reason in Reason:
        assert f"`{reason.value}`" in contract, reason
    for endpoint in ("/metrics", "/healthz", "/ready"):
        assert f"`{endpoint}`" in contract
    for text in READMES.values():
        assert "docs/contract.md" in text
        assert "docs/architecture.md" in text


def test_ci_runs_the_readme_test_command() -> None:
    """CI's script parses, and what it finally runs is the README's test command."""
    script = ROOT / ".ci" / "run"
    parsed = subprocess.run(
        ["bash", "-n", str(script)], check=False, capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr
    commands = [
        line.strip()
        for line in script.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "make test"
    assert any("make test" in body for _, body in code_blocks(READMES["en"]))

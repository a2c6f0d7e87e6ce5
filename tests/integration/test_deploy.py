"""Deployment artefacts, validated the way an operator's tools would: promtool, the
Kubernetes schemas, and cross-checks against the settings and the contract."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import needs
from workers.core.records import INPUT_TOPICS, OUTPUT_TOPICS
from workers.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTING_VARS = {f"WORKERS_{name.upper()}" for name in Settings.model_fields}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        needs(False, "promtool", "apt-get install prometheus")
    return found


def run_promtool(*args: str | Path) -> str:
    done = subprocess.run(
        [promtool(), *map(str, args)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    run_promtool("check", "rules", DEPLOY / "prometheus/alerts.yml")
    out = run_promtool("test", "rules", DEPLOY / "prometheus/alerts_test.yml")
    assert "SUCCESS" in out


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tested = (DEPLOY / "prometheus/alerts_test.yml").read_text()
    untested = {a for a in alerts if f"alertname: {a}" not in tested}
    # liveness alerts on `up` and `workers_ready` are plain thresholds; the rest need tests
    assert untested <= {"WorkersDown", "WorkersNotReady", "WorkersLatencyP99High"}


def test_every_alert_links_to_its_runbook() -> None:
    """Each alert's runbook_url names a section of docs/runbooks.md, and every section
    there is an alert's (GitHub-style anchors: the heading, lower case)."""
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    alerts = {r["alert"]: r["annotations"] for g in rules["groups"] for r in g["rules"]}
    runbooks = (DEPLOY.parent / "docs" / "runbooks.md").read_text()
    sections = {line[3:].strip() for line in runbooks.splitlines() if line.startswith("## ")}
    assert sections == set(alerts)
    for alert, notes in alerts.items():
        assert notes["runbook_url"] == f"docs/runbooks.md#{alert.lower()}", alert


def test_prometheus_configs_are_valid(tmp_path: Path) -> None:
    run_promtool("check", "config", DEPLOY / "prometheus/prometheus-k8s.yml")
    # the compose config names its rule file at the path compose mounts it on
    shutil.copy(DEPLOY / "prometheus/alerts.yml", tmp_path / "alerts.yml")
    config = (DEPLOY / "prometheus/prometheus-compose.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    )
    run_promtool("check", "config", tmp_path / "prometheus.yml")


def test_dashboard_is_generated_and_every_query_is_valid_promql(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_dashboard
    finally:
        sys.path.pop(0)
    committed = json.loads((DEPLOY / "grafana/dashboards/workers.json").read_text())
    assert committed == make_dashboard.dashboard(), "run tools/make_dashboard.py"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", ".*", expr)}
                    for i, expr in enumerate(make_dashboard.expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    run_promtool("check", "rules", path)
    titles = " ".join(p["title"] for p in committed["panels"])
    for topic in ("latency", "per stage", "Anomalies", "Dead letters", "Tenant"):
        assert topic.lower() in titles.lower()


def manifests() -> list[dict[str, object]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_kubernetes_manifests_validate_against_their_schemas() -> None:
    import kubernetes_validate

    for doc in manifests():
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_deployment_probes_secrets_and_settings() -> None:
    by_kind = {d["kind"]: d for d in manifests()}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]  # type: ignore[index]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    secret_refs = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert "WORKERS_REDIS_URL" in secret_refs
    config = by_kind["ConfigMap"]["data"]  # type: ignore[index]
    assert "WORKERS_REDIS_URL" not in config, "secrets go by reference, not in the ConfigMap"
    assert set(config) <= SETTING_VARS
    port = int(config["WORKERS_METRICS_PORT"])
    assert container["ports"][0]["containerPort"] == port
    annotations = by_kind["Deployment"]["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    assert int(annotations["prometheus.io/port"]) == port


def test_compose_stack_agrees_with_settings_topics_and_files() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "topics", "redis", "worker", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image), f"{name}: image not pinned: {image!r}"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    worker = services["worker"]
    assert (ROOT / worker["build"]["dockerfile"]).exists()
    assert worker["deploy"]["replicas"] >= 2
    assert set(worker["environment"]) <= SETTING_VARS
    port = int(worker["environment"]["WORKERS_METRICS_PORT"])
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus-compose.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["dns_sd_configs"][0] == {
        "names": ["worker", "tagger"],
        "type": "A",
        "port": port,
        "refresh_interval": "15s",
    }
    loops = re.findall(r"for t in ([^;]+);", services["topics"]["command"][0])
    created = [topic for loop in loops for topic in loop.split()]
    assert sorted(created) == sorted([*INPUT_TOPICS, *OUTPUT_TOPICS])
    for service in services.values():
        for volume in service.get("volumes", []):
            local = volume.split(":")[0]
            if local.startswith("./"):
                assert (ROOT / local).exists(), volume
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", dockerfile, re.M)
    assert f"EXPOSE {port}" in dockerfile


def test_the_tested_set_pins_every_declared_dependency() -> None:
    """constraints.txt (what CI and the image install with) pins each dependency of the
    runtime and of every extra, at a version its specifier admits; the image uses it."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])
    assert "-c constraints.txt" in (DEPLOY / "Dockerfile").read_text()
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()

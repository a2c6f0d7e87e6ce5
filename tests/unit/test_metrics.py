"""What an operator reads on /metrics about the process itself: which role, engine,
group and version it is, and its CPU, memory and garbage collection, all under
``workers_``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from workers.runtime.metrics import Metrics
from workers.runtime.settings import VERSION, Settings

BUILD = {"version": VERSION, "role": "tagger", "engine": "rdkafka", "group": "workers-tagger"}


def test_build_info_tells_the_tagger_from_the_core_worker() -> None:
    registry = CollectorRegistry()
    Metrics(registry, build=BUILD)
    assert registry.get_sample_value("workers_build_info", BUILD) == 1.0
    assert registry.get_sample_value("workers_build_info", {**BUILD, "role": "core"}) is None


def test_process_and_garbage_collector_figures_are_exposed_under_the_prefix() -> None:
    registry = CollectorRegistry()
    Metrics(registry, build=BUILD)
    assert (registry.get_sample_value("workers_process_cpu_seconds_total") or 0) > 0
    assert (registry.get_sample_value("workers_process_resident_memory_bytes") or 0) > 0
    assert registry.get_sample_value("workers_python_gc_collections_total", {"generation": "0"})
    names = [
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(registry).decode().splitlines()
        if line and not line.startswith("#")
    ]
    assert names and all(name.startswith("workers_") for name in names), names


def test_each_client_id_names_its_group_role_and_instance() -> None:
    core = Settings(tenants=["acme"])
    tagger = Settings(tenants=["acme"], role="tagger")
    pinned = Settings(tenants=["acme"], group_instance_id="pod-7")
    assert core.client_id != tagger.client_id
    assert core.client_id.startswith("workers-core-")
    assert tagger.client_id.startswith("workers-tagger-")
    assert "-pod-7-" in pinned.client_id

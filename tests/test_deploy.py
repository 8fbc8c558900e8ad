"""The deploy/ manifests parse and keep the properties that matter for correctness."""

import configparser
from pathlib import Path

from ruamel.yaml import YAML

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _yaml_docs(path):
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d]


def test_kubernetes_runs_exactly_one_runner_with_recreate():
    docs = _yaml_docs(DEPLOY / "kubernetes" / "zmi-reconciler.yaml")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    main = dep["spec"]["template"]["spec"]["containers"][0]
    assert main["livenessProbe"]["httpGet"]["path"] == "/api/v1/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/api/v1/readyz"
    assert any(v["mountPath"] == "/data" for v in main["volumeMounts"])


def test_systemd_unit_has_user_restart_and_tz():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((DEPLOY / "systemd" / "zmi-reconciler.service").read_text())
    svc = unit["Service"]
    assert svc["User"] == "zmi" and svc["Restart"] == "on-failure"
    assert "serve" in svc["ExecStart"]


def test_compose_and_workflow_parse():
    compose = _yaml_docs(DEPLOY / "docker" / "compose.yaml")[0]
    assert "/schedules.d" in " ".join(compose["services"]["zmi-reconciler"]["volumes"])
    wf = _yaml_docs(DEPLOY / "github" / "validate-schedules.yml")[0]
    steps = " ".join(s.get("run", "") for s in wf["jobs"]["validate"]["steps"])
    assert "validate --format github" in steps


def test_dockerfile_runs_as_non_root_with_healthcheck():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "\nUSER zmi" in text and "HEALTHCHECK" in text and "tzdata" in text

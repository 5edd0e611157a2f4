#!/usr/bin/env python3
"""Checks the deployment files without a cluster: the compose file parses (`docker-compose
config`), every Kubernetes manifest validates against the API's schemas (`kubernetes-validate
--strict`), and what the schemas cannot say: every Deployment has probes and resource requests
and limits, every worker queue has a Deployment and a PodDisruptionBudget, Secrets hold
placeholders only, and every AVB_* variable the files set is one AgentVoiceBox reads (from the
README's list), so a typo fails here. One line per check; non-zero exit naming the file.

Run by .ci/run with the tools venv's python: deploy/install-deps.sh installs docker-compose
(Debian) and kubernetes-validate (PyPI)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
COMPOSE = HERE / "compose"
K8S = HERE / "kubernetes"
QUEUES = ["avb-workflows", "avb-tts", "avb-billing", "avb-provisioning", "avb-devices", "avb-upstream"]
failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok' if ok else 'FAILED':<7} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def known_variables() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"\b(AVB_[A-Z0-9_]+)\b", readme))


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


# 1. compose
out = run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], COMPOSE)
check("compose/docker-compose.yml parses (docker-compose config)", out.returncode == 0, out.stderr.strip())
compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())

# 2. Kubernetes schemas
manifests = sorted(K8S.glob("*.yaml"))
validate = Path(sys.executable).parent / "kubernetes-validate"
out = run([str(validate), "--strict", "--quiet", "-k", "1.32", *map(str, manifests)], K8S)
check("kubernetes manifests match the 1.32 API schemas (kubernetes-validate --strict)",
      out.returncode == 0, (out.stdout + out.stderr).strip())
docs = [(m.name, d) for m in manifests for d in yaml.safe_load_all(m.read_text()) if d]

# 3. What the schemas cannot say.
deployments = [(f, d) for f, d in docs if d["kind"] == "Deployment"]
for f, d in deployments:
    name = d["metadata"]["name"]
    for c in d["spec"]["template"]["spec"]["containers"]:
        probes = [p for p in ("readinessProbe", "livenessProbe") if p not in c]
        check(f"{f} {name}: readiness and liveness probes", not probes, f"missing {probes}" if probes else "")
        res = c.get("resources", {})
        check(f"{f} {name}: resource requests and limits",
              {"cpu", "memory"} <= set(res.get("requests", {})) and {"cpu", "memory"} <= set(res.get("limits", {})))
pdb_selectors = [d["spec"]["selector"]["matchLabels"] for _, d in docs if d["kind"] == "PodDisruptionBudget"]
for queue in QUEUES:
    serving = [d for _, d in deployments
               if queue in d["spec"]["template"]["spec"]["containers"][0].get("args", [])]
    check(f"kubernetes: a Deployment serves {queue}", len(serving) == 1)
    if serving:
        labels = serving[0]["spec"]["selector"]["matchLabels"]
        check(f"kubernetes: {queue} has a PodDisruptionBudget", labels in pdb_selectors)
    in_compose = [s for s in compose["services"].values() if queue in s.get("command", [])]
    check(f"compose: a service serves {queue}", len(in_compose) == 1)
api = [d for _, d in deployments if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "serve"]
check("kubernetes: the api has a Deployment with a PodDisruptionBudget",
      len(api) == 1 and api[0]["spec"]["selector"]["matchLabels"] in pdb_selectors)

for f, d in docs:
    if d["kind"] == "Secret":
        values = {**d.get("stringData", {}), **d.get("data", {})}
        real = [k for k, v in values.items() if "CHANGE_ME" not in str(v)]
        check(f"{f} Secret {d['metadata']['name']}: placeholders only", not real, f"real values in {real}" if real else "")

# 4. Every AVB_* variable set is one AgentVoiceBox reads.
known = known_variables()
used: dict[str, set[str]] = {}
env_file = COMPOSE / "avb.env"
for line in env_file.read_text().splitlines():
    if "=" in line and not line.lstrip().startswith("#"):
        used.setdefault(line.split("=", 1)[0].strip(), set()).add("compose/avb.env")
for s in compose["services"].values():
    for k in (s.get("environment") or {}):
        used.setdefault(k, set()).add("compose/docker-compose.yml")
for f, d in docs:
    if d["kind"] == "ConfigMap":
        for k in d.get("data", {}):
            used.setdefault(k, set()).add(f)
unknown = {k: sorted(v) for k, v in used.items() if k.startswith("AVB_") and k not in known}
check("every AVB_* variable set is one AgentVoiceBox reads (README)", not unknown, str(unknown) if unknown else "")
check("compose/avb.env holds placeholders, no real password",
      all("CHANGE_ME" in l for l in env_file.read_text().splitlines() if "://" in l and "@" in l))

if failures:
    print(f"failed: {', '.join(failures)}")
    sys.exit(1)
print(f"deployment files: all {len(docs)} manifests and the compose file check out")

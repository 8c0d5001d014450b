"""deploy/ cannot rot silently: systemd-analyze verifies the units, the compose file and Dockerfile are parsed
and checked for what the README promises (non-root, healthcheck, noeviction, GPU reservation, named volumes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.helpers import REPO_ROOT, require_tool

DEPLOY = REPO_ROOT / "deploy"
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=dicomnode", "ReadWritePaths=/var/lib/dicomnode")


def test_systemd_units_verify_and_are_hardened(tmp_path: Path) -> None:
    dicomnode = Path(sys.executable).parent / "dicomnode"  # the installed command stands in for /opt/dicomnode
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        assert all(option in text for option in HARDENING), f"{unit.name} lacks hardening"
        (tmp_path / unit.name).write_text(text.replace("/opt/dicomnode/bin/dicomnode", str(dicomnode)))
    units = [tmp_path / "dicomnode.service", tmp_path / "dicomnode-worker@0.service"]
    out = subprocess.run(
        [require_tool("systemd-analyze"), "verify", *map(str, units)], capture_output=True, text=True, check=False
    )
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "dicomnode" in line]
    assert out.returncode == 0 and problems == [], out.stdout + out.stderr
    assert "--gpu %i" in (DEPLOY / "systemd" / "dicomnode-worker@.service").read_text()


def test_compose_file_has_the_distributed_setup() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"node", "worker", "redis", "postgres"}
    redis = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy noeviction" in redis and "--appendonly yes" in redis
    [gpu] = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"] and gpu["driver"] == "nvidia"
    assert set(compose["volumes"]) >= {"storage", "catalog", "redis-data"}
    for name in ("node", "worker"):
        service = services[name]
        assert "storage:/var/lib/dicomnode/storage" in service["volumes"]
        assert service["environment"]["DICOMNODE_ANALYSIS__BROKER_URL"].startswith("redis://redis:")
        mounted = next(v for v in service["volumes"] if v.endswith("/etc/dicomnode/dicomnode.toml:ro"))
        assert (DEPLOY / mounted.split(":")[0]).is_file()
    assert services["node"]["command"][0] == "serve" and services["worker"]["command"][0] == "worker"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    assert {"build", "base-cpu", "base-cuda", "runtime"} <= set(stages)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD python -c .*/healthz", text, re.MULTILINE)
    assert text.index("torch>=2.4") < text.index("/wheels/"), "torch from the variant's index before the project"
    assert 'ENTRYPOINT ["dicomnode"]' in text

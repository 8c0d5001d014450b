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
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        assert "PrivateDevices" not in text, f"{unit.name} would hide the GPUs"
        assert "UMask=0027" in text and "DevicePolicy=closed" in text and "DeviceAllow=/dev/nvidiactl rw" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in (DEPLOY / "systemd" / "dicomnode.service").read_text()


def test_compose_file_has_the_distributed_setup_and_builds_it() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert set(services) == {"node", "worker", "redis", "postgres"}
    redis = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy noeviction" in redis and "--appendonly yes" in redis
    [gpu] = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"] and gpu["driver"] == "nvidia"
    assert set(compose["volumes"]) >= {"storage", "catalog", "redis-data"}
    for name, variant in (("node", "cpu"), ("worker", "cuda")):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile" and service["build"]["args"]["VARIANT"] == variant
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "storage:/var/lib/dicomnode/storage" in service["volumes"]
        assert service["environment"]["DICOMNODE_ANALYSIS__BROKER_URL"].startswith("redis://redis:")
        [config] = [v for v in service["volumes"] if isinstance(v, dict)]
        assert (config["source"], config["target"]) == ("./dicomnode.toml", "/etc/dicomnode/dicomnode.toml")
        assert config["read_only"] and config["bind"]["create_host_path"] is False  # never the example
    assert services["node"]["command"][0] == "serve" and services["worker"]["command"][0] == "worker"
    # no secret in the file: the password comes from deploy/.env, and compose refuses to start without it
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "${POSTGRES_PASSWORD:?" in services["node"]["environment"]["DICOMNODE_CATALOG__URL"]
    assert "example.toml:" not in text
    assert "POSTGRES_PASSWORD=\n" in (DEPLOY / "env.example").read_text()
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/.env" in ignored and "deploy/dicomnode.toml" in ignored


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    assert {"build", "base-cpu", "base-cuda", "runtime"} <= set(stages)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert text.index('"torch==${TORCH_VERSION}"') < text.index("/wheels/"), "torch from the variant's index first"
    makefile_torch = re.search(r"^TORCH_VERSION \?= (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert makefile_torch and f"ARG TORCH_VERSION={makefile_torch.group(1)}" in text, "the same torch as CI"
    assert 'CMD ["dicomnode", "health"]' in text and "ENV DICOMNODE_CONFIG=/etc/dicomnode/dicomnode.toml" in text
    assert 'ENTRYPOINT ["dicomnode"]' in text

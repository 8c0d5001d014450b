"""`dicomnode demo`: the whole product on this machine in a minute.

A PACS stand-in (dcmtk storescp) and a node (`dicomnode serve`, embedded analysis) start in a work folder;
five synthetic studies (CT heads and chest radiographs, routine and acute, with order priorities) are pushed
with dcmtk storescu as a scanner would; the node analyses them, sends SR and SEG to the PACS stand-in and
reorders the worklist. A summary says what happened. The studies are phantoms, the models are trained on
phantoms: nothing here is clinical.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
from pydicom.uid import SecondaryCaptureImageStorage
from sqlalchemy import Engine, func, select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Export
from dicomnode.catalog.states import UNSENT
from dicomnode.demo.synthetic import SeriesSpec, SyntheticPatient, radiograph, volume_series, write_volume_series
from dicomnode.errors import DicomnodeError

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}  # dcmtk waits on delayed ACKs on loopback without it
NODE_AE, PACS_AE = "DICOMNODE", "PACS"


@dataclass(frozen=True)
class DemoStudy:
    title: str
    kind: str  # "ct" or "xr"
    priority: str
    acute: bool
    seed: int


# Pushed in this order: the acute ones arrive last and must overtake. The seeds are fixed; the bleed's is one the
# model detects (it misses some phantoms: see `dicomnode models evaluate ct-hemorrhage`).
STUDIES = (
    DemoStudy("CT head, routine order, normal", "ct", "ROUTINE", False, 11),
    DemoStudy("CT head, STAT order, normal", "ct", "STAT", False, 12),
    DemoStudy("Chest X-ray, HIGH order, normal", "xr", "HIGH", False, 13),
    DemoStudy("CT head, routine order, acute bleed", "ct", "ROUTINE", True, 16),
    DemoStudy("Chest X-ray, LOW order, pneumothorax", "xr", "LOW", True, 15),
)


@dataclass
class DemoRun:
    workdir: Path
    node_url: str
    token: str
    titles: dict[str, str]  # study UID -> title
    pacs_received: dict[str, list[str]]  # study UID -> modalities received (SR, SEG)
    worklist: list[dict]


def write_study(study: DemoStudy, folder: Path, number: int) -> tuple[str, list[Path]]:
    """The study's files (a CT head phantom series or one chest radiograph); returns (study UID, files)."""
    from models.phantoms.chest_xr import chest_radiograph
    from models.phantoms.ct_head import ct_head

    rng = np.random.default_rng(study.seed)
    patient = SyntheticPatient(name=f"DEMO^PATIENT{number}", patient_id=f"DEMO{number:04d}")
    common = {"priority": study.priority, "patient": patient, "accession": f"DEMOACC{number:04d}"}
    if study.kind == "ct":
        p = ct_head(rng, bleeds=1 if study.acute else 0)
        spec = volume_series(p.hu, p.spacing_mm, body_part="HEAD", description="CT HEAD WO CONTRAST", **common)
        return spec.study_uid, write_volume_series(spec, p.hu, folder)
    p = chest_radiograph(rng, pneumothorax=study.acute)
    spec = SeriesSpec(
        modality="DX", body_part="CHEST", description="CHEST PA", pixel_spacing_mm=p.spacing_mm[0], **common
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dx.dcm"
    radiograph(spec, p.image).save_as(path, enforce_file_format=True)
    return spec.study_uid, [path]


def run_demo(
    workdir: Path, say: Callable[[str], None], keep_running: bool = False, http_port: int = 0, timeout_s: float = 300
) -> DemoRun:
    """Run the demo in `workdir` (emptied first); return what happened. Raises DemoError on a failure."""
    for tool in ("storescp", "storescu", "echoscu"):
        if shutil.which(tool) is None:
            raise DemoError(f"{tool} not found: the demo uses dcmtk as scanner and PACS (apt-get install dcmtk)")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    token = secrets.token_urlsafe(18)
    pacs_port, node_port, http_port = free_port(), free_port(), http_port or free_port()
    config = write_config(workdir, node_port, http_port, pacs_port, token)
    processes: list[subprocess.Popen] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):  # stop the children as Ctrl-C does (the finally below)
            signal.signal(sig, _exit_on_signal)
    try:
        processes.append(start_pacs(workdir / "pacs", pacs_port))
        processes.append(start_node(workdir, config))
        say(
            f"node {NODE_AE}@127.0.0.1:{node_port} and PACS stand-in {PACS_AE}@127.0.0.1:{pacs_port} (dcmtk "
            f"storescp) are running in {workdir}"
        )
        titles = {}
        for number, study in enumerate(STUDIES, 1):
            uid, files = write_study(study, workdir / "studies" / f"{number}", number)
            titles[uid] = study.title
            sent = subprocess.run(
                ["storescu", "-aec", NODE_AE, "127.0.0.1", str(node_port), *map(str, files)],
                env=DCMTK_ENV,
                capture_output=True,
                text=True,
                check=False,
            )
            if sent.returncode != 0:
                raise DemoError(f"storescu failed for '{study.title}': {sent.stderr.strip()[-300:]}")
            say(f"pushed {study.title} ({len(files)} instance{'s' * (len(files) > 1)}) with storescu")
        say("waiting for the node: study completion (2 s quiet), analysis, SR/SEG to PACS ...")
        api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {token}"})
        received = _wait_for_results(api, workdir, titles, timeout_s)
        worklist = api.get("/api/worklist").json()["items"]
        run = DemoRun(workdir, f"http://127.0.0.1:{http_port}/", token, titles, received, worklist)
        for line in summary(run):
            say(line)
        if keep_running:
            say(f"\nopen {run.node_url} and sign in with the token {token}; Ctrl-C stops the demo")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return run
    finally:
        for proc in reversed(processes):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


class DemoError(DicomnodeError, RuntimeError):
    pass


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def summary(run: DemoRun) -> list[str]:
    lines = ["", "PACS stand-in received (results the node sent back as DICOM):"]
    for uid, title in run.titles.items():
        got = run.pacs_received.get(uid, [])
        kinds = [f"{n} {kind}s" if n > 1 else kind for kind, n in sorted(Counter(got).items())]
        lines.append(f"  {title:40s} {', '.join(kinds) or 'nothing'}")
    lines += ["", "Reading worklist, most urgent first (arrival order was the order pushed above):"]
    for item in run.worklist:
        lines.append(
            f"  {item['rank']:>2}. {run.titles.get(item['study_instance_uid'], '?'):40s} {item['explanation']}"
        )
    lines += [
        "",
        "The acute studies arrived last and were moved up by the AI; none was removed or hidden, and "
        "each would still rise with waiting time. Synthetic phantoms and phantom-trained models: not for "
        "clinical use.",
    ]
    return lines


def _wait_for_results(
    api: httpx.Client, workdir: Path, titles: dict[str, str], timeout_s: float
) -> dict[str, list[str]]:
    """Until every study was analysed (its item has an AI entry) and the node's outbox has sent everything."""
    deadline = time.monotonic() + timeout_s
    catalog = open_catalog(f"sqlite:///{workdir / 'catalog.sqlite'}")
    while True:
        items = api.get("/api/worklist").json()["items"] if _up(api) else []
        analysed = sum(1 for i in items if _has_ai(api, i["uid"]))
        if analysed == len(titles) and _outbox_empty(catalog):
            return _received(workdir / "pacs")
        if time.monotonic() > deadline:
            raise DemoError(
                f"after {timeout_s:.0f} s only {analysed} of {len(titles)} studies were analysed; "
                "see node.log in the work folder"
            )
        time.sleep(1)


def _outbox_empty(catalog: Engine) -> bool:
    with catalog.connect() as conn:
        unsent = conn.scalar(select(func.count()).where(Export.state.in_(UNSENT)))
        return unsent == 0 and conn.scalar(select(func.count()).select_from(Export)) > 0


def _has_ai(api: httpx.Client, uid: str) -> bool:
    return any(h["event"] == "ai" for h in api.get(f"/api/worklist/{uid}").json()["history"])


def _up(api: httpx.Client) -> bool:
    try:
        return api.get("/api/me").status_code == 200
    except httpx.HTTPError:
        return False


def _received(pacs: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(pacs.glob("*")) if pacs.exists() else []:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # storescp may be writing it
            continue
        kind = "key image" if ds.SOPClassUID == SecondaryCaptureImageStorage else str(ds.Modality)
        found.setdefault(str(ds.StudyInstanceUID), []).append(kind)
    return found


def write_config(workdir: Path, node_port: int, http_port: int, pacs_port: int, token: str) -> Path:
    destination = f"{PACS_AE}@127.0.0.1:{pacs_port}"
    text = f"""
[dicom]
ae_title = "{NODE_AE}"
host = "127.0.0.1"
port = {node_port}
[storage]
path = "{workdir / "storage"}"
min_free_bytes = 0
[catalog]
url = "sqlite:///{workdir / "catalog.sqlite"}"
[assembly]
study_quiet_seconds = 2
poll_seconds = 0.2
[http]
host = "127.0.0.1"
port = {http_port}
[[http.tokens]]
name = "demo-reader"
token = "{token}"
[[routing.rules]]
name = "ct-head"
models = ["ct-hemorrhage"]
destinations = ["{destination}"]
[routing.rules.match]
modality = ["CT"]
body_part = ["HEAD"]
[[routing.rules]]
name = "chest-radiograph"
models = ["cxr-pneumothorax"]
destinations = ["{destination}"]
[routing.rules.match]
modality = ["CR", "DX"]
body_part = ["CHEST"]
"""
    path = workdir / "dicomnode.toml"
    path.write_text(text)
    return path


def start_pacs(folder: Path, port: int, received: Path | None = None) -> subprocess.Popen:
    """dcmtk storescp writing what it receives to `folder`. With `received`, a file of the same name appears there
    once each one is complete (storescp writes into the file itself as the data arrive)."""
    folder.mkdir(parents=True, exist_ok=True)
    marks = []
    if received is not None:
        received.mkdir(parents=True, exist_ok=True)
        marks = ["--exec-on-reception", f"touch '{received}/#f'"]
    proc = subprocess.Popen(
        ["storescp", "-aet", PACS_AE, "-od", str(folder), "+xa", *marks, str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    _wait(
        lambda: (
            subprocess.run(
                ["echoscu", "-aec", PACS_AE, "127.0.0.1", str(port)], env=DCMTK_ENV, capture_output=True, check=False
            ).returncode
            == 0
        ),
        proc,
        "storescp",
    )
    return proc


def start_node(workdir: Path, config: Path) -> subprocess.Popen:
    log = open(workdir / "node.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnode", "serve", "--config", str(config)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    _wait(lambda: "listening ae=" in (workdir / "node.log").read_text(errors="replace"), proc, "dicomnode serve")
    return proc


def _wait(ready: Callable[[], bool], proc: subprocess.Popen, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DemoError(f"{name} did not start")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""PACS stand-ins for export tests: dcmtk storescp (a real PACS-like receiver), and a pynetdicom SCP that
answers a chosen failure status (real DIMSE on a real socket, for refusals storescp cannot be told to give)."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path

import httpx
from pynetdicom import AE, AllStoragePresentationContexts, evt

from tests.support.helpers import DCMTK_ENV, free_port, require_tool, wait_for


class StoreSCP:
    def __init__(self, folder: Path, port: int | None = None, ae_title: str = "PACS") -> None:
        self.folder, self.port, self.ae_title = folder, port or free_port(), ae_title
        self.proc: subprocess.Popen | None = None

    @property
    def destination(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def start(self) -> StoreSCP:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [require_tool("storescp"), "-aet", self.ae_title, "-od", str(self.folder), "+xa", str(self.port)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: (
                subprocess.run(
                    [require_tool("echoscu"), "-aec", self.ae_title, "127.0.0.1", str(self.port)],
                    capture_output=True,
                    env=DCMTK_ENV,
                ).returncode
                == 0
            ),
            timeout=15,
        )
        return self

    def received(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class RefusingSCP:
    """Answers every C-STORE with `status` (0: accepts); counts what it was offered. With `tls`, DICOM over TLS."""

    def __init__(self, status: int, ae_title: str = "PACS", tls: ssl.SSLContext | None = None) -> None:
        self.status, self.ae_title, self.port, self.offered = status, ae_title, free_port(), 0
        self.tls = tls
        ae = AE(ae_title=ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        self._server = ae.start_server(
            ("127.0.0.1", self.port), block=False, ssl_context=tls, evt_handlers=[(evt.EVT_C_STORE, self._handle)]
        )

    def _handle(self, event: evt.Event) -> int:
        self.offered += 1
        return self.status

    @property
    def destination(self) -> str:
        if self.tls:
            return f"tls:{self.ae_title}@localhost:{self.port}"  # the name in the server certificate
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        time.sleep(0.1)


class OrthancPACS:
    """Orthanc (the Debian package) as the destination PACS: it stores what it is sent and answers REST."""

    def __init__(self, folder: Path, ae_title: str = "ORTHANC", modalities: dict | None = None) -> None:
        """`modalities`: Orthanc's DicomModalities, e.g. {"dicomnode": ["DICOMNODE", "127.0.0.1", 11112]}."""
        self.folder, self.ae_title, self.modalities = folder, ae_title, modalities or {}
        self.port, self.http_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def destination(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> OrthancPACS:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(
            json.dumps(
                {
                    "Name": "dicomnode-test",
                    "StorageDirectory": str(self.folder / "db"),
                    "IndexDirectory": str(self.folder / "db"),
                    "DicomAet": self.ae_title,
                    "DicomPort": self.port,
                    "HttpPort": self.http_port,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "DicomCheckCalledAet": True,
                    "Plugins": [],
                    "DicomModalities": self.modalities,
                }
            )
        )
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([require_tool("Orthanc"), str(config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._answers(), timeout=30)
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/system", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

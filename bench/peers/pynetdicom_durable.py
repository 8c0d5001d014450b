"""Benchmark peer: the least a durable pynetdicom receiver does.

Raw bytes (no decode), temp file + fsync + rename + directory fsync, no header
read, no checks, no catalog. The gap between this and dicomnode is what
dicomnode's own checks and catalog cost; the gap to storescp is pynetdicom
plus fsync. Usage: python pynetdicom_durable.py PORT DIR
"""

import sys
from pathlib import Path

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from dicomnode.receive.storage import Storage


def main() -> None:
    port, storage = int(sys.argv[1]), Storage(Path(sys.argv[2]))

    def on_store(event: evt.Event) -> int:
        storage.write_durably(event.request.AffectedSOPInstanceUID + ".dcm", [event.encoded_dataset()])
        return 0x0000

    ae = AE(ae_title="BAREPYND")
    ae.maximum_pdu_size = 0
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    main()

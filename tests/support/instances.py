"""Instance headers as the receive stage reads them, for catalog tests that need no file."""

from __future__ import annotations

from dicomnode.receive.header import InstanceHeader


def header(sop: str, study: str = "1.2.3") -> InstanceHeader:
    fields = dict.fromkeys(InstanceHeader.__dataclass_fields__)
    fields.update(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid=sop,
        study_instance_uid=study,
        series_instance_uid=study + ".1",
        patient_id="P",
        issuer_of_patient_id="",
    )
    return InstanceHeader(**fields)

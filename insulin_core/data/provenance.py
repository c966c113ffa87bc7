"""What a model was trained on, and which saved model fits the data in use.

A bundle's `data` record holds the training data's label and fingerprint (a hash of its accepted
events); bundles saved from now on also say whether that data was synthetic and how many patients
it had. Older bundles lack those two: they are read from the label (the demo cohort's label starts
with `DEMO_LABEL`) and from the patient index, so every old bundle keeps loading and is described.

"Trained on this data" means the same fingerprint: the same accepted events. The pages default only
to such a model, never silently to one trained on other data (e.g. the synthetic demo model on real
patients).
"""
from __future__ import annotations

from dataclasses import dataclass

from .codes import DEMO_LABEL
from .demo_modern import MODERN_DEMO_LABEL


def is_synthetic_label(source_label: str) -> bool:
    return str(source_label).startswith((DEMO_LABEL, MODERN_DEMO_LABEL))


@dataclass(frozen=True)
class TrainedOn:
    label: str  # the data source's label at training time ("" when not recorded)
    fingerprint: str | None
    synthetic: bool | None  # None: not recorded (an uploaded bundle may have no data record)
    patients: int  # patients the model was trained on

    def words(self) -> str:
        """The training data in plain words, for the disclaimer and the model lists."""
        if self.synthetic:
            return f"synthetic demo data ({self.patients} made-up patients, no real person)"
        if self.synthetic is None:
            return f"data of {self.patients} patients from an unrecorded source"
        # a folder's label names AIM94 when it held AIM94 diaries (source.DataSource.label)
        what = "AIM94 diaries" if self.label.startswith(("AIM94", "uploaded AIM94")) else "exported records"
        return f"real {what} of {self.patients} patients"

    def short(self) -> str:
        """The same in a few words, for a table cell."""
        kind = {True: "synthetic demo", False: "real AIM94", None: "unrecorded source"}[self.synthetic]
        return f"{kind}, {self.patients} patients"


def data_record(source_label: str, fingerprint: str, patients: int, data_format: str = "AIM94") -> dict:
    """The `data` record a new bundle stores (see registry.py); `data_format` the reader's name."""
    return {"source": source_label, "fingerprint": fingerprint, "synthetic": is_synthetic_label(source_label),
            "patients": int(patients), "format": data_format}


def trained_format(meta: dict) -> str:
    """The format a bundle was trained on: bundles saved before other formats were read are AIM94."""
    return (meta.get("data") or {}).get("format") or "AIM94"


def trained_on(meta: dict) -> TrainedOn:
    """What a bundle's meta says about its training data (old bundles: inferred, see module doc)."""
    data = meta.get("data") or {}
    label = data.get("source", "")
    synthetic = data.get("synthetic")
    if synthetic is None and label:
        synthetic = is_synthetic_label(label)
    patients = data.get("patients")
    if patients is None:
        patients = len(meta.get("patient_index") or {})
    return TrainedOn(label, data.get("fingerprint"), synthetic, int(patients))


def fits_data(meta: dict, fingerprint: str) -> bool:
    """Whether the bundle was trained on exactly this data (same accepted events)."""
    return trained_on(meta).fingerprint == fingerprint


@dataclass(frozen=True)
class Candidate:
    """A model a page could use: its reference, its training data's fingerprint and when it was
    made (ISO text; "" sorts as oldest)."""
    ref: str
    fingerprint: str | None
    created: str = ""
    words: str = ""  # its training data in plain words (TrainedOn.words)


def newest_fitting(candidates: list[Candidate], fingerprint: str | None) -> str | None:
    """The reference of the newest candidate trained on this data, or None when none is."""
    fitting = [c for c in candidates if fingerprint is not None and c.fingerprint == fingerprint]
    return max(fitting, key=lambda c: c.created).ref if fitting else None

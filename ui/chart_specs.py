"""Chart specs kept for reruns and other sessions: building an Altair chart and converting it to
Vega-Lite costs 50-250 ms of Python per chart (Altair's object model, copies and schema checks),
on every rerun of every session, so a spec is built once and reused.

- `chart_spec(builder, *args)`: the spec of any builder of ui/charts.py for the same arguments
  (frames compared by content), shared by every session in a cache bounded by its bytes, with only
  the columns the chart names sent to the browser.
- `with_data(key, build, datasets)`: a chart whose structure stays while its data change (the
  What-if's, on a slider move) is built once per structure over named data, and each rerun only
  fills the datasets; the same spec text also lets the browser update the data in place.

Both convert through Streamlit's own Altair conversion (ui/streamlit_internals.py). Draw the
result with st.vega_lite_chart(spec).
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable

import altair as alt
import cachetools
import pandas as pd

# The What-if charts keep their structure while their data change (a slider move, a patient
# switch): their builders run once per structure with named data (alt.NamedData).
_SKELETONS: dict[tuple, dict] = {}
_SKELETONS_LOCK = threading.Lock()


def _fingerprint(value) -> object:
    """A hashable stand-in for a builder argument: a frame by the hash of its content."""
    if isinstance(value, pd.DataFrame | pd.Series):
        digest = hashlib.sha1(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        return ("frame", digest.hexdigest(), tuple(map(str, frame.columns)), tuple(map(str, frame.dtypes)))
    return repr(value)


def _spec_bytes(spec: dict) -> int:
    return sum(len(d) if isinstance(d, bytes) else 1024 for d in spec.get("datasets", {}).values()) + 4096


# Specs of charts of the same data, shared by every rerun and session (the Patients and Overview
# charts are the same for everyone looking at the same patients); bounded by their bytes.
_SPECS = cachetools.LRUCache(maxsize=64 * 2**20, getsizeof=_spec_bytes)
_SPECS_LOCK = threading.Lock()


def _prune(spec: dict) -> dict:
    """Only the columns the chart names go to the browser (the Patients charts got the cohort's 70
    feature columns; they use 10). Conservative: a column whose name appears anywhere in the spec
    text is kept, and nothing is pruned when a tooltip shows every field."""
    import pyarrow as pa

    from ui.streamlit_internals import arrow_bytes

    text = json.dumps({k: v for k, v in spec.items() if k != "datasets"})
    if '"content": "data"' in text or '"tooltip": true' in text:
        return spec
    for name, data in spec.get("datasets", {}).items():
        if not isinstance(data, bytes):
            continue
        frame = pa.ipc.open_stream(data).read_all().to_pandas()
        unused = [c for c in frame.columns if json.dumps(str(c))[1:-1] not in text]
        if unused:
            spec["datasets"][name] = arrow_bytes(frame.drop(columns=unused))
    return spec


def chart_spec(builder: Callable[..., alt.TopLevelMixin], *args) -> dict:
    """`builder(*args)` as the Vega-Lite spec st.altair_chart would send (draw it with
    st.vega_lite_chart), built once for the same arguments (frames compared by content)."""
    from ui.streamlit_internals import altair_spec

    try:
        key = (builder.__module__, builder.__qualname__, *map(_fingerprint, args))
    except TypeError:  # a frame pandas cannot hash: build it every time
        return _prune(altair_spec(builder(*args)))
    with _SPECS_LOCK:
        spec = _SPECS.get(key)
    if spec is None:
        spec = _prune(altair_spec(builder(*args)))
        with _SPECS_LOCK:
            try:
                _SPECS[key] = spec
            except ValueError:  # bigger than the whole budget: not kept
                pass
    shared = spec.get("datasets", {})
    spec = copy.deepcopy({k: v for k, v in spec.items() if k != "datasets"})  # Streamlit edits what it is given
    spec["datasets"] = dict(shared)  # Arrow bytes, never changed: shared
    return spec


def with_data(key: tuple, build: Callable[[], alt.TopLevelMixin], datasets: dict[str, pd.DataFrame],
              params: dict | None = None) -> dict:
    """The spec of `build()` (a chart over alt.NamedData of the `datasets` names), built once per
    `key` (what shapes the chart besides its data), with `datasets` and top-level `params` values set."""
    from ui.streamlit_internals import altair_spec

    with _SKELETONS_LOCK:
        skeleton = _SKELETONS.get(key)
    if skeleton is None:
        skeleton = altair_spec(build())
        with _SKELETONS_LOCK:
            _SKELETONS[key] = skeleton
    spec = copy.deepcopy(skeleton)  # a small dict: Streamlit edits the spec it is given
    for param in spec.get("params", []):
        if params and param.get("name") in params:
            param["value"] = params[param["name"]]
    spec["datasets"] = dict(datasets)
    return spec

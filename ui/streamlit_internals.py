"""Every private Streamlit name the project uses (1.67), kept here alone: tests/
test_streamlit_internals.py fails loudly on an upgrade that moves one, and flags a private
`streamlit.` import anywhere else (app, core, tests, benchmarks).

- `leave_legacy_pages_mode`: the design keeps one file a page in `pages/`, and Streamlit treats a
  `pages/` folder next to the entry script as a legacy multipage app until the first
  `st.navigation` call of the server's life: a first visit straight to /whatif would run that
  file alone. No public option turns the folder scan off, so the flag is switched off here
  (streamlit/runtime/pages_manager.py) and the session reruns once so app.py's pages take over.
- `altair_spec`: the Vega-Lite dict (datasets as Arrow bytes) st.altair_chart makes of a chart,
  so ui/chart_specs.py can keep it and give it to st.vega_lite_chart on later reruns and to other
  sessions (building it costs 50-300 ms of Python a chart).
- `arrow_bytes` / `arrow_frame` (streamlit.dataframe_util): a frame as the Arrow bytes Streamlit
  sends, for ui/chart_specs.py's pruned specs, and back, for the tests that read a chart's data.
- `BackMsg` / `ForwardMsg` (streamlit.proto): the websocket messages bench/load_sessions.py speaks
  as a browser would.
- `manifest_scanner` (streamlit.components.v2): every new AppTest scans the metadata of every
  installed package for components (0.15-0.2 s each); tests/conftest.py scans once a session.
"""
from __future__ import annotations

import streamlit as st
from streamlit.dataframe_util import convert_anything_to_arrow_bytes as arrow_bytes  # noqa: F401
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df as arrow_frame  # noqa: F401
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec as altair_spec  # noqa: F401
from streamlit.components.v2 import manifest_scanner  # noqa: F401
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: F401
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: F401
from streamlit.runtime.pages_manager import PagesManager

DECLARED_PAGES_KEY = "declared_pages_seen"


def leave_legacy_pages_mode() -> None:
    """Switch Streamlit's legacy pages/-folder mode off; rerun once per session that has never run
    app.py's navigation (AppTest resets the flag on every run, so once per session keeps its
    widget events)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get(DECLARED_PAGES_KEY):
            st.rerun()

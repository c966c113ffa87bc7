"""insulin-dash: entry point. Declares the pages with st.navigation (the pages/ folder is not
scanned) and shows the data source and the model in use in the sidebar. Each page starts with
ui.session.page_header (title + research-tool disclaimer); widgets that must survive a page switch
use `persist_state="session"`."""
import os
import sys
import threading

# One OpenMP thread per script thread, unless the user's environment says otherwise. OpenMP reads
# this when torch or scikit-learn first loads, and it is the default of each thread Streamlit starts
# for a session; with one thread per core, the pages' baseline fits spin-wait on a busy machine
# (issue 18, in AppTest beside two busy processes: two page tests took 53 s and 46 s, and 22 s and
# 15 s with one thread). Training uses one thread already (TrainConfig.threads).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import streamlit as st  # noqa: E402

from ui.glossary import glossary_popover  # noqa: E402 - ui-honest: the glossary on every page
from ui.session import DECLARED_PAGES_KEY, active_model_ref, current_source, model_label  # noqa: E402
from ui.training import track_runs  # noqa: E402

st.set_page_config(page_title="insulin-dash", page_icon=":material/vaccines:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/patients.py", title="Patients", icon=":material/person_search:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/tune.py", title="Tune", icon=":material/science:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
    st.Page("pages/predictions.py", title="Predictions", icon=":material/query_stats:"),
    st.Page("pages/whatif.py", title="What-if", icon=":material/tune:"),
]


def model_caption() -> None:
    ref = active_model_ref()
    st.caption(f":material/neurology: Model: {model_label(ref) if ref else 'none trained on this data yet'}")


def _import_registry() -> None:
    import insulin_core.bundles.registry  # noqa: F401 (the slow import: torch)


@st.cache_resource(show_spinner=False)
def registry_import() -> threading.Thread:
    """Once per server: the thread that imports the registry (torch) in the background. Started
    after the first page is drawn (see the end of this script), so it does not slow that page."""
    return threading.Thread(target=_import_registry, name="import-registry", daemon=True)


def start_registry_import() -> None:
    thread = registry_import()
    if thread.ident is None:
        try:
            thread.start()
        except RuntimeError:  # another session started it a moment ago
            pass


def registry_imported() -> bool:
    """In, or the import ended (failed: model_caption then shows why)."""
    thread = registry_import()
    return "insulin_core.bundles.registry" in sys.modules or (thread.ident is not None and not thread.is_alive())


navigation = st.navigation(PAGES)
st.session_state[DECLARED_PAGES_KEY] = True
track_runs()  # the owner token stays in the URL; a finished run becomes the active model (ui/training.py)
with st.sidebar:
    st.caption(f":material/database: {current_source().label}")
    if registry_imported():
        model_caption()
    else:  # no timer rerun to fill it in: a timer rerun can swallow a click made at that moment
        st.caption(":material/neurology: Model: checking the saved models (named from your next click)...")
    glossary_popover()  # ui-honest
try:
    navigation.run()
finally:  # also when the page stops early (st.stop) or reruns
    start_registry_import()  # after the page: torch's import then does not compete with it

"""insulin-dash: entry point. Declares the pages with st.navigation (the pages/ folder is not
scanned) and shows the data source and the model in use in the sidebar. Each page starts with
ui.session.page_header (title + research-tool disclaimer); widgets that must survive a page switch
use `persist_state="session"`."""
import streamlit as st

from ui.glossary import glossary_popover  # ui-honest: the glossary on every page
from ui.session import DECLARED_PAGES_KEY, active_model_ref, current_source, model_label

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

navigation = st.navigation(PAGES)
st.session_state[DECLARED_PAGES_KEY] = True
with st.sidebar:
    st.caption(f":material/database: {current_source().label}")
    ref = active_model_ref()
    st.caption(f":material/neurology: Model: {model_label(ref) if ref else 'none trained on this data yet'}")
glossary_popover()  # ui-honest
navigation.run()

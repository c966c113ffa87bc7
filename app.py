"""insulin-dash: entry point. Declares the pages with st.navigation (the pages/ folder is not
scanned), keeps the Train settings across pages, shows the data source, the model in use and the
research-tool disclaimer on every page."""
import streamlit as st

from ui.state import DISCLAIMER, PERSISTENT_KEYS, active_model_ref, current_source, model_label

st.set_page_config(page_title="insulin-dash", page_icon=":material/vaccines:", layout="wide")

# Streamlit forgets a widget's value when a page without that widget runs; re-assigning the keys
# here on every run keeps the Train form and the other picks as the user left them.
for key in PERSISTENT_KEYS:
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/patients.py", title="Patients", icon=":material/person_search:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
    st.Page("pages/predictions.py", title="Predictions", icon=":material/query_stats:"),
    st.Page("pages/whatif.py", title="What-if", icon=":material/tune:"),
]

navigation = st.navigation(PAGES)
st.warning(DISCLAIMER, icon=":material/health_and_safety:")
with st.sidebar:
    st.caption(f":material/database: {current_source().label}")
    ref = active_model_ref()
    st.caption(f":material/neurology: Model: {model_label(ref) if ref else 'none yet: train one'}")
navigation.run()

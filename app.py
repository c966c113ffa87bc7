"""insulin-dash: entry point. Declares the pages with st.navigation (the pages/ folder is not
scanned), shows the data source and the research-tool disclaimer on every page."""
import streamlit as st

from ui.state import DISCLAIMER, current_source

st.set_page_config(page_title="insulin-dash", page_icon=":material/vaccines:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
]

navigation = st.navigation(PAGES)
with st.sidebar:
    source = current_source()
    st.caption(f"Data: {source.label}")
    st.caption(DISCLAIMER)
navigation.run()

"""The glossary a stakeholder can open from any page (a popover in the sidebar; text in the core)."""
import streamlit as st

from insulin_core.glossary import TERMS


def glossary_popover() -> None:
    """A sidebar button that opens the glossary (insulin_core.glossary.TERMS)."""
    with st.sidebar.popover("Glossary", icon=":material/menu_book:", width="stretch"):
        st.markdown("\n".join(f"**{term}**: {text}\n" for term, text in TERMS.items()))

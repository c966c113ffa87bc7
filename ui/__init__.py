"""Streamlit glue shared by the pages: cached loaders, session selections, Altair charts.

The pages import from here and from insulin_core; insulin_core never imports this package.
"""

"""Tables as a person reads them: numbers to a sensible number of decimals, shares as %, and an
empty cell as "–" (st.dataframe would print "None" for a missing value, e.g. an R² over one row)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

MISSING = "–"


def show(table: pd.DataFrame, key: str | None = None, digits: int = 2, percent: tuple[str, ...] = (),
         integers: tuple[str, ...] = (), **kwargs) -> None:
    """st.dataframe of `styled(...)`."""
    st.dataframe(styled(table, digits, percent, integers), key=key, width="stretch", hide_index=True, **kwargs)


def styled(table: pd.DataFrame, digits: int = 2, percent: tuple[str, ...] = (), integers: tuple[str, ...] = ()):
    """Every float column at `digits` decimals (those in `percent` as %, those in `integers` as
    whole numbers) and missing values as "–"."""
    formats = {}
    for column in table.columns:
        if column in percent:
            formats[column] = "{:.0%}"
        elif column in integers:
            formats[column] = "{:,.0f}"
        elif pd.api.types.is_float_dtype(table[column]):
            formats[column] = f"{{:.{digits}f}}"
    return table.style.format(na_rep=MISSING).format(formats, na_rep=MISSING)

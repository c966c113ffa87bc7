"""Tables as a person reads them: numbers to a sensible number of decimals, shares as %, and an
empty cell as "–". st.dataframe draws a missing number as "None" whatever a pandas Styler says
(checked in the browser), so a numeric column with a gap is shown as right-aligned text; a
column without gaps stays a number column (it sorts as numbers)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

MISSING = "–"


def show(table: pd.DataFrame, key: str | None = None, digits: int = 2, percent: tuple[str, ...] = (),
         integers: tuple[str, ...] = (), column_config: dict | None = None, **kwargs) -> None:
    """st.dataframe of `display(...)`; `column_config` entries override the ones made here."""
    shown, config = display(table, digits, percent, integers)
    st.dataframe(shown, key=key, width="stretch", hide_index=True, column_config={**config, **(column_config or {})},
                 **kwargs)


def display(table: pd.DataFrame, digits: int = 2, percent: tuple[str, ...] = (),
            integers: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """(the table to show, its column_config): every float column at `digits` decimals (those in
    `percent` as whole %, those in `integers` as whole numbers), every missing value as "–"."""
    out, config = table.copy(), {}
    for column in table.columns:
        values = table[column]
        if column in percent:
            values, printf, python = values * 100, "%.0f%%", "{:.0f}%"
        elif column in integers:
            printf, python = "%d", "{:,.0f}"
        elif pd.api.types.is_float_dtype(values):
            printf, python = f"%.{digits}f", f"{{:.{digits}f}}"
        else:  # text: only its gaps change
            out[column] = values.astype(object).where(values.notna(), MISSING)
            continue
        if values.isna().any():
            out[column] = [MISSING if pd.isna(v) else python.format(v) for v in values]
            config[column] = st.column_config.TextColumn(alignment="right")
        else:
            out[column] = values
            config[column] = st.column_config.NumberColumn(format=printf)
    return out, config

"""Per-group history in plain numpy, for the history features (features.py): a row's earlier
values within its group (patient, day part, glucose band...), and row-wise medians and means that
skip NaN with the arithmetic of the pandas rolling code they replaced.
"""
from __future__ import annotations

import numpy as np


class Groups:
    """Rows of one grouping (e.g. patient and day part), with the row order inside each group kept.

    Per-group history then is plain numpy on rows sorted by group: a row's earlier group members
    are the sorted rows between its group's first row and itself. Results come back in row order."""

    def __init__(self, *keys: np.ndarray):
        self.order = np.lexsort(keys[::-1])  # stable: rows keep their order inside a group
        n = len(self.order)
        new_group = np.zeros(n, dtype=bool)
        new_group[:1] = True
        for key in keys:
            k = key[self.order]
            new_group[1:] |= k[1:] != k[:-1]
        # sorted position of the first row of each sorted row's group
        self.start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))

    def previous_row(self) -> np.ndarray:
        """Row index of the previous row of the same group, -1 on a group's first row."""
        pos = np.arange(len(self.order))
        prev = np.where(pos > self.start, self.order[pos - 1], -1)
        return self._unsort(prev)

    def last_values_before(self, values: np.ndarray, k: int) -> np.ndarray:
        """(rows, k): the last k non-NaN values of each row's group on rows strictly before it,
        most recent first; NaN where the group has fewer."""
        v = np.asarray(values, dtype=float)[self.order]
        counted = ~np.isnan(v)
        pool = np.append(v[counted], np.nan)  # counted values in group order; index -1 = none
        before = np.cumsum(counted) - counted  # counted values on sorted rows strictly before
        idx = before[:, None] - 1 - np.arange(k)
        idx[idx < before[self.start][:, None]] = -1  # reaches into an earlier group: none
        return self._unsort(pool[idx])

    def last_before(self, values: np.ndarray) -> np.ndarray:
        """Per group, the last non-NaN value on a row strictly before each row (NaN if none)."""
        return self.last_values_before(values, 1)[:, 0]

    def _unsort(self, sorted_values: np.ndarray) -> np.ndarray:
        out = np.empty_like(sorted_values)
        out[self.order] = sorted_values
        return out


def median_of_rows(values: np.ndarray) -> np.ndarray:
    """Row-wise median ignoring NaN (NaN if none), with the arithmetic of pandas' rolling median:
    the middle value, or the mean of the two middle ones (np.nanmedian goes through masked
    arrays for this shape and is several times slower)."""
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = (~np.isnan(values)).sum(axis=1)
    rows = np.arange(len(values))
    middle = (ordered[rows, (count - 1) // 2] + ordered[rows, count // 2]) / 2
    return np.where(count > 0, middle, np.nan)


def mean_of_rows(values: np.ndarray) -> np.ndarray:
    """Row-wise mean ignoring NaN (NaN if none); on 0/1 values exactly what a rolling mean gave."""
    count = (~np.isnan(values)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(values, axis=1) / count, np.nan)

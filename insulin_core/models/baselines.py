"""Baselines for the Regular dose at a decision point: one class each, one `fit`/`predict` contract.

Every baseline is an honest comparator for DoseNet: it sees only the training part at `fit`, the
same inputs at `predict`, and returns Regular doses in units (finite, never negative). Target is
`ws.y[:, 0]`. A patient not seen at `fit` (the `patients` split) is handled by every baseline:
sliding_scale falls back to coarser groups, ridge gives it no patient offset, the GBMs treat its
patient category as missing.

`BASELINES` (name -> class, display order) is filled by `Baseline.__init_subclass__`, so tests
and the app run over every registered baseline.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dose_rule import DOSE_THRESHOLD, continuous_dose
from ..prep.features import now_roles

# scikit-learn is imported in the fits that use it, not here: the dashboard names the baselines on
# every page (labels, glossary), and importing scikit-learn costs most of a second at start-up.

BASELINES: dict[str, type["Baseline"]] = {}
RANDOM_STATE = 0


def _indices(ws, idx) -> np.ndarray:
    """Boolean mask or integer positions -> integer positions into the WindowSet."""
    idx = np.asarray(idx)
    if idx.dtype == bool:
        if len(idx) != len(ws.y):
            raise ValueError(f"Boolean idx has {len(idx)} values, the WindowSet has {len(ws.y)} windows.")
        return np.flatnonzero(idx)
    return idx.astype(int, copy=False).reshape(-1)


def _target(ws, idx: np.ndarray) -> np.ndarray:
    return np.asarray(ws.y, dtype=float)[idx, 0]


def _patients(ws, idx: np.ndarray) -> np.ndarray:
    return ws.context["patient_id"].to_numpy()[idx]


def _numeric(ws, idx: np.ndarray) -> np.ndarray:
    """[flattened seq, now] as float64 (NaN kept; callers decide)."""
    seq = ws.seq_rows[idx]  # only these windows gathered (never every window of the set)
    now = np.asarray(ws.now)[idx].reshape(len(idx), -1)
    return np.hstack([seq.reshape(len(idx), -1), now]).astype(np.float64)


def _clean(pred: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(pred, dtype=float), nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


class PatientCodes:
    """Training patients -> 0..k-1 (most frequent first, at most `max_codes`); others -> NaN."""

    def __init__(self, max_codes: int = 255) -> None:
        self.max_codes = max_codes

    def fit(self, patients: np.ndarray) -> "PatientCodes":
        counts = pd.Series(patients).value_counts(sort=True)
        kept = counts.index[: self.max_codes]
        self.categories_ = pd.Index(sorted(kept))
        return self

    def codes(self, patients: np.ndarray) -> np.ndarray:
        c = self.categories_.get_indexer(pd.Index(patients)).astype(float)
        c[c < 0] = np.nan
        return c

    def one_hot(self, patients: np.ndarray) -> np.ndarray:
        c = self.categories_.get_indexer(pd.Index(patients))
        out = np.zeros((len(c), len(self.categories_)))
        known = c >= 0
        out[np.flatnonzero(known), c[known]] = 1.0
        return out


class Baseline:
    """The contract: `fit(ws, idx) -> self`, `predict(ws, idx) -> (len(idx),)` doses in units."""

    name: str = ""
    description: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in BASELINES:
                raise ValueError(f"Baseline name {cls.name!r} registered twice.")
            BASELINES[cls.name] = cls

    def fit(self, ws, idx) -> "Baseline":
        idx = _indices(ws, idx)
        if len(idx) == 0:
            raise ValueError(f"{self.name}: cannot fit on an empty training part.")
        self._fit(ws, idx)
        self.fitted_ = True
        return self

    def predict(self, ws, idx) -> np.ndarray:
        if not getattr(self, "fitted_", False):
            raise RuntimeError(f"{self.name}: call fit before predict.")
        idx = _indices(ws, idx)
        if len(idx) == 0:
            return np.zeros(0)
        return _clean(self._predict(ws, idx))

    def heads(self, ws, idx) -> tuple[np.ndarray, np.ndarray]:
        """The predictor contract (predictor.py): (amount, P(dose)). A baseline's amount is its
        prediction and it gives a dose wherever that is above 0, unless it knows better."""
        dose = self.predict(ws, idx)
        return dose, (dose > 0).astype(float)

    def _fit(self, ws, idx: np.ndarray) -> None:  # stateless baselines need nothing
        pass

    def _predict(self, ws, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _ContextColumn(Baseline):
    """A baseline that is one column of the windows' context, read as it is."""
    column = ""

    def _predict(self, ws, idx):
        return ws.context[self.column].to_numpy(dtype=float)[idx]


class PreviousRow(_ContextColumn):
    name = "previous_row"
    description = "The Regular dose of the timeline row just before the target (0 if none)."
    column = "prev_row_regular"


class LastSameDaypart(_ContextColumn):
    name = "last_same_daypart"
    description = ("The patient's last recorded Regular dose in the same day part, strictly before "
                   "the target (0 if none): 'do what I did last time at this time of day'.")
    column = "last_regular_same_daypart"


class SlidingScale(Baseline):
    name = "sliding_scale"
    description = ("The patient's median training dose (zeros included) for this day part and "
                   "40 mg/dL glucose band; falls back to patient x day part, day part, then all.")
    levels = (("patient_id", "day_part", "glucose_band"), ("patient_id", "day_part"), ("day_part",))

    def _fit(self, ws, idx):
        df = ws.context.iloc[idx][list(self.levels[0])].reset_index(drop=True).assign(y=_target(ws, idx))
        self.tables_ = [df.groupby(list(keys), observed=True, sort=False)["y"].median()
                        .rename(f"m{i}").reset_index() for i, keys in enumerate(self.levels)]
        self.global_ = float(df["y"].median())

    def _predict(self, ws, idx):
        keys = ws.context.iloc[idx][list(self.levels[0])].reset_index(drop=True)
        pred = pd.Series(np.nan, index=keys.index)
        for i, (cols, table) in enumerate(zip(self.levels, self.tables_)):
            # left merge keeps the left order; one row per key in `table`, so lengths match
            m = keys[list(cols)].merge(table, on=list(cols), how="left")[f"m{i}"]
            pred = pred.fillna(pd.Series(m.to_numpy(dtype=float), index=keys.index))
        return pred.fillna(self.global_).to_numpy(dtype=float)


class Ridge(Baseline):
    name = "ridge"
    description = ("Ridge regression (alpha by efficient leave-one-out CV) on the standardised window, "
                   "the decision-moment features and a one-hot patient; NaN -> 0, clipped at 0.")
    alphas = tuple(np.logspace(-1, 4, 11))

    def _design(self, ws, idx):
        return np.hstack([np.nan_to_num(_numeric(ws, idx), nan=0.0, posinf=0.0, neginf=0.0),
                          self.patients_.one_hot(_patients(ws, idx))])

    def _fit(self, ws, idx):
        from sklearn.linear_model import RidgeCV
        from sklearn.preprocessing import StandardScaler

        self.patients_ = PatientCodes(max_codes=10**6).fit(_patients(ws, idx))
        x = self._design(ws, idx)
        self.scaler_ = StandardScaler().fit(x)
        self.model_ = RidgeCV(alphas=self.alphas).fit(self.scaler_.transform(x), _target(ws, idx))

    def _predict(self, ws, idx):
        return self.model_.predict(self.scaler_.transform(self._design(ws, idx)))


def _hgb_params(n: int) -> dict:
    # Early stopping holds out 10% of the training part; too few rows to hold out -> fixed iterations.
    return dict(max_iter=300, learning_rate=0.05, early_stopping=n >= 200, validation_fraction=0.1,
                n_iter_no_change=20, random_state=RANDOM_STATE)


class _GBMBase(Baseline):
    """Shared design for the gradient-boosting baselines: [window, now, patient category].

    `monotone` gives them the network's prior (model.py) through scikit-learn's `monotonic_cst`:
    the prediction (and the classifier's P(dose)) never falls as glucose now or the patient's
    sliding scale rises, nor rises with exercise now; the raw same-band history, which moves with
    glucose but not monotonically, is left out of their design."""
    monotone = False

    def _columns(self, ws) -> np.ndarray:
        """Positions kept from [flattened window, now], and each one's monotone constraint."""
        seq_width = ws.seq_rows.shape[1] * ws.seq_rows.shape[2]
        roles = np.array(now_roles(ws.now_features) if self.monotone else ("context",) * len(ws.now_features))
        keep = np.concatenate([np.ones(seq_width, bool), roles != "ignored"])
        cst = np.concatenate([np.zeros(seq_width, int), np.select([roles == "up", roles == "down"], [1, -1], 0)])
        return np.flatnonzero(keep), cst[keep]

    def _design(self, ws, idx):
        return np.hstack([_numeric(ws, idx)[:, self.kept_], self.patients_.codes(_patients(ws, idx))[:, None]])

    def _fit_design(self, ws, idx):
        self.patients_ = PatientCodes(max_codes=255).fit(_patients(ws, idx))  # HGB: <= max_bins categories
        self.kept_, cst = self._columns(ws)
        x = self._design(ws, idx)
        cat = np.zeros(x.shape[1], dtype=bool)
        cat[-1] = True
        self.monotonic_cst_ = np.append(cst, 0) if self.monotone else None  # the patient category: none
        return x, cat


class GBM(_GBMBase):
    name = "gbm"
    description = ("Histogram gradient boosting (squared error) on the window, the decision-moment "
                   "features and the patient as a categorical feature; clipped at 0.")

    def _fit(self, ws, idx):
        from sklearn.ensemble import HistGradientBoostingRegressor

        x, cat = self._fit_design(ws, idx)
        self.model_ = HistGradientBoostingRegressor(categorical_features=cat, monotonic_cst=self.monotonic_cst_,
                                                    **_hgb_params(len(idx)))
        self.model_.fit(x, _target(ws, idx))

    def _predict(self, ws, idx):
        return self.model_.predict(self._design(ws, idx))


class TwoStageGBM(_GBMBase):
    name = "two_stage_gbm"
    description = ("Two gradient-boosting models: 'is a Regular dose given now' (classifier) and "
                   f"'how much' (regressor fitted on dose occasions); the amount if p > {DOSE_THRESHOLD:g}, else 0.")

    def _fit(self, ws, idx):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        x, cat = self._fit_design(ws, idx)
        y = _target(ws, idx)
        dose = y > 0
        n_dose = int(dose.sum())
        # Degenerate training parts (all or no doses) get a constant in place of a model.
        self.p_const_ = None if 0 < n_dose < len(y) else float(n_dose > 0)
        if self.p_const_ is None:
            params = _hgb_params(len(y))
            # stratified early-stopping split needs >= 2 of each class in the held-out part
            params["early_stopping"] &= min(n_dose, len(y) - n_dose) >= 20
            self.classifier_ = HistGradientBoostingClassifier(categorical_features=cat, monotonic_cst=self.monotonic_cst_,
                                                              **params).fit(x, dose)
        self.amount_const_ = float(y[dose][0]) if n_dose == 1 else (0.0 if n_dose == 0 else None)
        if self.amount_const_ is None:
            self.regressor_ = HistGradientBoostingRegressor(categorical_features=cat, monotonic_cst=self.monotonic_cst_,
                                                            **_hgb_params(n_dose))
            self.regressor_.fit(x[dose], y[dose])

    def dose_probability(self, ws, idx) -> np.ndarray:
        """P(a Regular dose is given now) for each window of idx."""
        idx = _indices(ws, idx)
        return self._probability(self._design(ws, idx))

    def _probability(self, x: np.ndarray) -> np.ndarray:
        if self.p_const_ is not None:
            return np.full(len(x), self.p_const_)
        return self.classifier_.predict_proba(x)[:, 1]

    def heads(self, ws, idx) -> tuple[np.ndarray, np.ndarray]:
        """Its regressor's amount and its classifier's P(dose)."""
        idx = _indices(ws, idx)
        x = self._design(ws, idx)
        return _clean(self._amount(x)), self._probability(x)

    def _amount(self, x: np.ndarray) -> np.ndarray:
        if self.amount_const_ is not None:
            return np.full(len(x), self.amount_const_)
        return np.clip(self.regressor_.predict(x), 0.0, None)

    def _predict(self, ws, idx):
        x = self._design(ws, idx)
        return continuous_dose(self._amount(x), self._probability(x))  # the network's rule, unrounded


class MonotoneGBM(GBM):
    name = "gbm_monotone"
    description = GBM.description + (" Constrained as the network is: never less insulin for a higher "
                                     "glucose now, never more for more exercise now.")
    monotone = True


class MonotoneTwoStageGBM(TwoStageGBM):
    name = "two_stage_gbm_monotone"
    description = TwoStageGBM.description + (" Both models constrained as the network is: never less insulin "
                                             "(nor a lower P(dose)) for a higher glucose now, never more for more exercise now.")
    monotone = True


def make_baseline(name: str) -> Baseline:
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; choose from {', '.join(BASELINES)}.")
    return BASELINES[name]()

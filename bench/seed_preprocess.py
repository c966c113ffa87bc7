"""The seed project's preprocessing, reconstructed as the yardstick for `check-data`'s speed.

The seed (the notebook this project grew from) is not in this repository; what it did is known from
its description in the issues (issue 2: "the seed's preprocessing, done right"; issue 3): pandas
`read_csv` of each `data-NN` file, dates and times parsed with `pd.to_datetime(errors="coerce")`
and the unparseable rows dropped, the events pivoted to one row per patient and timestamp (glucose,
Regular, NPH, UltraLente, hypoglycemia, meal, exercise), cyclic time of day, day parts, lag
features, time since the previous event, binary event flags, Min-Max scaling with scikit-learn,
and sliding windows of 10 rows built by a Python loop over `iloc` with the `next-row` target
(the Regular dose of the row after the window) and a random split. This script does exactly that,
in that style, so `bench/commands_speed.py` can time it as a whole process beside `check-data`.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/seed_preprocess.py [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import glob
import os

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

WINDOW = 10
GLUCOSE_CODES = [48, 57, 58, 59, 60, 61, 62, 63, 64]
COLUMNS = {33: "regular", 34: "nph", 35: "ultralente", 65: "hypo", 66: "meal", 67: "meal_more", 68: "meal_less",
           69: "exercise", 70: "exercise_more", 71: "exercise_less"}


def load(folder: str) -> pd.DataFrame:
    frames = []
    for path in sorted(glob.glob(os.path.join(folder, "data-*"))):
        df = pd.read_csv(path, sep="\t", header=None, names=["date", "time", "code", "value"],
                         dtype=str, on_bad_lines="skip", engine="python")
        df["patient"] = int(os.path.basename(path).split("-")[1])
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["timestamp"] = pd.to_datetime(df["date"] + " " + df["time"], format="%m-%d-%Y %H:%M", errors="coerce")
    df["code"] = pd.to_numeric(df["code"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.dropna(subset=["timestamp", "code", "value"])


def timeline(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["name"] = df["code"].map(lambda c: "glucose" if c in GLUCOSE_CODES else COLUMNS.get(c, "other"))
    tl = df.pivot_table(index=["patient", "timestamp"], columns="name", values="value", aggfunc="mean").reset_index()
    for col in ["glucose", *COLUMNS.values()]:
        if col not in tl:
            tl[col] = np.nan
    return tl.sort_values(["patient", "timestamp"]).reset_index(drop=True)


def features(tl: pd.DataFrame) -> pd.DataFrame:
    hours = tl["timestamp"].dt.hour + tl["timestamp"].dt.minute / 60
    tl["tod_sin"], tl["tod_cos"] = np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24)
    tl["day_part"] = pd.cut(hours, [-1, 11, 17, 22, 24], labels=["morning", "afternoon", "evening", "night"])
    tl = pd.get_dummies(tl, columns=["day_part"])
    for col in ["glucose", "regular", "nph", "ultralente", "hypo", *[c for c in COLUMNS.values() if c.startswith(("meal", "exercise"))]]:
        tl[f"has_{col}"] = tl[col].notna().astype(int)
    tl = tl.fillna({c: 0 for c in ["regular", "nph", "ultralente", "hypo", *COLUMNS.values()]})
    tl["glucose"] = tl.groupby("patient")["glucose"].ffill().fillna(tl["glucose"].mean())
    for lag in (1, 2, 3):
        for col in ("glucose", "regular"):
            tl[f"{col}_lag{lag}"] = tl.groupby("patient")[col].shift(lag).fillna(0)
    tl["minutes_since_prev"] = tl.groupby("patient")["timestamp"].diff().dt.total_seconds().fillna(0) / 60
    return tl


def windows(tl: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    cols = [c for c in tl.columns if c not in ("patient", "timestamp")]
    tl[cols] = MinMaxScaler().fit_transform(tl[cols].astype(float))
    xs, ys = [], []
    for _, group in tl.groupby("patient"):
        inputs, regular = group[cols], group["regular"]
        for i in range(len(group) - WINDOW):
            xs.append(inputs.iloc[i:i + WINDOW].to_numpy(dtype=np.float32))
            ys.append(regular.iloc[i + WINDOW])
    return np.stack(xs), np.asarray(ys, dtype=np.float32)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("AIM94_DIR", "../shared/data/aim94"))
    args = ap.parse_args()
    x, y = windows(features(timeline(load(args.data_dir))))
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    print(f"seed-style preprocessing: {len(x)} windows {x.shape[1:]}, train {len(x_train)}, test {len(x_test)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

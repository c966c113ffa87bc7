"""The glossary: every word a stakeholder meets is explained, in the CLI and on every page."""
from __future__ import annotations

from insulin_core.models.baselines import BASELINES
from insulin_core.cli import main
from insulin_core.glossary import TERMS, glossary_text
from insulin_core.labels import PREDICTOR_LABELS
from insulin_core.prep.splits import SPLITS


def test_the_glossary_explains_the_dashboards_words():
    wanted = {"Decision point", "Decision dose", "MAE", "R²", "Within ±1 U", "P(dose)", "90% interval", "Baselines"}
    assert wanted <= set(TERMS)
    assert {f"Split: {s}" for s in SPLITS} <= set(TERMS)
    assert {f"Baseline: {PREDICTOR_LABELS[b]}" for b in BASELINES} <= set(TERMS)
    for term, text in TERMS.items():
        assert len(text) > 40 and text.endswith((".", ")", "?")), term
        assert "_" not in text, (term, text)  # plain words: no identifier


def test_cli_glossary_prints_every_term(capsys):
    assert main(["glossary"]) == 0
    out = capsys.readouterr().out
    assert out == glossary_text(width=100)
    for term in TERMS:
        assert f"\n{term}\n" in f"\n{out}"
    assert max(len(line) for line in out.splitlines()) <= 100

"""Both demos' folders (demo_folder.py through demo.write_cohort and demo_modern.write_modern_cohort):
a smaller cohort written over an earlier one leaves none of the earlier files behind, and files
named like a demo's but without its README are never overwritten."""
from __future__ import annotations

import pytest

from insulin_core.data.demo import DemoConfig, write_cohort
from insulin_core.data.demo_modern import ModernDemoConfig, write_modern_cohort

AIM94_LINE = "04-21-1991\t9:09\t58\t100\n"


@pytest.mark.parametrize("write, config, names, real, message", [
    (write_cohort, DemoConfig, ["data-01", "data-02"], ("data-01", AIM94_LINE), "data-NN files that are not a demo"),
    (write_modern_cohort, ModernDemoConfig,
     ["p01-entries.json", "p01-treatments.json", "p02-entries.json", "p02-treatments.json"],
     ("p01-entries.json", "[]"), "Nightscout files that are not a modern demo cohort"),
], ids=["aim94", "nightscout"])
def test_a_demo_replaces_an_older_copy_but_never_real_files(tmp_path, write, config, names, real, message):
    write(tmp_path / "demo", config(patients=5, days=3))
    write(tmp_path / "demo", config(patients=2, days=3))
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["README.md", *names]
    name, text = real
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        write(tmp_path / "real", config(patients=2, days=3))
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == [name]
    assert (tmp_path / "real" / name).read_text() == text

# The two commands of the README: `make run` and `make test`. Both create .venv and install
# requirements.txt when needed (re-installed only when requirements.txt changes).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast browser bench bench-guard screenshots clean-venv

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

# Debian's chromium for the browser end-to-end test (Playwright's own browser download does not
# work offline). Best effort: without it the browser test is skipped, visibly.
browser:
	@test -x /usr/bin/chromium || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ) || \
		echo "note: /usr/bin/chromium is missing; browser tests will be skipped"

# Two workers (CI and this machine have 2 cores); --dist loadscope keeps each module on one worker,
# so a module's fixtures (a trained model, a browser, a server) are built once; modules start in the
# order tests/conftest.py gives them (the longest first); every run prints its 15 slowest steps.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -rs -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=15

test: $(STAMP) browser
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not browser"

# Refresh the README's screenshots and docs/page_load_times.md (make test writes them to tests/artifacts/).
screenshots: $(STAMP) browser
	INSULIN_DASH_SCREENSHOTS=1 $(PY) -m pytest -q -rs tests/test_browser.py tests/test_browser_clicks.py

# Every benchmark; docs/performance.md quotes them. The guard alone (seconds): make bench-guard.
bench: $(STAMP)
	$(PY) bench/guard.py
	$(PY) bench/commands_speed.py
	$(PY) bench/load_speed.py
	$(PY) bench/features_speed.py
	$(PY) bench/inference_speed.py
	$(PY) bench/whatif_speed.py
	$(PY) bench/windows_speed.py
	$(PY) bench/scaling.py --sizes 100,1000,10000
	$(PY) bench/cgm_scale.py --patient-years 100,1000
	$(PY) bench/accuracy.py

bench-guard: $(STAMP)
	$(PY) bench/guard.py

clean-venv:
	rm -rf $(VENV)

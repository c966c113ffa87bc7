#!/usr/bin/env bash
# Server memory under repeated load, with or without Streamlit's gc.collect() after each script run.
#   bench/server_memory.sh false 8612     # postScriptGC off (the project's setting)
#   bench/server_memory.sh true 8613      # Streamlit's default
# Starts `streamlit run` on PORT with a copy of models/demo, runs 4 rounds of 50 sessions
# (bench/load_sessions.py), prints the server's resident memory after each and after 150 s idle.
set -euo pipefail
cd "$(dirname "$0")/.."
gc=${1:?true or false}; port=${2:?a free port}
models=$(mktemp -d); cp -r models/demo "$models/"
INSULIN_DASH_MODELS_DIR=$models OMP_NUM_THREADS=1 .venv/bin/streamlit run app.py --server.port "$port" \
  --server.headless true --runner.postScriptGC "$gc" > "$models/streamlit.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$models"' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/_stcore/health" > /dev/null && break; sleep 0.5; done
for round in 1 2 3 4; do
  .venv/bin/python bench/load_sessions.py --url "http://127.0.0.1:$port" --sessions 50 | grep "^| 50"
  echo "postScriptGC=$gc after round $round: $(grep VmRSS /proc/$pid/status)"
done
sleep 150
echo "postScriptGC=$gc after 150 s idle: $(grep VmRSS /proc/$pid/status)"

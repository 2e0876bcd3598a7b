#!/usr/bin/env bash
# HTTP checks against a running lstm-nmt server (used by docker-smoke.sh):
# health, a JSON-API translation and a LibreTranslate translation of German
# sentences, each answer checked for the English words it must contain.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}

fail() { echo "docker-probe: $*" >&2; exit 1; }

curl -fsS "$BASE/health" >/dev/null || fail "GET /health failed"
echo "docker-probe: /health ok"

json=$(curl -fsS -X POST "$BASE/v1/translate" -H 'Content-Type: application/json' \
  -d '{"texts": ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."], "beam_size": 5}') \
  || fail "POST /v1/translate failed"
echo "docker-probe: /v1/translate -> $json"
python3 - "$json" <<'PY' || fail "/v1/translate answer is wrong"
import json, sys
body = json.loads(sys.argv[1])
texts = [t["text"].lower() for t in body["translations"]]
assert len(texts) == 2, texts
assert "man" in texts[0] and ("bike" in texts[0] or "bicycle" in texts[0]), texts[0]
assert "dog" in texts[1] and "snow" in texts[1], texts[1]
PY

lt=$(curl -fsS -X POST "$BASE/translate" -H 'Content-Type: application/json' \
  -d '{"q": "Eine Frau sitzt auf einer Bank.", "source": "de", "target": "en", "format": "text"}') \
  || fail "POST /translate failed"
echo "docker-probe: /translate -> $lt"
python3 - "$lt" <<'PY' || fail "/translate answer is wrong"
import json, sys
body = json.loads(sys.argv[1])
text = body["translatedText"].lower()
assert "woman" in text and "bench" in text, text
PY
echo "docker-probe: all checks passed"

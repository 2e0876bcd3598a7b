#!/usr/bin/env bash
# HTTP checks against a running lstm-nmt server (used by docker-smoke.sh):
# health, a JSON-API translation and a LibreTranslate translation of German
# sentences, each answer checked for the English words it must contain.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}

fail() { echo "docker-probe: $*" >&2; exit 1; }

# post ROUTE JSON_BODY PYTHON_CHECK: POSTs the body and runs the check (Python,
# with the decoded answer in `body`) on the answer.
post() {
  local answer
  answer=$(curl -fsS -X POST "$BASE$1" -H 'Content-Type: application/json' -d "$2") \
    || fail "POST $1 failed"
  echo "docker-probe: $1 -> $answer"
  python3 -c "import json, sys; body = json.loads(sys.argv[1]); $3" "$answer" \
    || fail "$1 answer is wrong"
}

curl -fsS "$BASE/health" >/dev/null || fail "GET /health failed"
echo "docker-probe: /health ok"

post /v1/translate \
  '{"texts": ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."], "beam_size": 5}' \
  'texts = [t["text"].lower() for t in body["translations"]]
assert len(texts) == 2, texts
assert "man" in texts[0] and ("bike" in texts[0] or "bicycle" in texts[0]), texts[0]
assert "dog" in texts[1] and "snow" in texts[1], texts[1]'

post /translate \
  '{"q": "Eine Frau sitzt auf einer Bank.", "source": "de", "target": "en", "format": "text"}' \
  'text = body["translatedText"].lower()
assert "woman" in text and "bench" in text, text'

echo "docker-probe: all checks passed"

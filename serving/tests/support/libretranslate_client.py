"""Drives nmt-serve through LibreTranslate's Python client (libretranslatepy).

Usage: libretranslate_client.py BASE_URL GERMAN FRENCH ENGLISH
Prints one JSON object with what each client call returned (or the HTTP
error it raised), for tests/libretranslate_client.rs to check.
"""

import importlib.metadata
import json
import sys
import urllib.error

from libretranslatepy import LibreTranslateAPI


def call(f, *args):
    try:
        return {"ok": f(*args)}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read().decode())}


def main():
    url, german, french, english = sys.argv[1:5]
    lt = LibreTranslateAPI(url)
    out = {
        "version": importlib.metadata.version("libretranslatepy"),
        "languages": call(lt.languages),
        "explicit": call(lt.translate, german, "de", "en"),
        "auto_de": call(lt.translate, german, "auto", "en"),
        "auto_fr": call(lt.translate, french, "auto", "en"),
        "detect_de": call(lt.detect, german),
        "detect_fr": call(lt.detect, french),
        "detect_en": call(lt.detect, english),
        "bad_pair": call(lt.translate, german, "de", "xx"),
        # The client has had no file method so far; if a release adds one, use it.
        "file_method": next(
            (m for m in ("translate_file", "file") if hasattr(lt, m)), None
        ),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Wait until a URL answers (used by `make run` for the emulator): exit 0, or 1 after 10 s."""

import sys
import time
import urllib.request

deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
print(f"{sys.argv[1]} did not answer within 10 s", file=sys.stderr)
sys.exit(1)

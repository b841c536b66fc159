"""Which Node a pinned OpenClaw release runs on: the `engines.node` range it declares (shipped
in engines.json beside this module) and the small npm-range check the system checks and the
contract suite use."""

import json
import re

from django.conf import settings

from . import ASSETS


def node_engines(version: str | None = None) -> str | None:
    """The `engines.node` range the given (default: pinned) OpenClaw release declares, as
    shipped in engines.json beside this module; None for a release it does not list."""
    ranges = json.loads((ASSETS / "engines.json").read_text())
    return ranges.get(version or settings.OPENCLAW_VERSION)


_COMPARATOR = re.compile(r"^(>=|<=|>|<|=)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def satisfies(version: str, engines: str) -> bool:
    """Does `version` (e.g. "24.22.3" or "v24.22.3") satisfy an npm engines range made of
    `||` alternatives of space-separated comparators (>=, >, <=, <, =, bare; partial versions
    pad with zeros, a bare partial matches its prefix)? Enough for `engines.node`; raises
    ValueError on anything fancier (^, ~, hyphen ranges, pre-releases)."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)$", version.strip())
    if not match:
        raise ValueError(f"not a plain version: {version!r}")
    have = tuple(int(x) for x in match.groups())
    for alternative in engines.split("||"):
        ok = True
        for comparator in alternative.split():
            m = _COMPARATOR.match(comparator)
            if not m:
                raise ValueError(f"unsupported comparator {comparator!r} in {engines!r}")
            op, parts = m.group(1) or "=", [p for p in m.groups()[1:] if p is not None]
            want = tuple(int(x) for x in parts) + (0,) * (3 - len(parts))
            if op == "=":
                ok = have[:len(parts)] == tuple(int(x) for x in parts)
            else:
                ok = {">=": have >= want, ">": have > want, "<=": have <= want, "<": have < want}[op]
            if not ok:
                break
        if ok and alternative.split():
            return True
    return False

"""Server addresses read from KAFKA_BROKER and MONGO_URI, and URIs and webhook URLs made safe to print (standard library only).

The worker, the dashboard and scripts/services.sh all read addresses here, so a URI is parsed one way:
`python3 -m cryptoapp.uris kafka|mongo` prints the first server's host:port for the shell script.
"""

from __future__ import annotations

import re
import sys
from typing import Optional
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

KAFKA_PORT = 9092
MONGO_PORT = 27017
UNPARSEABLE = "<unparseable URI>"  # what a URI that cannot be parsed is shown as
# URI options whose values are credentials: passwords, TLS key passwords, AWS session tokens (which
# MongoDB passes inside authMechanismProperties), API keys.
_SECRET_OPTION = re.compile(r"password|secret|token|key|authmechanismproperties", re.IGNORECASE)


def _split(uri: str) -> Optional[SplitResult]:
    """urlsplit's parts, or None for a URI it cannot parse."""
    try:
        return urlsplit(uri)
    except ValueError:
        return None


def mask_uri(uri: str) -> str:
    """The URI with its password and credential-like options replaced by ***, safe to print or log."""
    parts = _split(uri)
    if parts is None:
        return UNPARSEABLE
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hosts = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if has_password else f"{user}@{hosts}"
    query = parts.query
    if _SECRET_OPTION.search(query):
        query = urlencode([(k, "***" if _SECRET_OPTION.search(k) else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*,:/")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# A path segment shown as is: a short lowercase word (services, api, webhooks, hooks). Anything else in a
# path may be a token (Slack's /services/T../B../XXXX, Discord's /webhooks/<id>/<token>), so it is masked.
_PLAIN_SEGMENT = re.compile(r"[a-z][a-z-]{0,11}")


def mask_webhook_url(url: Optional[str]) -> str:
    """The URL safe to log or show: user info, every query value and every path segment that is not a
    short lowercase word replaced by ***; '' for no URL.

    mask_uri does not fit: it keeps the path, where webhook services put their tokens (Slack's
    /services/T../B../XXXX, Discord's /webhooks/<id>/<token>).
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rsplit("@", 1)
    netloc = f"***@{netloc[1]}" if len(netloc) == 2 else netloc[0]
    path = "/".join(s if not s or _PLAIN_SEGMENT.fullmatch(s) else "***" for s in parts.path.split("/"))
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def _hosts(netloc: str, default_port: int) -> list[str]:
    out = []
    for host in filter(None, netloc.rsplit("@", 1)[-1].split(",")):
        out.append(host if re.search(r":\d+$", host) else f"{host}:{default_port}")
    return out


def mongo_servers(uri: str) -> str:
    """host:port of every server a MongoDB URI names (comma separated), without credentials."""
    if (parts := _split(uri)) is None:
        return UNPARSEABLE
    if parts.scheme == "mongodb+srv":
        return f"{parts.netloc.rsplit('@', 1)[-1]} (DNS SRV)"
    return ", ".join(_hosts(parts.netloc, MONGO_PORT)) or f"localhost:{MONGO_PORT}"


def kafka_servers(broker: str) -> list[str]:
    """host:port of every bootstrap server in KAFKA_BROKER (`kafka://h1:9092,h2` or `h1:9092;h2:9092`)."""
    servers = []
    for url in re.split(r"[;,]", broker):
        servers += _hosts(url.split("://", 1)[-1].split("/", 1)[0], KAFKA_PORT)
    return servers or [f"localhost:{KAFKA_PORT}"]


def main(argv: list[str]) -> int:
    """For scripts/services.sh: `kafka` or `mongo` prints the first server's host:port (`srv` for DNS SRV)."""
    import os

    if argv == ["kafka"]:
        print(kafka_servers(os.environ.get("KAFKA_BROKER") or f"kafka://localhost:{KAFKA_PORT}")[0])
    elif argv == ["mongo"]:
        first = mongo_servers(os.environ.get("MONGO_URI") or f"mongodb://localhost:{MONGO_PORT}").split(", ")[0]
        print("srv" if first.endswith("(DNS SRV)") else first)
    else:
        print("usage: python3 -m cryptoapp.uris kafka|mongo", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

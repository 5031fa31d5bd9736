"""Secrets in URLs never reach a file or a log.

A dataset or video URL can carry credentials: a password in its userinfo
(``https://alice:pw@host/data.jsonl``) or a signature in its query (S3/GCS
presigned URLs, Azure SAS tokens). textsieve opens the URL as given, but
every copy it stores (journal, lock, summary, stats, errors, report) or
prints (messages, logs) is masked: the userinfo becomes ``***`` and the
value of each sensitive query parameter becomes ``***``. The rows of the
user's own dataset (kept.jsonl, dropped.jsonl, the ``sample`` of an error)
are the user's data and are written unchanged.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# query parameters that authorise a request: AWS SigV4 and v2 (X-Amz-*, Signature,
# AWSAccessKeyId), GCS (X-Goog-*), Azure SAS (sig), and the usual token names
_SENSITIVE = re.compile(r"(?i)(signature|credential|security-token|token|secret|password|passwd|"
                        r"^sig$|^key$|api[-_]?key|access[-_]?key|awsaccesskeyid|^auth)")
_USERINFO = re.compile(r"(://)[^/@\s]+@")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{},]+")
# third-party loggers that print request headers or signed URLs at DEBUG
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer", "s3fs", "aiobotocore", "fsspec", "urllib3", "aiohttp",
                 "asyncio", "PIL", "filelock", "gcsfs", "google", "huggingface_hub", "httpx", "httpcore")


def mask_url(text: str) -> str:
    """``text`` with its userinfo and sensitive query values masked, when it is
    a URL; anything else unchanged."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SENSITIVE.search(key) for key, _ in pairs):
            query = urlencode([(key, MASK if _SENSITIVE.search(key) else value) for key, value in pairs], safe="*")
    if netloc != parts.netloc or query != parts.query:
        text = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _USERINFO.sub(rf"\1{MASK}@", text)


def redact_text(text: str) -> str:
    """Every URL inside a free text (a message, a command line) masked."""
    if "://" not in text:
        return text
    # userinfo anywhere, even in a URL that urlsplit reads otherwise (``http://http://a:pw@host``)
    return _USERINFO.sub(rf"\1{MASK}@", _URL.sub(lambda m: mask_url(m.group(0)), text))


def redact(value: Any) -> Any:
    """A JSON-like value (a config dump, settings) with every string's URLs masked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """Masks URLs in every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and "://" in str(record.exc_info[1]):
            record.msg, record.args = f"{masked} ({redact_text(str(record.exc_info[1]))})", None
            record.exc_info = record.exc_text = None
        return True


def configure_logging(verbose: bool) -> None:
    """textsieve's logging: DEBUG for textsieve under ``-v``, but third-party
    libraries stay at WARNING (botocore's DEBUG log prints credentials), and
    every handler masks URLs."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

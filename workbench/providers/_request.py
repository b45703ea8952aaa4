"""What a recorded request says, for the readers: its JSON body, or a multipart form's fields.

Owns :func:`request_fields`, which turns a canonical request (``workbench.capture.canonical``)
into the value :func:`~workbench.providers.analyse` and :func:`~workbench.providers.identify`
take as ``request_body``: the JSON body as it is, and for a multipart upload (an audio
transcription) its text fields — ``model``, ``response_format``, ... — with files left out, so
the model of a call whose body is a form is known too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["request_fields"]

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPOSITION = re.compile(rb'content-disposition:[^\r\n]*\bname="([^"]*)"([^\r\n]*)', re.I)
# A form field is short; a part longer than this is a file even without a filename.
_MAX_FIELD = 4096


def request_fields(canonical: Mapping[str, Any]) -> Any:
    """The JSON body of a canonical request, or its multipart text fields as a dict, or None."""
    body_format = canonical.get("body_format")
    body = canonical.get("body")
    if body_format == "json":
        return body
    content_type = (canonical.get("headers") or {}).get("content-type", "")
    if not isinstance(content_type, str) or not content_type.startswith("multipart/"):
        return None
    found = _BOUNDARY.search(content_type)
    if found is None or not isinstance(body, dict):
        return None
    if body_format == "text" and isinstance(body.get("text"), str):
        raw = body["text"].encode("utf-8")
    elif body_format == "base64" and isinstance(body.get("base64"), str):
        try:
            raw = base64.b64decode(body["base64"], validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        return None
    fields: dict[str, str] = {}
    for part in raw.split(b"--" + found.group(1).encode("latin-1")):
        head, separator, value = part.partition(b"\r\n\r\n")
        disposition = _DISPOSITION.search(head)
        if not separator or disposition is None or b"filename=" in disposition.group(2):
            continue
        value = value.removesuffix(b"\r\n")
        if len(value) <= _MAX_FIELD:
            fields[disposition.group(1).decode("utf-8", "replace")] = value.decode(
                "utf-8", "replace"
            )
    return fields or None

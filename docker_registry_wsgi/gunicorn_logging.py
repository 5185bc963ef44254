"""gunicorn's logger for ``serve``: its lines in the registry's format, access lines with the
request id, and clients' malformed requests at debug level.

A client that tries TLS first on a plain port (skopeo does, before falling back to HTTP), a port
scanner or a stray ``nc`` makes gunicorn warn "Invalid request from ip=...: ..." (a bare LF, an
invalid request line). That is the client's business and the access log already has the 400:
those lines are logged at debug level.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn import glogging

from . import logs
from .events import REQUEST_ID_KEY

__all__ = ["GunicornLogger"]

#: How gunicorn's workers report a request they could not parse.
_CLIENT_ERROR = "Invalid request from ip="


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's ``logger_class`` for ``serve``; :meth:`configured` picks the format."""

    log_format = "text"

    @classmethod
    def configured(cls, log_format: str) -> type["GunicornLogger"]:
        """A subclass writing ``log_format`` (``text`` or ``json``), for gunicorn's ``logger_class``."""
        logs.formatter(log_format)  # refuses an unknown format now
        return type(cls.__name__, (cls,), {"log_format": log_format})

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(logs.formatter(self.log_format))
                    handler.addFilter(logs.ContextFilter())
                    if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                        handler.setStream(sys.stderr)  # every line on one stream

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith(_CLIENT_ERROR):
            self.error_log.debug(msg, *args, **kwargs)
        else:
            self.error_log.warning(msg, *args, **kwargs)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One line per request: who, what, the status, bytes sent, seconds, the client, its id."""
        if not self.access_log_enabled:
            return
        status = str(resp.status).split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        seconds = request_time.total_seconds()
        fields = {
            "remote_addr": environ.get("REMOTE_ADDR", "-"),
            "method": environ.get("REQUEST_METHOD", "-"),
            "path": environ.get("RAW_URI", environ.get("PATH_INFO", "-")),
            "protocol": environ.get("SERVER_PROTOCOL", "-"),
            "status": int(status) if status.isdigit() else status,
            "bytes": sent,
            "duration": round(seconds, 6),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
        }
        message = (f'{fields["remote_addr"]} "{fields["method"]} {fields["path"]} {fields["protocol"]}" '
                   f'{status} {sent if sent is not None else "-"} {seconds:.3f}s "{fields["user_agent"]}"')
        extra: dict[str, Any] = {"access": fields}
        rid = environ.get(REQUEST_ID_KEY)
        if isinstance(rid, str):
            extra["request_id"] = rid
        try:
            self.access_log.info(message, extra=extra)
        except Exception:  # as gunicorn's own: a broken log line must not fail the request
            self.exception("cannot write the access log line")

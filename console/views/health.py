"""GET /healthz: 200 JSON once the database (and the broker, when it runs) are ready."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from retained import runtime

logger = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM retained_counter LIMIT 1")
        checks["database"] = "ok"
    except Exception as error:
        logger.warning("health check: database not ready: %s", error)
        checks["database"] = "unavailable"
    checks["broker"] = runtime.broker_status()
    healthy = checks["database"] == "ok" and checks["broker"] in ("ok", "disabled")
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )

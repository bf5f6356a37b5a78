"""AWS rest-json errors: status, `x-amzn-ErrorType` header, `{"message": ...}` body.

botocore reads the header to raise the modeled exception class (e.g.
`client.exceptions.ResourceNotFoundException`).
"""

from __future__ import annotations

from django.http import JsonResponse

from retained.ratelimit import retry_after_seconds


class ApiError(Exception):
    status = 500
    error_type = "InternalFailureException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self) -> JsonResponse:
        response = JsonResponse({"message": self.message}, status=self.status)
        response["x-amzn-ErrorType"] = self.error_type
        return response


class InvalidRequest(ApiError):
    status = 400
    error_type = "InvalidRequestException"


class Unauthorized(ApiError):
    status = 401
    error_type = "UnauthorizedException"


class Forbidden(ApiError):
    status = 403
    error_type = "ForbiddenException"


class ResourceNotFound(ApiError):
    status = 404
    error_type = "ResourceNotFoundException"


class MethodNotAllowed(ApiError):
    status = 405
    error_type = "MethodNotAllowedException"


class RequestEntityTooLarge(ApiError):
    status = 413
    error_type = "RequestEntityTooLargeException"


class Throttling(ApiError):
    status = 429
    error_type = "ThrottlingException"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        """`retry_after`: seconds until a retry can succeed, sent as `Retry-After` (a rate
        limit knows it; the retained-message count quota does not)."""
        super().__init__(message)
        self.retry_after = retry_after

    def response(self) -> JsonResponse:
        response = super().response()
        if self.retry_after is not None:
            response["Retry-After"] = str(retry_after_seconds(self.retry_after))
        return response


class InternalFailure(ApiError):
    status = 500
    error_type = "InternalFailureException"


class ServiceUnavailable(ApiError):
    status = 503
    error_type = "ServiceUnavailableException"

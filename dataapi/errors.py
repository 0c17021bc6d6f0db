"""The Data API's errors: `{"error": {"code", "message", "details"}}`, raised as ApiError from any endpoint module."""

from __future__ import annotations

from typing import Any

from ninja import Schema


class ApiError(Exception):
    """An error the API reports as `{"error": {"code", "message", "details"}}`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        self.status, self.code, self.message, self.details = status, code, message, details
        super().__init__(message)


class ErrorBody(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    error: ErrorBody


ERRORS = {code: ErrorOut for code in (400, 401, 403, 404, 409, 413, 415)}

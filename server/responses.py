"""Documented error answers of the REST API, for the OpenAPI schema.

Every error is ``{"detail": ...}``: a sentence for 4xx and 503 answers raised by the
routes, a list of located problems for 422 (the app's validation handler). Routers
declare what they can answer with these dictionaries, so that ``/openapi.json`` lists
every status code a client can see (checked by tests/server/app/test_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="What went wrong: a sentence, or for 422 one entry per invalid field."
    )


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


Responses = dict[int | str, dict[str, Any]]

LOGIN: Responses = {401: _error("Not logged in, or the token is unknown, expired or revoked.")}
OPERATOR: Responses = {**LOGIN, 403: _error("A viewer asked for what needs an operator.")}
BAD_REQUEST: Responses = {400: _error("The request is well-formed but cannot be done as asked.")}
NOT_FOUND: Responses = {404: _error("No such episode, robot, camera, step or run.")}
CONFLICT: Responses = {409: _error("The current state does not allow it (e.g. the robot refused).")}
INVALID: Responses = {422: _error("A parameter or the body failed validation.")}
UNAVAILABLE: Responses = {503: _error("A bridge or file the answer needs cannot be reached.")}

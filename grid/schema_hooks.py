"""The API's error answers, written into the OpenAPI schema once for every operation.

Every refusal has one shape (grid.api_errors): `{"error": code, "message": text, ...details}`
with a 4xx status. drf-spectacular documents only each view's success answer, so a client
generated from /api/v1/schema (or schemathesis checking answers against it) would meet 400, 401,
403, 404, 409, 413 and 429 answers the schema never mentions. This hook adds the shape as the
`ApiError` component and as each operation's `default` response.
"""

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API answers; clients branch on `error`, people read `message`.",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. `script_parse`."},
        "message": {"type": "string", "description": "What was wrong, for people."},
    },
    "additionalProperties": True,
}
ERROR_RESPONSE = {
    "description": "A refusal (4xx) with the API's error body; details vary by `error`.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
}
METHODS = {"get", "put", "post", "delete", "patch", "head"}


def document_errors(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add ApiError and every operation's default answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["ApiError"] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in METHODS:
                operation.setdefault("responses", {}).setdefault("default", ERROR_RESPONSE)
    return result

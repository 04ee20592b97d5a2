"""The OpenAPI 3.1 description of the JSON API under `/api/`, served at `/api/openapi.json`.

Written by hand from the API's contract rather than generated from the views, so that it is a
promise the tests hold the code to: `tests/http/test_openapi_fuzz.py` sends schemathesis-made
requests to every operation, as an admin, a user and anonymous, and checks every status code,
header and body against this document. The tus protocol under `/files/` and the signed link
route are HTTP, not JSON, and are described in the README instead.
"""

from __future__ import annotations

import copy
from typing import Any

from . import __version__
from .auth import passwords
from .auth.accounts import LABEL_MAX, NAME_PATTERN
from .auth.principal import SCOPES
from .settings import Settings

JSON = "application/json"
UPLOAD_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
USER_NAME = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"}
_NAME_CHAR = "[^/\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]"
FILENAME = {
    "type": "string",
    "maxLength": 255,
    # Not all blank, no '/', no control or line-breaking characters.
    "pattern": f"^{_NAME_CHAR}*[^\\s/\\x00-\\x1f\\x7f-\\x9f]{_NAME_CHAR}*$",
}
TAG = {"type": "string", "pattern": "^[a-z0-9._-]{1,32}$"}
OPTIONAL_NAME = {"type": "string", "pattern": f"^({NAME_PATTERN.pattern})?$"}
PASSWORD = {
    "type": "string",
    "minLength": passwords.MIN_LENGTH,
    "maxLength": passwords.MAX_LENGTH,
}
TOKEN_LIFETIME = {"type": "number", "exclusiveMinimum": 0, "maximum": 10 * 365 * 86400}
ROLE = {"type": "string", "enum": ["admin", "user"]}
SCOPE = {"type": "string", "enum": list(SCOPES)}
TOKEN_SCOPES = {
    "type": ["array", "null"],
    "items": SCOPE,
    "description": "What the token may do; null: its owner's full rights.",
}
BASE64 = {
    "type": "string",
    "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    "contentEncoding": "base64",
}
SECONDS = {"type": "integer", "minimum": 1}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(
    properties: dict[str, Any], required: list[str] | None = None, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _request(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A request body: fields it does not know are ignored (so clients can be newer)."""
    return _obj(properties, required, closed=False)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "required": True}}
_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}

ERRORS: dict[str, dict[str, Any]] = {
    "400": _error("The request is malformed: the message says what to send instead."),
    "401": _error("No valid credential (the challenge says how to send one).", _CHALLENGE),
    "403": _error(
        "Not allowed: an action the caller's role may not take, one outside the API token's "
        "scopes, or a cookie-authenticated change whose Origin is not this server's."
    ),
    "404": _error("No such resource, or one that belongs to someone else."),
    "405": _error("The method is not allowed here."),
    "409": _error("The resource is not in a state that allows this (e.g. still uploading)."),
    "410": _error("The upload expired or was terminated."),
    "413": _error("The request body is too large, or a quota would be exceeded."),
    "415": _error("The body is not of the media type the operation takes."),
    "423": _error("The upload is being written by another request; retry shortly."),
    "429": _error("Too many attempts; retry after the given number of seconds.", _RETRY_AFTER),
    "503": _error("A backend (Redis or the data store) is unavailable.", _RETRY_AFTER),
}
_ALWAYS = ("401", "405", "503")
"""Any operation may answer these: no credential, a wrong method, a backend outage."""
_BODY = ("400", "403", "413")
"""Any operation with a JSON body may also answer these."""


def _responses(
    ok: dict[str, dict[str, Any]], *errors: str, public: bool = False, body: bool = False
) -> dict[str, Any]:
    codes = [*errors, *(c for c in _ALWAYS if not (public and c == "401"))]
    if body:
        codes += _BODY
    responses: dict[str, Any] = dict(ok)
    for code in sorted(set(codes)):
        responses[code] = ERRORS[code]
    return responses


def _no_content(description: str) -> dict[str, dict[str, Any]]:
    return {"204": {"description": description}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PUBLIC: list[dict[str, Any]] = [{}]
"""`security` of an operation that needs no credential."""

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}})}),
    "Upload": _obj(
        {
            "id": UPLOAD_ID,
            "filename": {"type": "string"},
            "filetype": {"type": "string"},
            "size": {"type": ["integer", "null"], "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "complete": {"type": "boolean"},
            "created": TIMESTAMP,
            "updated": TIMESTAMP,
            "expires": NULLABLE_TIMESTAMP,
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "tags": {"type": "array", "items": TAG},
            "thumbnail": {
                "type": ["string", "null"],
                "description": "A small image data URL from the `thumbnail` metadata value.",
            },
            "owner": {"type": ["string", "null"]},
            "url": {"type": "string", "format": "uri"},
            "download_url": {"type": "string", "format": "uri"},
        },
        required=["id", "filename", "size", "offset", "complete", "created", "url"],
    ),
    "UploadPage": _obj(
        {
            "uploads": {"type": "array", "items": _ref("Upload")},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0},
            "next": {"type": ["string", "null"], "format": "uri"},
        }
    ),
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        required=["status"],
    ),
    "Link": _obj(
        {
            "url": {"type": "string", "format": "uri"},
            "expires": TIMESTAMP,
        }
    ),
    "LinkRequest": _request({"expires_in": {**SECONDS, "description": "Lifetime in seconds."}}),
    "GrantRequest": _request(
        {
            "max_size": {"type": "integer", "minimum": 1, "description": "Bytes per upload."},
            "expires_in": {**SECONDS, "description": "Lifetime in seconds."},
            "uploads": {"type": "integer", "minimum": 1, "maximum": 1000},
            "metadata": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "description": "Upload-Metadata fixed on every upload made with the grant.",
            },
        },
        required=["max_size", "expires_in", "uploads"],
    ),
    "Grant": _obj(
        {
            "grant": {"type": "string", "pattern": "^tusg_"},
            "expires": TIMESTAMP,
            "uploads": {"type": "integer", "minimum": 1},
            "max_size": {"type": "integer", "minimum": 1},
        }
    ),
    "Change": {
        **_request(
            {
                "filename": FILENAME,
                "tags": {"type": "array", "items": TAG, "maxItems": 20, "uniqueItems": True},
            },
            required=[],
        ),
        "anyOf": [{"required": ["filename"]}, {"required": ["tags"]}],
        "description": "A new file name, new tags (replacing the old ones), or both.",
    },
    "Login": _request({"name": {"type": "string"}, "password": {"type": "string"}}),
    "Identity": _obj({"name": USER_NAME, "role": ROLE}),
    "Me": _obj(
        {
            "name": {"type": ["string", "null"]},
            "role": {"type": "string", "enum": ["admin", "user", "anonymous"]},
            "usage": {"type": "integer", "minimum": 0},
            "quota": {"type": ["integer", "null"], "minimum": 0},
            "auth": {"type": "string", "enum": ["required", "none"]},
        }
    ),
    "Token": _obj(
        {
            "id": {"type": "string"},
            "label": {"type": "string"},
            "owner": {"type": "string"},
            "created": TIMESTAMP,
            "expires": NULLABLE_TIMESTAMP,
            "last_used": NULLABLE_TIMESTAMP,
            "scopes": TOKEN_SCOPES,
        }
    ),
    "NewToken": _obj(
        {
            "id": {"type": "string"},
            "label": {"type": "string"},
            "owner": {"type": "string"},
            "created": TIMESTAMP,
            "expires": NULLABLE_TIMESTAMP,
            "last_used": NULLABLE_TIMESTAMP,
            "scopes": TOKEN_SCOPES,
            "token": {"type": "string", "pattern": "^tus_", "description": "Shown only once."},
        }
    ),
    "TokenList": _obj({"tokens": {"type": "array", "items": _ref("Token")}}),
    "TokenRequest": _request(
        {
            "label": {"type": "string", "pattern": f"^[^\\x00-\\x1f\\x7f]{{0,{LABEL_MAX}}}$"},
            "expires_in": TOKEN_LIFETIME,
            "owner": {**OPTIONAL_NAME, "description": "Admins only: whose token."},
            "scopes": {
                "type": "array",
                "items": SCOPE,
                "minItems": 1,
                "description": "Limit the token (leave out for the owner's full rights). "
                "`admin` only on an admin's token; a scoped token creates tokens within its "
                "own scopes only.",
            },
        },
        required=["label"],
    ),
    "NewFile": {
        "type": "object",
        "properties": {
            "filename": FILENAME,
            "content_base64": {**BASE64, "description": "The file's bytes, base64."},
            "text": {"type": "string", "description": "The file as text (stored as UTF-8)."},
            "filetype": {
                "type": "string",
                "pattern": "^[A-Za-z0-9][\\x20-\\x7e]{0,254}$",
                "description": "Media type (default: none; text/plain for `text`).",
            },
            "tags": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z0-9_.-]{1,32}$"},
                "maxItems": 20,
            },
            "previous": {**UPLOAD_ID, "description": "The upload this one is a new version of."},
        },
        "required": ["filename"],
        "oneOf": [{"required": ["content_base64"]}, {"required": ["text"]}],
        "additionalProperties": False,
    },
    "FileContent": {
        "type": "object",
        "properties": {
            "id": UPLOAD_ID,
            "filename": {"type": "string"},
            "filetype": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
            "content_base64": BASE64,
            "text": {"type": "string"},
        },
        "required": ["id", "filename", "filetype", "size"],
        "oneOf": [{"required": ["content_base64"]}, {"required": ["text"]}],
        "additionalProperties": False,
    },
    "User": _obj(
        {
            "name": USER_NAME,
            "role": ROLE,
            "created": TIMESTAMP,
            "disabled": {"type": "boolean"},
            "quota": {"type": ["integer", "null"], "minimum": 0},
            "quota_override": {"type": ["integer", "null"], "minimum": 0},
            "usage": {"type": "integer", "minimum": 0},
        },
        required=["name", "role", "created", "disabled", "quota", "usage"],
    ),
    "UserList": _obj({"users": {"type": "array", "items": _ref("User")}}),
    "NewUser": _request(
        {
            "name": USER_NAME,
            "password": PASSWORD,
            "role": ROLE,
            "quota": {"type": ["integer", "null"], "minimum": 0},
        },
        required=["name", "password"],
    ),
    "UserChange": _request(
        {
            "role": ROLE,
            "quota": {"type": ["integer", "null"], "minimum": 0},
            "disabled": {"type": "boolean"},
            "password": PASSWORD,
        },
        required=[],
    ),
}

_UPLOAD_ID_PARAM = _path_param("upload_id", UPLOAD_ID)
_NAME_PARAM = _path_param("name", USER_NAME)
SIZE = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
MOMENT = {"type": "number", "minimum": 0, "maximum": 1e11}
"""Unix seconds; ISO 8601 (`2026-12-01`, `2026-12-01T12:00:00Z`) is accepted too."""
_MIME_PART = "[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
LIST_FILTERS = [
    _query_param("q", {"type": "string", "maxLength": 200}, "Case-insensitive name substring."),
    {
        **_query_param("tag", {"type": "array", "items": TAG, "maxItems": 20}, "Has every tag."),
        "style": "form",
        "explode": True,
    },
    _query_param(
        "type",
        {"type": "string", "pattern": f"^{_MIME_PART}(/({_MIME_PART})?)?$"},
        "MIME type (`image/png`) or major type (`image`, `image/`).",
    ),
    _query_param("complete", {"type": "string", "enum": ["true", "false"]}, "Complete or not."),
    _query_param("min_size", SIZE, "At least this many bytes."),
    _query_param("max_size", SIZE, "At most this many bytes."),
    _query_param("since", MOMENT, "Created at or after this (Unix seconds, or ISO 8601)."),
    _query_param("until", MOMENT, "Created before this (Unix seconds, or ISO 8601)."),
    _query_param(
        "sort",
        {"type": "string", "enum": ["name", "-name", "size", "-size", "created", "-created",
                                    "updated", "-updated"]},
        "Sort order; `-` for descending (default `-created`).",
    ),
]  # fmt: skip

_OWNER_FILTER = _query_param("owner", OPTIONAL_NAME, "Admins only: this user's (empty: mine).")

PATHS: dict[str, Any] = {
    "/api/events": {
        "get": {
            "summary": "Live file events (Server-Sent Events; admins: everyone's)",
            "description": (
                "A text/event-stream that stays open: one event per change of the caller's "
                "uploads (`created`, `progress` (at most about one a second per upload), "
                "`finished`, `renamed`, `tagged`, `deleted`), each with `id:` (its Redis stream "
                "entry id), `event:` (the type) and `data:` (JSON: type, id, owner, filename, "
                "filetype, tags, size, offset, complete, time), and a comment line as heartbeat. "
                "`Last-Event-ID` (or `last_event_id`) resumes after that "
                "event; an id the server cannot vouch for is answered with a `reset` event and "
                "every retained event. Needs the `read` scope; 503 when the server holds as "
                "many streams as it may."
            ),
            "operationId": "eventStream",
            "parameters": [
                _query_param(
                    "last_event_id",
                    {"type": "string", "maxLength": 64},
                    "Resume after this event id (what the Last-Event-ID header does).",
                ),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 64},
                    "description": "Resume after this event id (sent by EventSource itself).",
                },
            ],
            "responses": _responses(
                {
                    "200": {
                        "description": "The stream (it ends when the client or server leaves).",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    }
                },
                "403",
                "404",
            ),
        }
    },
    "/api/health": {
        "get": {
            "summary": "Whether Redis and the data store answer",
            "operationId": "health",
            "security": PUBLIC,
            "responses": _responses(
                {
                    "200": _json(_ref("Health"), "Every backend answers."),
                    "503": _json(_ref("Health"), "A backend does not answer."),
                },
                public=True,
            ),
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": PUBLIC,
            "responses": _responses(
                {"200": _json({"type": "object"}, "The OpenAPI document.")}, public=True
            ),
        }
    },
    "/api/uploads": {
        "get": {
            "summary": "The caller's uploads, filtered and sorted (admins: everyone's)",
            "description": (
                "Filters combine (all must match). `since`/`until` take ISO 8601 (no zone: "
                "UTC) or Unix seconds; `since` is inclusive, `until` exclusive. Size filters "
                "leave out uploads whose length is not known yet. `sort` is ascending; a "
                "leading `-` sorts descending (default `-created`); ties go by id."
            ),
            "operationId": "listUploads",
            "parameters": [
                *LIST_FILTERS,
                _query_param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 200},
                    "Page size (default 50).",
                ),
                _query_param(
                    "offset",
                    {"type": "integer", "minimum": 0, "maximum": 10**9},
                    "How many to skip.",
                ),
                _OWNER_FILTER,
            ],
            "responses": _responses({"200": _json(_ref("UploadPage"), "A page.")}, "400", "403"),
        }
    },
    "/api/uploads/{upload_id}": {
        "parameters": [_UPLOAD_ID_PARAM],
        "get": {
            "summary": "One upload",
            "operationId": "getUpload",
            "responses": _responses({"200": _json(_ref("Upload"), "The upload.")}, "404", "410"),
        },
        "patch": {
            "summary": "Rename an upload and/or replace its tags (token scope `manage`)",
            "operationId": "changeUpload",
            "requestBody": _body(_ref("Change")),
            "responses": _responses(
                {"200": _json(_ref("Upload"), "The changed upload.")},
                "403",
                "404",
                "410",
                body=True,
            ),
        },
        "delete": {
            "summary": "Terminate an upload and free its bytes",
            "operationId": "deleteUpload",
            "responses": _responses(_no_content("Terminated."), "403", "404", "410", "423"),
        },
    },
    "/api/files": {
        "post": {
            "summary": "Create a complete upload from one JSON document (scope upload)",
            "description": "Stored and downloadable exactly like a finished tus upload. The "
            "decoded file may hold at most `TUSSERVER_JSON_UPLOAD_MAX` bytes (413 above it: "
            "use tus); bad base64 is a 400. Nothing is kept from a refused request.",
            "operationId": "createFile",
            "requestBody": _body(_ref("NewFile")),
            "responses": _responses(
                {
                    "201": {
                        **_json(_ref("Upload"), "The new, complete upload."),
                        "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
                    }
                },
                "404",
                "415",
                body=True,
            ),
        }
    },
    "/api/uploads/{upload_id}/content": {
        "parameters": [_UPLOAD_ID_PARAM],
        "get": {
            "summary": "A small complete upload's bytes as JSON (scope read)",
            "operationId": "getUploadContent",
            "parameters": [
                _query_param(
                    "encoding",
                    {"type": "string", "enum": ["base64", "text"]},
                    "base64 (default), or text for an upload that is UTF-8 text (400 if not).",
                )
            ],
            "responses": _responses(
                {"200": _json(_ref("FileContent"), "The file.")},
                "400",
                "403",
                "404",
                "409",
                "410",
                "413",
            ),
        },
    },
    "/api/uploads/{upload_id}/links": {
        "parameters": [_UPLOAD_ID_PARAM],
        "post": {
            "summary": "A signed download link (owner or admin)",
            "description": "The URL downloads the complete upload with no credential until "
            "it expires or the links of the upload are revoked.",
            "operationId": "createLink",
            "requestBody": _body(_ref("LinkRequest")),
            "responses": _responses(
                {"201": _json(_ref("Link"), "The link.")}, "404", "409", "410", body=True
            ),
        },
        "delete": {
            "summary": "Revoke every link of the upload",
            "operationId": "revokeLinks",
            "responses": _responses(_no_content("Revoked."), "403", "404", "410"),
        },
    },
    "/api/grants": {
        "post": {
            "summary": "An upload grant for someone without an account",
            "description": "A tus client presenting the grant as `Authorization: Bearer` may "
            "create up to `uploads` uploads of at most `max_size` bytes each, with `metadata` "
            "fixed, and touch only those. They belong to the grant's creator.",
            "operationId": "createGrant",
            "requestBody": _body(_ref("GrantRequest")),
            "responses": _responses({"201": _json(_ref("Grant"), "The grant.")}, body=True),
        }
    },
    "/api/session": {
        "post": {
            "summary": "Log in: sets the `tusserver_session` cookie",
            "operationId": "login",
            "security": PUBLIC,
            "requestBody": _body(_ref("Login")),
            "responses": _responses(
                {"200": _json(_ref("Identity"), "Logged in.")}, "401", "429", body=True
            ),
        },
        "delete": {
            "summary": "Log out (the session ends on every server)",
            "operationId": "logout",
            "security": PUBLIC,
            "responses": _responses(_no_content("Logged out."), "403", public=True),
        },
    },
    "/api/me": {
        "get": {
            "summary": "Who the caller is, with usage and quota",
            "operationId": "me",
            "responses": _responses({"200": _json(_ref("Me"), "The caller.")}),
        }
    },
    "/api/tokens": {
        "get": {
            "summary": "The caller's API tokens (admins: `?owner=`)",
            "operationId": "listTokens",
            "parameters": [_OWNER_FILTER],
            "responses": _responses(
                {"200": _json(_ref("TokenList"), "The tokens.")}, "400", "403", "404"
            ),
        },
        "post": {
            "summary": "Create an API token (shown once)",
            "operationId": "createToken",
            "requestBody": _body(_ref("TokenRequest")),
            "responses": _responses(
                {"201": _json(_ref("NewToken"), "The token.")}, "404", body=True
            ),
        },
    },
    "/api/tokens/{token_id}": {
        "parameters": [_path_param("token_id", {"type": "string", "pattern": "^[0-9a-f]{16}$"})],
        "delete": {
            "summary": "Revoke a token",
            "operationId": "revokeToken",
            "responses": _responses(_no_content("Revoked."), "403", "404"),
        },
    },
    "/api/users": {
        "get": {
            "summary": "Every user (admins)",
            "operationId": "listUsers",
            "responses": _responses({"200": _json(_ref("UserList"), "The users.")}, "403"),
        },
        "post": {
            "summary": "Create a user (admins)",
            "operationId": "createUser",
            "requestBody": _body(_ref("NewUser")),
            "responses": _responses({"201": _json(_ref("User"), "The user.")}, "409", body=True),
        },
    },
    "/api/users/{name}": {
        "parameters": [_NAME_PARAM],
        "patch": {
            "summary": "Change a user's role, quota, password or disabled flag (admins)",
            "operationId": "updateUser",
            "requestBody": _body(_ref("UserChange")),
            "responses": _responses({"200": _json(_ref("User"), "The user.")}, "404", body=True),
        },
        "delete": {
            "summary": "Remove a user, optionally with its uploads (admins)",
            "operationId": "deleteUser",
            "parameters": [
                _query_param("delete_uploads", {"type": "boolean"}, "Remove its uploads too.")
            ],
            "responses": _responses(_no_content("Removed."), "403", "404"),
        },
    },
}


def _grant_metadata_limits(max_bytes: int) -> dict[str, Any]:
    """Bounds under which any metadata fits in `max_bytes` once encoded (as the server counts:
    key + base64 of the UTF-8 value + separators), so a schema-valid grant is never refused."""
    pairs, key_length = 8, 32
    per_pair = max_bytes // pairs - key_length - 4
    value_length = max(per_pair * 3 // 4 // 4, 1)  # base64 of up to 4 UTF-8 bytes a character
    return {
        "maxProperties": pairs,
        "propertyNames": {"pattern": f"^[!-+\\--~]{{1,{key_length}}}$"},
        "additionalProperties": {"type": "string", "maxLength": value_length},
    }


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The whole document, with the limits this server's settings set (a fresh copy)."""
    settings = settings or Settings()
    schemas = copy.deepcopy(SCHEMAS)
    schemas["LinkRequest"]["properties"]["expires_in"]["maximum"] = settings.link_max_lifetime
    grant = schemas["GrantRequest"]["properties"]
    grant["expires_in"]["maximum"] = settings.grant_max_lifetime
    grant["max_size"]["maximum"] = settings.max_size or 2**53 - 1
    grant["metadata"].update(_grant_metadata_limits(settings.max_metadata_size))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tusserver JSON API",
            "version": __version__,
            "description": "Uploads, accounts, tokens, download links and upload grants. "
            'Errors are `{"error": {"code", "message"}}`. The tus protocol itself is at '
            "`/files/`.",
        },
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`tus_...`) or, when configured, a JWT.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "tusserver_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }

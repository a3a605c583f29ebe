"""Schemathesis hooks for scripts/schemathesis: keep the fuzzer from revoking its own
credential, and drop one header that schemathesis wrongly expects a server to reject.

Schemathesis 4 does not only send random ids: it reads resources out of earlier responses
(`extra data sources`, on by default) and chains operations (stateful phase). After a
`GET /api/v1/tokens` it knows the bootstrap token's id, after `GET /api/v1/users` it knows
`admin`, so it can and does send `DELETE /api/v1/tokens/<bootstrap id>` or
`DELETE /api/v1/users/admin` (allowed once it has created a second admin), and every later
request would then answer 401 and test nothing. Any other token or user, including ones the
fuzzer created itself, stays fair game: only the credential the run authenticates with is
protected, by renaming the target to one that does not exist (the server answers 404, as it
would for a random id).
"""

import atexit
import os
import sys

import schemathesis

_TOKEN = os.environ.get("HOSTPLANE_FUZZ_TOKEN", "")
# An API token is `hp_<id>_<secret>`; the id is what `/api/v1/tokens/{id}` takes.
_TOKEN_ID = _TOKEN.split("_")[1] if _TOKEN.count("_") >= 2 else None
_OWNER = os.environ.get("HOSTPLANE_FUZZ_OWNER", "admin")
_DECOY = "fuzz-protected-credential"
# What schemathesis calls the header it adds to test that unknown headers are rejected.
_UNKNOWN_HEADER = "x-schemathesis-unknown-property"

# `POST /api/v1/system/backups/upload` takes the raw tar archive as `application/x-tar`, a media
# type schemathesis has no serializer for (it stops the operation with "Serialization not
# possible"). A tar body is raw bytes: send it the way `application/octet-stream` is sent.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")


@schemathesis.hook
def before_call(context, case, kwargs):
    _drop_unknown_header(case)
    _protect_credential(case)
    _pace_selftest(case)


def _pace_selftest(case):
    """The self-test's `step_delay_ms` (up to 60 s a step) only paces a job for watching; a
    fuzzed minute-long self-test makes every later `jobs/{id}/wait` and `log?follow` outlast
    the request timeout. Keep the fuzzer's self-tests short (the long path is covered by the
    integration tests: tests/jobs.rs, tests/crash.rs)."""
    if case.path == "/api/v1/system/selftest" and isinstance(case.body, dict):
        delay = case.body.get("step_delay_ms")
        if isinstance(delay, (int, float)) and not isinstance(delay, bool) and 0 <= delay <= 60000:
            case.body["step_delay_ms"] = min(delay, 100)


def _drop_unknown_header(case):
    """Unknown request headers are not an error: RFC 9110 §5.1 has recipients ignore unrecognized
    header fields, and proxies and browsers add their own. Schemathesis means to exempt extra
    headers from `negative_data_rejection` (`has_only_additional_properties_in_non_body_parameters`)
    but 4.32.5 missed them on `GET /api/v1/events` (which declares a `Last-Event-ID` header)
    and expected a 4xx for a request whose only fault was `x-schemathesis-unknown-property: 42`. Dropping that one header makes such a case valid
    again; every other negative case is sent as generated.
    """
    if case.headers and _UNKNOWN_HEADER in case.headers:
        del case.headers[_UNKNOWN_HEADER]


def _protect_credential(case):
    params = case.path_parameters
    if not params or case.method.upper() not in ("DELETE", "PATCH"):
        return
    if case.path == "/api/v1/tokens/{id}" and _TOKEN_ID and str(params.get("id")) == _TOKEN_ID:
        params["id"] = _DECOY
    elif case.path == "/api/v1/users/{name}" and str(params.get("name")) == _OWNER:
        params["name"] = _DECOY
    else:
        return
    op = f"{case.method.upper()} {case.path}"
    _protected[op] = _protected.get(op, 0) + 1


_protected = {}


@atexit.register
def _report():
    for op, n in sorted(_protected.items()):
        print(f"schemathesis hooks: kept the run's credential out of {op} {n} time(s)", file=sys.stderr)

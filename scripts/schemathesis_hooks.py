"""Schemathesis hooks for scripts/schemathesis: keep the fuzzer from revoking its own
credential or taking away the run's fixtures, wait for the jobs of storage and VM operations,
keep template downloads on loopback, and drop one header that schemathesis wrongly expects a
server to reject.

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
import re
import sys
import time

import requests
import schemathesis
import urllib3

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


_BASE = os.environ.get("HOSTPLANE_FUZZ_BASE", "")
# The fixtures scripts/schemathesis made before the run (pool, dataset, snapshot, shares, VM,
# VM snapshot, template: all named this).
_FIXTURE = os.environ.get("HOSTPLANE_FUZZ_FIXTURE", "")
_BOX_URL = os.environ.get("HOSTPLANE_FUZZ_BOX_URL", "")


@schemathesis.hook
def before_call(context, case, kwargs):
    _drop_unknown_header(case)
    _protect_credential(case)
    _protect_fixtures(case)
    _pace_selftest(case)
    _local_template_url(case)


@schemathesis.hook
def after_call(context, case, response):
    _wait_for_job(case, response)


# Operations that would take a fixture away for the rest of the run, with the path parameters
# that name it. The target is renamed to the decoy (404), as for the credential.
_FIXTURE_REMOVERS = {
    ("DELETE", "/api/v1/pools/{name}"): ("name",),
    ("POST", "/api/v1/pools/{name}/export"): ("name",),
    ("POST", "/api/v1/pools/{name}/unmount"): ("name",),
    ("DELETE", "/api/v1/pools/{name}/devices/{disk}"): ("name",),
    ("POST", "/api/v1/pools/{name}/devices/{disk}/replace"): ("name",),
    ("DELETE", "/api/v1/pools/{pool}/datasets/{dataset}"): ("pool", "dataset"),
    ("DELETE", "/api/v1/pools/{pool}/datasets/{dataset}/snapshots/{snapshot}"): ("pool", "dataset", "snapshot"),
    ("DELETE", "/api/v1/shares/smb/{name}"): ("name",),
    ("DELETE", "/api/v1/shares/nfs/{name}"): ("name",),
    ("DELETE", "/api/v1/vms/{id}"): ("id",),
    ("DELETE", "/api/v1/vms/{id}/snapshots/{name}"): ("id", "name"),
    ("DELETE", "/api/v1/vms/templates/{name}"): ("name",),
}
# Operations that would rename a fixture (a `name` in the body): the body keeps every other field.
_FIXTURE_RENAMERS = {
    ("PATCH", "/api/v1/pools/{pool}/datasets/{dataset}"): ("pool", "dataset"),
    ("PATCH", "/api/v1/shares/smb/{name}"): ("name",),
    ("PATCH", "/api/v1/shares/nfs/{name}"): ("name",),
}


def _protect_fixtures(case):
    """The fixtures are what lets every later case reach past "404 no such pool"; deleting,
    exporting, unmounting or renaming one would end that for the rest of the run. What the
    fuzzer creates itself (the stateful phase's pools, datasets, shares, VMs) stays fair game."""
    if not _FIXTURE or not case.path_parameters:
        return
    key = (case.method.upper(), case.path)
    params = case.path_parameters
    names = _FIXTURE_REMOVERS.get(key)
    if names and all(str(params.get(n)) == _FIXTURE for n in names):
        params[names[-1]] = _DECOY
    else:
        names = _FIXTURE_RENAMERS.get(key)
        if not (names and all(str(params.get(n)) == _FIXTURE for n in names)):
            return
        if not (isinstance(case.body, dict) and "name" in case.body):
            return
        del case.body["name"]
    op = f"{case.method.upper()} {case.path}"
    _protected[op] = _protected.get(op, 0) + 1


# `TemplateFromUrl.url`'s pattern in crates/types/src/vms.rs (kept in sync by hand).
_URL_PATTERN = re.compile(
    r"^https?://(([A-Za-z0-9-]+\.)*[A-Za-z]+|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|"
    r"6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$"
)


def _local_template_url(case):
    """`POST /vms/templates {name, url}` makes the daemon download the URL: a fuzzed URL names
    any host on the internet. A URL the schema accepts is replaced by the box served on
    loopback for the run (a valid URL stays valid, so the checks are unchanged); an invalid one
    is sent as generated, as the daemon refuses it before any download."""
    # `POST /provisioning/artifacts {name, url}` downloads too (its URL has no pattern: any
    # http(s) URL the daemon can parse is pointed at loopback, which the run does not allow).
    paths = ("/api/v1/vms/templates", "/api/v1/provisioning/artifacts")
    if not _BOX_URL or case.method.upper() != "POST" or case.path not in paths:
        return
    if not isinstance(case.body, dict):
        return
    url = case.body.get("url")
    if case.path == paths[1] and isinstance(url, str) and re.match(r"(?i)\s*https?:", url):
        case.body["url"] = _BOX_URL
        _rewritten[0] += 1
    elif isinstance(url, str) and len(url) <= 2048 and _URL_PATTERN.fullmatch(url):
        case.body["url"] = _BOX_URL
        _rewritten[0] += 1


_rewritten = [0]
# Jobs of these areas make what the stateful phase's next step looks for (a pool, a template,
# a VM snapshot): wait for them, so a link followed from a 202 finds the resource.
_WAIT_PREFIXES = ("/api/v1/pools", "/api/v1/vms", "/api/v1/disks")
_session = requests.Session()
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def _wait_for_job(case, response):
    if response.status_code != 202 or not _BASE or not case.path.startswith(_WAIT_PREFIXES):
        return
    location = response.headers.get("location") or response.headers.get("Location")
    if isinstance(location, list):
        location = location[0] if location else None
    if not location or not location.startswith("/api/v1/jobs/"):
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            r = _session.get(
                f"{_BASE}{location}/wait",
                params={"timeout": 5},
                headers={"Authorization": f"Bearer {_TOKEN}"},
                timeout=10,
                # Per request: a CA bundle from the environment (REQUESTS_CA_BUNDLE) would
                # override the session's setting.
                verify=False,
            )
            if r.status_code != 200 or r.json().get("status") not in ("queued", "running"):
                _waited[0] += 1
                return
        except (requests.RequestException, ValueError) as e:
            print(f"schemathesis hooks: waiting for {location}: {e}", file=sys.stderr)
            return


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
_waited = [0]


@atexit.register
def _report():
    for op, n in sorted(_protected.items()):
        print(f"schemathesis hooks: kept the run's credential or fixtures out of {op} {n} time(s)", file=sys.stderr)
    print(f"schemathesis hooks: waited for {_waited[0]} job(s); {_rewritten[0]} template URL(s) pointed at loopback", file=sys.stderr)

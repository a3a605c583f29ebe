"""Uses the client openapi-python-client generated from the served document against a running
daemon (scripts/openapi-tools runs it): every call goes through the generated package, which
parses the answers into its models (a field or status the document gets wrong fails here).

Env: HOSTPLANE_BASE (https://127.0.0.1:PORT), HOSTPLANE_TOKEN (the bootstrap admin token),
HOSTPLANE_LOOP (a loop device in the daemon's disks.allow, or empty: then the shares part
checks that both creates answer 404 for a missing pool instead of making real shares).
"""

import os
import sys

from hostplane_client import AuthenticatedClient, Client
from hostplane_client.api.admin import admin_health_get, admin_version_get
from hostplane_client.api.auth import auth_login, auth_whoami_get
from hostplane_client.api.disks import disks_get, disks_list
from hostplane_client.api.jobs import jobs_wait
from hostplane_client.api.pools import pools_create, pools_datasets_create, pools_destroy
from hostplane_client.api.shares import (
    shares_nfs_create,
    shares_nfs_delete,
    shares_nfs_get,
    shares_smb_create,
    shares_smb_delete,
    shares_smb_get,
)
from hostplane_client.api.system import system_health_get, system_version_get
from hostplane_client.api.tokens import tokens_create, tokens_get, tokens_revoke
from hostplane_client.api.users import users_create
from hostplane_client.models import (
    CreateDatasetRequest,
    CreateNfsShareRequest,
    CreatePoolRequest,
    CreateSmbShareRequest,
    CreateTokenRequest,
    CreateUserRequest,
    LoginRequest,
    Problem,
)

base = os.environ["HOSTPLANE_BASE"]
loop = os.environ.get("HOSTPLANE_LOOP", "")
steps = []


def ok(name, resp, status, model=None):
    """The answer has the expected status and parsed into the expected model."""
    if resp.status_code != status:
        sys.exit(f"{name}: HTTP {resp.status_code}, expected {status}: {resp.content[:500]!r}")
    if model is not None and not isinstance(resp.parsed, model):
        sys.exit(f"{name}: parsed as {type(resp.parsed).__name__}, expected {model.__name__}")
    steps.append(name)
    return resp.parsed


admin = AuthenticatedClient(base_url=base, token=os.environ["HOSTPLANE_TOKEN"], verify_ssl=False)

# A user with a password, then a session by login (the generated client's plain Client).
ok("users_create", users_create.sync_detailed(client=admin, body=CreateUserRequest.from_dict(
    {"name": "gen", "role": "admin", "password": "generated-client-pw"})), 201)
anon = Client(base_url=base, verify_ssl=False)
login = ok("auth_login", auth_login.sync_detailed(client=anon, body=LoginRequest(
    username="gen", password="generated-client-pw")), 200)
session = AuthenticatedClient(base_url=base, token=login.token, verify_ssl=False)
me = ok("auth_whoami_get", auth_whoami_get.sync_detailed(client=session), 200)
assert me.user == "gen", me

# Disks: the list, then one of them (`get_disk` was also the VM disk's operationId).
disks = ok("disks_list", disks_list.sync_detailed(client=session), 200, list)
if disks:
    disk = ok("disks_get", disks_get.sync_detailed(disks[0].id, client=session), 200)
    assert disk.id == disks[0].id, disk

# Native and Jidoteki routes that shared `get_version` and `health`.
ok("system_version_get", system_version_get.sync_detailed(client=session), 200)
ok("admin_version_get", admin_version_get.sync_detailed(client=session), 200)
ok("system_health_get", system_health_get.sync_detailed(client=session), 200)
ok("admin_health_get", admin_health_get.sync_detailed(client=session), 200)

# Tokens: create, read, revoke.
created = ok("tokens_create", tokens_create.sync_detailed(client=session, body=CreateTokenRequest.from_dict(
    {"name": "generated-client", "expires_in": 600})), 201)
ok("tokens_get", tokens_get.sync_detailed(created.token.id, client=session), 200)
ok("tokens_revoke", tokens_revoke.sync_detailed(created.token.id, client=session), 204)
ok("tokens_get (revoked)", tokens_get.sync_detailed(created.token.id, client=session), 404, Problem)

# Shares: an SMB share and an NFS export of one dataset (`create`, `get_one` and `delete` were
# shared by both before).
smb = CreateSmbShareRequest.from_dict({"name": "gen", "pool": "gen", "dataset": "gen"})
nfs = CreateNfsShareRequest.from_dict(
    {"name": "gen", "pool": "gen", "dataset": "gen", "clients": [{"host": "127.0.0.1"}]})
if loop:
    job = ok("pools_create", pools_create.sync_detailed(client=session, body=CreatePoolRequest.from_dict(
        {"name": "gen", "kind": "btrfs", "devices": [loop]})), 202)
    for _ in range(30):
        job = ok("jobs_wait", jobs_wait.sync_detailed(job.id, client=session, timeout=10), 200)
        if job.status.value not in ("queued", "running"):
            break
    assert job.status.value == "success", job
    ok("pools_datasets_create", pools_datasets_create.sync_detailed(
        "gen", client=session, body=CreateDatasetRequest.from_dict({"name": "gen"})), 201)
    ok("shares_smb_create", shares_smb_create.sync_detailed(client=session, body=smb), 201)
    ok("shares_nfs_create", shares_nfs_create.sync_detailed(client=session, body=nfs), 201)
    assert ok("shares_smb_get", shares_smb_get.sync_detailed("gen", client=session), 200).name == "gen"
    assert ok("shares_nfs_get", shares_nfs_get.sync_detailed("gen", client=session), 200).name == "gen"
    ok("shares_smb_delete", shares_smb_delete.sync_detailed("gen", client=session), 204)
    ok("shares_nfs_delete", shares_nfs_delete.sync_detailed("gen", client=session), 204)
    ok("shares_smb_get (deleted)", shares_smb_get.sync_detailed("gen", client=session), 404, Problem)
    ok("shares_nfs_get (deleted)", shares_nfs_get.sync_detailed("gen", client=session), 404, Problem)
    job = ok("pools_destroy", pools_destroy.sync_detailed("gen", client=session, confirm="gen"), 202)
    for _ in range(30):
        job = ok("jobs_wait", jobs_wait.sync_detailed(job.id, client=session, timeout=10), 200)
        if job.status.value not in ("queued", "running"):
            break
    assert job.status.value == "success", job
else:
    ok("shares_smb_create (no pool)", shares_smb_create.sync_detailed(client=session, body=smb), 404, Problem)
    ok("shares_nfs_create (no pool)", shares_nfs_create.sync_detailed(client=session, body=nfs), 404, Problem)
    ok("shares_smb_delete (none)", shares_smb_delete.sync_detailed("gen", client=session), 404, Problem)
    ok("shares_nfs_delete (none)", shares_nfs_delete.sync_detailed("gen", client=session), 404, Problem)

print(f"generated client: {len(steps)} calls as documented: {', '.join(dict.fromkeys(steps))}")

"""Authentication, tenancy (open and configured) and the role table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import Harness, chat_line, error_envelope, key

from emulator.errors import ConfigError
from emulator.tenancy import ROLES, load_tenancy, open_tenant_id

MODELS = "/v1/models"
CHAT = "/v1/inference/chat"
BATCH = "/v1/inference/batch"
CHAT_BODY = {
    "model": "scailabs/poolnoodle-omni",
    "messages": [{"role": "user", "content": "Hello"}],
    "max_tokens": 20,
}

MakeEmu = Callable[..., Awaitable[Harness]]


# --- the Authorization header -------------------------------------------------------------------


async def test_missing_header_is_token_missing(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        resp = await anon.get(MODELS)
    error_envelope(resp, 401, "AUTH_TOKEN_MISSING")


@pytest.mark.parametrize("header", ["Basic x", "Bearer ", "Bearer", "bearer", "Bearer    ", "x"])
async def test_header_without_a_bearer_token_is_token_missing(emu: Harness, header: str) -> None:
    async with emu.client_for(None) as anon:
        resp = await anon.get(MODELS, headers={"Authorization": header})
    error_envelope(resp, 401, "AUTH_TOKEN_MISSING")


@pytest.mark.parametrize(
    "token",
    [
        "abc_" + "k" * 40,  # no sgk_ prefix
        "sgk_short",  # too short
        "sgk_" + "k" * 31,  # one character short of 32
        "sgk_" + "k" * 31 + "!",  # a character outside the key alphabet
        "SGK_" + "k" * 32,  # the prefix is case-sensitive
    ],
)
async def test_malformed_key_is_token_invalid(emu: Harness, token: str) -> None:
    async with emu.client_for(token) as client:
        resp = await client.get(MODELS)
    error_envelope(resp, 401, "AUTH_TOKEN_INVALID")


async def test_scheme_is_case_insensitive_and_key_of_exactly_32_chars_is_accepted(
    emu: Harness,
) -> None:
    async with emu.client_for(None) as anon:
        resp = await anon.get(MODELS, headers={"Authorization": "bearer sgk_" + "k" * 32})
    assert resp.status_code == 200, resp.text


# --- open mode ----------------------------------------------------------------------------------


async def test_open_mode_two_keys_are_two_tenants_for_batches(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a")])
    async with emu.client_for(key("other")) as other:
        resp = await other.get(f"{BATCH}/{batch['id']}")
        error_envelope(resp, 404, "BATCH_NOT_FOUND")
        resp = await other.post(f"{BATCH}/{batch['id']}/cancel")
        error_envelope(resp, 404, "BATCH_NOT_FOUND")
        listed = (await other.get(BATCH)).json()
    assert listed["data"]["items"] == []
    # ... and the owner still sees it.
    assert (await emu.batch(batch["id"]))["id"] == batch["id"]


async def test_open_mode_two_keys_are_two_tenants_for_files(emu: Harness) -> None:
    resp = await emu.client.post("/v1/files", files={"file": ("in.jsonl", b'{"x": 1}\n')})
    assert resp.status_code == 200, resp.text
    file_id = resp.json()["data"]["id"]
    async with emu.client_for(key("other")) as other:
        for method, path in [
            ("GET", f"/v1/files/{file_id}"),
            ("GET", f"/v1/files/{file_id}/content"),
            ("DELETE", f"/v1/files/{file_id}"),
        ]:
            error_envelope(await other.request(method, path), 404, "FILE_NOT_FOUND")
        assert (await other.get("/v1/files")).json()["data"]["items"] == []
    assert (await emu.client.get(f"/v1/files/{file_id}")).status_code == 200


async def test_open_tenant_id_is_stable_and_distinct() -> None:
    a, b = key("alice"), key("bob")
    assert open_tenant_id(a) == open_tenant_id(a)
    assert open_tenant_id(a) != open_tenant_id(b)
    assert open_tenant_id(a).startswith("tenant_")
    # Stable across emulator instances: a fresh tenancy maps the key to the same tenant.
    assert load_tenancy(None).authenticate(f"Bearer {a}").tenant_id == open_tenant_id(a)
    assert load_tenancy(None).authenticate(f"Bearer {a}").tenant_id == open_tenant_id(a)


async def test_open_mode_key_is_tenant_admin(emu: Harness) -> None:
    principal = emu.core.tenancy.authenticate(f"Bearer {key('x')}")
    assert principal.role == "tenant_admin"
    assert principal.tenant_id == open_tenant_id(key("x"))


# --- configured mode ----------------------------------------------------------------------------

VIEWER = "sgk_viewer_" + "v" * 32
USER = "sgk_user_" + "u" * 32
USER2 = "sgk_user2_" + "w" * 32
ADMIN = "sgk_admin_" + "a" * 32
OTHER = "sgk_other_" + "o" * 32


def tenants_yaml(tmp_path: Path, text: str, name: str = "tenants.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD_TENANTS = f"""
tenants:
  - id: tenant_acme
    display_name: Acme Corp
    keys:
      - key: {VIEWER}
        role: tenant_viewer
      - key: {USER}
        role: tenant_user
      - key: {USER2}
      - key: {ADMIN}
        role: tenant_admin
  - id: tenant_other
    keys:
      - key: {OTHER}
        role: tenant_admin
"""


@pytest.fixture
async def configured(tmp_path: Path, make_emu: MakeEmu) -> Harness:
    return await make_emu(tenants=tenants_yaml(tmp_path, GOOD_TENANTS))


async def test_configured_mode_rejects_unknown_well_formed_key(configured: Harness) -> None:
    assert configured.core.tenancy.mode == "configured"
    async with configured.client_for(key("stranger")) as client:
        error_envelope(await client.get(MODELS), 401, "AUTH_TOKEN_INVALID")
    async with configured.client_for(None) as anon:
        error_envelope(await anon.get(MODELS), 401, "AUTH_TOKEN_MISSING")


async def test_viewer_lists_models_but_cannot_infer_or_batch(configured: Harness) -> None:
    async with configured.client_for(VIEWER) as viewer:
        resp = await viewer.get(MODELS)
        assert resp.status_code == 200, resp.text
        resp = await viewer.get("/v1/models/openai%2Fgpt-4o")
        assert resp.status_code == 200, resp.text
        error_envelope(await viewer.post(CHAT, json=CHAT_BODY), 403, "AUTHZ_PERMISSION_DENIED")
        error_envelope(await viewer.post(BATCH, json={}), 403, "AUTHZ_PERMISSION_DENIED")
        error_envelope(await viewer.get(BATCH), 403, "AUTHZ_PERMISSION_DENIED")


async def test_permission_is_checked_before_the_body(configured: Harness) -> None:
    """A viewer sending garbage gets 403, not a 422 that would leak what the route expects."""
    async with configured.client_for(VIEWER) as viewer:
        resp = await viewer.post(CHAT, content=b"{not json")
    error_envelope(resp, 403, "AUTHZ_PERMISSION_DENIED")


async def test_user_can_chat(configured: Harness) -> None:
    async with configured.client_for(USER) as user:
        resp = await user.post(CHAT, json=CHAT_BODY)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["choices"][0]["message"]["content"]


async def test_keys_of_one_configured_tenant_share_data(configured: Harness) -> None:
    async with configured.client_for(USER) as user, configured.client_for(USER2) as user2:
        batch = await configured.submit([chat_line("a")], client=user)
        seen = await configured.batch(batch["id"], client=user2)
        assert seen["id"] == batch["id"]
        listed = (await user2.get(BATCH)).json()["data"]["items"]
        assert [b["id"] for b in listed] == [batch["id"]]
    async with configured.client_for(OTHER) as other:
        error_envelope(await other.get(f"{BATCH}/{batch['id']}"), 404, "BATCH_NOT_FOUND")


async def test_configured_principals(configured: Harness) -> None:
    tenancy = configured.core.tenancy
    viewer = tenancy.authenticate(f"Bearer {VIEWER}")
    user2 = tenancy.authenticate(f"Bearer {USER2}")
    assert (viewer.tenant_id, viewer.role) == ("tenant_acme", "tenant_viewer")
    assert (user2.tenant_id, user2.role) == ("tenant_acme", "tenant_user")  # the default role
    assert viewer.key_id != user2.key_id
    assert tenancy.tenants() == ["tenant_acme", "tenant_other"]


# --- bad tenants files --------------------------------------------------------------------------

GOOD_KEY = "sgk_" + "g" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tenants:\n  - keys: []\n", "tenants[0]: needs a string 'id'"),
        (
            f"tenants:\n  - id: t\n    keys:\n      - key: {GOOD_KEY}\n        role: boss\n",
            "tenants[0].keys[0]: role must be one of",
        ),
        (
            f"tenants:\n  - id: t\n    keys:\n      - key: {GOOD_KEY}\n        role: [x]\n",
            "tenants[0].keys[0]: role must be one of",
        ),
        (
            "tenants:\n  - id: t\n    keys:\n      - key: sgk_short\n",
            "tenants[0].keys[0]: key must be 'sgk_' followed by at least 32 characters",
        ),
        (
            f"tenants:\n  - id: a\n    keys:\n      - key: {GOOD_KEY}\n"
            f"  - id: b\n    keys:\n      - key: {GOOD_KEY}\n",
            "tenants[1].keys[0]: key sgk_gggg... is listed twice",
        ),
        ("tenants:\n  - id: t\n    colour: red\n", "tenants[0]: unknown field(s): colour"),
        (
            f"tenants:\n  - id: t\n    keys:\n      - key: {GOOD_KEY}\n        rol: x\n",
            "tenants[0].keys[0]: unknown field(s): rol",
        ),
        ("tenants:\n  - id: t\n    keys: 5\n", "tenants[0]: 'keys' must be a list"),
        ("tenants:\n  - id: t\n    keys:\n      - sgk_x\n", "tenants[0].keys[0]: needs a string"),
        ("tenants: [a, b\n", "not valid YAML"),
        ("tenants:\n  - id: t\n\tkeys: []\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping with a 'tenants' list"),
        ("", "expected a mapping with a 'tenants' list"),
    ],
    ids=[
        "missing-id",
        "bad-role",
        "unhashable-role",
        "short-key",
        "duplicate-key",
        "unknown-tenant-field",
        "unknown-key-field",
        "keys-not-a-list",
        "key-entry-not-a-mapping",
        "not-yaml",
        "tab-indent",
        "list-document",
        "empty",
    ],
)
def test_bad_tenants_file_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tenants_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_tenancy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_not_yaml_message_gives_line_and_column(tmp_path: Path) -> None:
    path = tenants_yaml(tmp_path, "tenants:\n  - id: t\n    keys: [a, b\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_tenancy(path)


def test_missing_tenants_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"{path}: cannot read tenants file"):
        load_tenancy(path)


async def test_bad_tenants_file_stops_emulator_construction(
    tmp_path: Path, make_emu: MakeEmu
) -> None:
    path = tenants_yaml(tmp_path, "tenants:\n  - keys: []\n")
    with pytest.raises(ConfigError, match="needs a string 'id'"):
        await make_emu(tenants=path)


# --- the role table -----------------------------------------------------------------------------

_VIEWER = {"models:list", "accounting:view_own"}
_USER = _VIEWER | {"models:use", "api_keys:manage", "modules:use"}
_ADMIN = _USER | {
    "routing:view",
    "accounting:view_tenant",
    "accounting:manage_budgets",
    "users:manage",
    "webhooks:manage",
    "modules:manage",
    "admin:access",
}
_PARTNER_VIEWER = {
    "models:list",
    "accounting:view_own",
    "accounting:view_tenant",
    "accounting:view_partner",
}
#: The reference's core permission set (15).
ALL = {
    "models:list",
    "models:use",
    "models:manage",
    "routing:view",
    "routing:manage",
    "accounting:view_own",
    "accounting:view_tenant",
    "accounting:view_partner",
    "accounting:manage_budgets",
    "users:manage",
    "api_keys:manage",
    "webhooks:manage",
    "modules:use",
    "modules:manage",
    "admin:access",
}
REFERENCE_ROLES = {
    "tenant_viewer": _VIEWER,
    "tenant_user": _USER,
    "tenant_admin": _ADMIN,
    "partner_viewer": _PARTNER_VIEWER,
    "partner_admin": _PARTNER_VIEWER
    | {"accounting:manage_budgets", "users:manage", "admin:access"},
    "super_admin": ALL,
}


def test_role_names_are_the_reference_roles() -> None:
    assert set(ROLES) == set(REFERENCE_ROLES)
    assert len(ALL) == 15


@pytest.mark.parametrize(("role", "permissions"), sorted(REFERENCE_ROLES.items()))
def test_role_bundle_matches_reference(role: str, permissions: set[str]) -> None:
    assert set(ROLES[role]) == permissions
    assert set(ROLES[role]) <= ALL

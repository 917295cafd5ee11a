"""Who is calling: API keys, tenants, roles and permissions.

Two modes. **open** (default): any well-formed `sgk_` key is accepted and is its own tenant, with a
stable tenant id derived from the key and role `tenant_admin`, so two tests with two keys never see
each other's data. **configured**: tenants, keys and roles come from a YAML file (`--tenants`);
unknown keys are refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.errors import (
    AuthTokenInvalid,
    AuthTokenMissing,
    ConfigError,
    PermissionDenied,
    ValidationError,
)
from emulator.yamlfile import read_yaml

#: ScaiGrid's keys are `sgk_` followed by at least 32 random characters.
KEY_PATTERN = re.compile(r"sgk_[A-Za-z0-9_\-]{32,200}")

_VIEWER = frozenset({"models:list", "accounting:view_own"})
_USER = _VIEWER | {"models:use", "api_keys:manage", "modules:use"}
_ADMIN = _USER | {
    "routing:view", "accounting:view_tenant", "accounting:manage_budgets", "users:manage",
    "webhooks:manage", "modules:manage", "admin:access",
}  # fmt: skip
_PARTNER_VIEWER = frozenset(
    {"models:list", "accounting:view_own", "accounting:view_tenant", "accounting:view_partner"}
)
ALL_PERMISSIONS = _ADMIN | _PARTNER_VIEWER | {"models:manage", "routing:manage"}

#: ScaiGrid's built-in role bundles.
ROLES: dict[str, frozenset[str]] = {
    "tenant_viewer": _VIEWER,
    "tenant_user": frozenset(_USER),
    "tenant_admin": frozenset(_ADMIN),
    "partner_viewer": _PARTNER_VIEWER,
    "partner_admin": _PARTNER_VIEWER
    | {"accounting:manage_budgets", "users:manage", "admin:access"},
    "super_admin": frozenset(ALL_PERMISSIONS),
}

OPEN_PARTNER = "partner_emulator"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind one API key."""

    tenant_id: str
    partner_id: str
    role: str
    user_id: str
    key_id: str

    def require(self, permission: str) -> None:
        if permission not in ROLES[self.role]:
            raise PermissionDenied(f"Role '{self.role}' lacks the '{permission}' permission.")


def open_tenant_id(key: str) -> str:
    """The stable tenant id open mode gives a key."""
    return "tenant_" + hashlib.sha256(key.encode()).hexdigest()[:16]


class Tenancy:
    """Resolves `Authorization` headers to principals."""

    def __init__(self, configured: dict[str, Principal] | None = None) -> None:
        self.mode = "open" if configured is None else "configured"
        self._keys: dict[str, Principal] = dict(configured or {})

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthTokenMissing()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthTokenMissing("Authorization header must be 'Bearer sgk_...'.")
        found = self._keys.get(token)
        if found is not None:
            return found
        if self.mode == "configured" or not KEY_PATTERN.fullmatch(token):
            raise AuthTokenInvalid()
        return self._admit(token)

    def _admit(self, key: str) -> Principal:
        # Open mode remembers keys it has seen so the hot path is one dict lookup; the cap keeps a
        # key-per-request client from growing memory without bound.
        if len(self._keys) > 100_000:
            self._keys.clear()
        tenant = open_tenant_id(key)
        principal = Principal(tenant, OPEN_PARTNER, "tenant_admin", "user_" + tenant[7:], tenant)
        self._keys[key] = principal
        return principal

    def partner_of(self, tenant_id: str) -> str:
        """The partner a tenant belongs to (in open mode, the emulator's one partner)."""
        if self.mode == "configured":
            for principal in self._keys.values():
                if principal.tenant_id == tenant_id:
                    return principal.partner_id
        return OPEN_PARTNER

    def tenants(self) -> list[str]:
        return sorted({p.tenant_id for p in self._keys.values()})

    def principal_of(self, key: str, field: str = "api_key") -> Principal:
        """The principal behind an API key the control plane names (in a body or a path); a
        malformed key, or one configured tenancy does not know, is a 422 naming `field`."""
        if not KEY_PATTERN.fullmatch(key):
            message = "is not a well-formed key ('sgk_' followed by at least 32 characters)"
        elif key in self._keys or self.mode == "open":
            return self.authenticate(f"Bearer {key}")
        else:
            message = "is not a key of any configured tenant"
        raise ValidationError(
            f"Invalid {field}: {key[:8]}... {message}.",
            details=[{"field": field, "message": message}],
        )

    def resolve(self, key_or_id: str) -> tuple[str, Principal | None]:
        """The tenant a control path names: an API key (`sgk_...`) is resolved to its tenant,
        anything else is a tenant id. Answers the tenant id and, for a key, its principal."""
        if key_or_id.startswith("sgk_"):
            principal = self.principal_of(key_or_id, "tenant")
            return principal.tenant_id, principal
        return key_or_id, None


def load_tenancy(path: Path | None) -> Tenancy:
    """Open tenancy without a file; configured tenancy from the YAML file otherwise."""
    if path is None:
        return Tenancy()
    doc = read_yaml(path, "tenants file")
    if not isinstance(doc, dict) or not isinstance(doc.get("tenants"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'tenants' list")
    keys: dict[str, Principal] = {}
    for i, tenant in enumerate(doc["tenants"]):
        for j, (key, principal) in enumerate(_tenant_keys(f"{path}: tenants[{i}]", tenant)):
            if key in keys:
                raise ConfigError(
                    f"{path}: tenants[{i}].keys[{j}]: key {key[:8]}... is listed twice"
                )
            keys[key] = principal
    return Tenancy(keys)


def _tenant_keys(where: str, tenant: Any) -> list[tuple[str, Principal]]:
    if not isinstance(tenant, dict) or not isinstance(tenant.get("id"), str):
        raise ConfigError(f"{where}: needs a string 'id'")
    unknown = set(tenant) - {"id", "partner_id", "keys", "display_name", "slug"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(sorted(unknown))}")
    partner = str(tenant.get("partner_id", OPEN_PARTNER))
    entries = tenant.get("keys") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: 'keys' must be a list")
    out = []
    for j, entry in enumerate(entries):
        at = f"{where}.keys[{j}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ConfigError(f"{at}: needs a string 'key'")
        unknown_key_fields = set(entry) - {"key", "role", "user_id"}
        if unknown_key_fields:
            raise ConfigError(f"{at}: unknown field(s): {', '.join(sorted(unknown_key_fields))}")
        if not KEY_PATTERN.fullmatch(entry["key"]):
            raise ConfigError(f"{at}: key must be 'sgk_' followed by at least 32 characters")
        role = entry.get("role", "tenant_user")
        if not isinstance(role, str) or role not in ROLES:
            raise ConfigError(f"{at}: role must be one of {', '.join(ROLES)}")
        user = str(entry.get("user_id", f"user_{tenant['id']}_{j}"))
        key_id = "apikey_" + hashlib.sha256(entry["key"].encode()).hexdigest()[:12]
        out.append((entry["key"], Principal(tenant["id"], partner, role, user, key_id)))
    return out

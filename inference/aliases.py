"""Aliases of a model's versions: ``champion`` (what the pipeline runs and MES sees) and ``challenger``
(scored in shadow beside it), per scope: ``all`` (every equipment) or an asset path (a line or one
equipment: every asset at or under that path).

The registry's ``<name>/state.json`` (schema 2)::

    {"schema": 2,
     "aliases": {"all": {"champion": "2", "challenger": "3"}, "acme/plant1/line1": {"champion": "4"}},
     "history": {"all": ["1", "2"]},          # champions per scope, oldest first (rollback pops)
     "validations": {"2": {...}}, "gates": {"3": {...}}}

A schema-1 state (``{"current": v, "history": [...], "validations": {...}}``, before aliases) is read as the
champion of scope ``all`` with that history; it is written back in schema 2 at the next change.
"""

from __future__ import annotations

from typing import Any, Literal

SCOPE_ALL = "all"
ROLES: tuple[str, ...] = ("champion", "challenger")
Role = Literal["champion", "challenger"]


def empty_state() -> dict[str, Any]:
    return {"schema": 2, "aliases": {}, "history": {}, "validations": {}, "gates": {}}


def migrate_state(raw: dict[str, Any]) -> dict[str, Any]:
    """The state in schema 2, whatever schema it was stored in."""
    if raw.get("schema") == 2:
        out = empty_state()
        out.update(raw)
        return out
    out = empty_state()
    out["validations"] = dict(raw.get("validations") or {})
    current = raw.get("current")
    history = [str(v) for v in raw.get("history") or []]
    if current is not None:
        out["aliases"][SCOPE_ALL] = {"champion": str(current)}
        if not history or history[-1] != str(current):
            history.append(str(current))
    if history:
        out["history"][SCOPE_ALL] = history
    return out


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def check_scope(scope: str) -> str:
    s = scope.strip().strip("/")
    if not s:
        raise ValueError("scope is empty: give 'all' or an asset path (a line or an equipment)")
    return s


def alias(state: dict[str, Any], scope: str, role: str) -> str | None:
    v = state["aliases"].get(scope, {}).get(role)
    return None if v is None else str(v)


def set_alias(state: dict[str, Any], scope: str, role: str, version: str | None) -> str | None:
    """Point ``role`` of ``scope`` at ``version`` (None: clear it); returns what it pointed at before."""
    roles = state["aliases"].setdefault(scope, {})
    previous = roles.get(role)
    if version is None:
        roles.pop(role, None)
    else:
        roles[role] = str(version)
    if not roles:
        state["aliases"].pop(scope, None)
    return None if previous is None else str(previous)


def in_scope(scope: str, asset: str) -> bool:
    return scope == SCOPE_ALL or asset == scope or asset.startswith(scope + "/")


def specificity(scope: str) -> int:
    """How narrow a scope is: ``all`` 0, an asset path its number of levels."""
    return 0 if scope == SCOPE_ALL else scope.count("/") + 1


def narrower_scopes(scopes: list[str], scope: str) -> tuple[str, ...]:
    """The scopes among ``scopes`` inside ``scope`` (not itself): there a narrower alias decides."""
    return tuple(sorted(s for s in scopes if s != scope and s != SCOPE_ALL and in_scope(scope, s)))


def deployments(state: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every (scope, role, version) set, narrowest scope first."""
    out = [(scope, role, str(v)) for scope, roles in state["aliases"].items() for role, v in roles.items()]
    return sorted(out, key=lambda t: (-specificity(t[0]), t[0], ROLES.index(t[1])))

"""Naming nodes without bare namespace indexes, and resolving names at every (re)connect.

Accepted forms:

* ``nsu=URI;s=ID`` (also ``i=``, ``g=``, ``b=``): expanded node id; the index of URI is looked up in the
  server's namespace array each time the client connects, since it may change when a server restarts.
* ``i=2258`` / ``s=...`` with no ``nsu``: allowed for namespace 0 only (the OPC-UA standard nodes).
* A browse path from the Objects folder, elements separated by ``/``: ``/Objects/acme/plant1/line1/press1/
  vibration``; prefix ``nsu=URI;`` to require the target (and every element) to be in that namespace:
  ``nsu=urn:factory-edge:sim;/Objects/acme/plant1/area1/line1/press1/vibration``.

``ns=N;...`` is refused: a bare index is not a name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.client.client import Client


class NodeNameError(ValueError):
    pass


@dataclass(frozen=True)
class NodeName:
    uri: str | None  # namespace URI; None = namespace 0
    kind: str  # "i", "s", "g", "b" or "path"
    ident: str  # identifier, or the path for kind "path"

    def __str__(self) -> str:
        prefix = f"nsu={self.uri};" if self.uri is not None else ""
        return f"{prefix}{self.ident}" if self.kind == "path" else f"{prefix}{self.kind}={self.ident}"


def parse_node_name(text: str) -> NodeName:
    s = text.strip()
    uri: str | None = None
    if s.startswith("ns="):
        raise NodeNameError(f"{text!r}: a bare namespace index can change when the server restarts; "
                            "name the node by namespace URI (nsu=URI;s=ID) or by browse path")
    if s.startswith("nsu="):
        uri, sep, s = s[4:].partition(";")
        if not sep or not uri:
            raise NodeNameError(f"{text!r}: expected nsu=URI;s=ID (or i=, g=, b=, or a /browse/path)")
    if s.startswith("/"):
        parts = [p for p in s.split("/") if p]
        if not parts:
            raise NodeNameError(f"{text!r}: empty browse path")
        return NodeName(uri, "path", "/" + "/".join(parts))
    kind, sep, ident = s.partition("=")
    if not sep or kind not in ("i", "s", "g", "b") or not ident:
        raise NodeNameError(f"{text!r}: expected nsu=URI;s=ID (or i=, g=, b=, or a /browse/path)")
    if kind == "i" and not ident.isdigit():
        raise NodeNameError(f"{text!r}: numeric identifier expected after i=")
    return NodeName(uri, kind, ident)


def _nid(ident: Any, ns: Any = 0, kind: Any = None) -> ua.NodeId:
    return ua.NodeId(ident, ns, kind) if kind is not None else ua.NodeId(ident, ns)


OBJECTS_FOLDER = 85
ROOT_FOLDER = 84


def to_nodeid(name: NodeName, ns_index: int) -> ua.NodeId:
    if name.kind == "i":
        return _nid(int(name.ident), ns_index)
    if name.kind == "s":
        return _nid(name.ident, ns_index)
    if name.kind == "g":
        return _nid(uuid.UUID(name.ident), ns_index)
    if name.kind == "b":
        import base64

        return _nid(base64.b64decode(name.ident), ns_index, ua.NodeIdType.ByteString)
    raise NodeNameError(f"{name}: not an id")


def format_nodeid(nodeid: ua.NodeId, namespaces: list[str]) -> str:
    """``nsu=URI;s=ID`` for a node id (plain ``i=85`` in namespace 0)."""
    ident: Any = nodeid.Identifier
    t = nodeid.NodeIdType
    if t in (ua.NodeIdType.Numeric, ua.NodeIdType.TwoByte, ua.NodeIdType.FourByte):
        body = f"i={ident}"
    elif t == ua.NodeIdType.String:
        body = f"s={ident}"
    elif t == ua.NodeIdType.Guid:
        body = f"g={ident}"
    else:
        import base64

        body = f"b={base64.b64encode(ident).decode()}"
    ns = nodeid.NamespaceIndex
    if ns == 0:
        return body
    uri = namespaces[ns] if ns < len(namespaces) else f"urn:unknown:ns{ns}"
    return f"nsu={uri};{body}"


class Resolver:
    """Resolves node names against one connected session (namespace array read once per connect)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.namespaces: list[str] = []
        self._children: dict[ua.NodeId, dict[str, list[ua.NodeId]]] = {}

    async def refresh(self) -> None:
        self.namespaces = list(await self.client.get_namespace_array())
        self._children.clear()

    def ns_index(self, uri: str | None) -> int:
        if uri is None:
            return 0
        try:
            return self.namespaces.index(uri)
        except ValueError:
            raise NodeNameError(f"namespace {uri!r} is not on this server "
                                f"(it has: {', '.join(self.namespaces)})") from None

    async def resolve(self, name: NodeName) -> ua.NodeId:
        idx = self.ns_index(name.uri)
        if name.kind != "path":
            return to_nodeid(name, idx)
        parts = name.ident.strip("/").split("/")
        if parts[0] in ("Objects", "Root"):
            node = _nid(OBJECTS_FOLDER if parts[0] == "Objects" else ROOT_FOLDER)
            parts = parts[1:]
        else:
            node = _nid(OBJECTS_FOLDER)
        walked = ""
        for part in parts:
            walked += "/" + part
            children = await self._browse(node)
            found = children.get(part, [])
            if name.uri is not None:
                found = [n for n in found if n.NamespaceIndex == idx]
            if not found:
                raise NodeNameError(f"{name}: nothing named {part!r} at {walked}")
            node = found[0]
        return node

    async def _browse(self, node: ua.NodeId) -> dict[str, list[ua.NodeId]]:
        cached = self._children.get(node)
        if cached is not None:
            return cached
        out: dict[str, list[ua.NodeId]] = {}
        refs = await self.client.get_node(node).get_children_descriptions()
        for ref in refs:
            out.setdefault(ref.BrowseName.Name, []).append(ref.NodeId)
        self._children[node] = out
        return out

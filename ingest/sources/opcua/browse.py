"""``edge opcua browse``: the address space as a tree, and a tag-map skeleton for firmware-config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds

from ingest.sources.opcua.nodes import OBJECTS_FOLDER, format_nodeid

SERVER_OBJECT = 2253
_ACCESS = {1: "r", 2: "w"}


@dataclass
class BrowseEntry:
    depth: int
    nodeid: str  # nsu= form
    browse_name: str
    node_class: str
    path: list[str]  # browse names from Objects down to this node
    data_type: str = ""
    access: str = ""
    unit: str = ""
    string_id: str | None = None  # the identifier when it is a string id
    children: list[BrowseEntry] = field(default_factory=list)


def _dtype_name(nodeid: Any, namespaces: list[str]) -> str:
    if nodeid is None:
        return ""
    if nodeid.NamespaceIndex == 0 and isinstance(nodeid.Identifier, int):
        return str(ua.ObjectIdNames.get(nodeid.Identifier, nodeid.Identifier))  # type: ignore[attr-defined]
    return format_nodeid(nodeid, namespaces)


def _access(level: Any) -> str:
    try:
        bits = int(level)
    except (TypeError, ValueError):
        return ""
    return "".join(c for b, c in _ACCESS.items() if bits & b) or "-"


async def browse_tree(client: Client, depth: int = 6, include_server: bool = False) -> list[BrowseEntry]:
    """Walk from Objects down ``depth`` levels; variables get data type, access level and unit."""
    namespaces = list(await client.get_namespace_array())
    out: list[BrowseEntry] = []

    async def walk(nodeid: Any, level: int, path: list[str]) -> None:
        if level > depth:
            return
        refs = await client.get_node(nodeid).get_children_descriptions()
        variables = [r for r in refs if r.NodeClass == ua.NodeClass.Variable]
        meta: dict[Any, tuple[str, str]] = {}
        if variables:
            nodes = [client.get_node(r.NodeId) for r in variables]
            dts = await client.read_attributes(nodes, AttributeIds.DataType)
            acc = await client.read_attributes(nodes, AttributeIds.AccessLevel)
            for r, dt, ac in zip(variables, dts, acc, strict=True):
                dtv = dt.Value.Value if dt.Value is not None else None
                acv = ac.Value.Value if ac.Value is not None else None
                meta[r.NodeId] = (_dtype_name(dtv, namespaces), _access(acv))
        for r in refs:
            if not include_server and r.NodeId.NamespaceIndex == 0 and r.NodeId.Identifier == SERVER_OBJECT:
                continue
            if r.BrowseName.Name == "EngineeringUnits" and r.NodeClass == ua.NodeClass.Variable:
                continue
            name = r.BrowseName.Name
            dtype, access = meta.get(r.NodeId, ("", ""))
            ident = r.NodeId.Identifier if r.NodeId.NodeIdType == ua.NodeIdType.String else None
            entry = BrowseEntry(level, format_nodeid(r.NodeId, namespaces), str(name),
                                r.NodeClass.name, [*path, str(name)], dtype, access, string_id=ident)
            if r.NodeClass == ua.NodeClass.Variable:
                entry.unit = await _unit(client, r.NodeId)
            out.append(entry)
            if r.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                await walk(r.NodeId, level + 1, entry.path)

    await walk(ua.NodeId(OBJECTS_FOLDER), 0, [])  # type: ignore[arg-type]
    return out


async def _unit(client: Client, nodeid: Any) -> str:
    try:
        for child in await client.get_node(nodeid).get_children_descriptions():
            if child.BrowseName.Name == "EngineeringUnits":
                value = await client.get_node(child.NodeId).read_value()
                if isinstance(value, str):
                    return value
                return str(getattr(getattr(value, "DisplayName", None), "Text", "") or "")
    except Exception:
        return ""
    return ""


def render_tree(entries: list[BrowseEntry]) -> str:
    lines = []
    for e in entries:
        indent = "  " * e.depth
        extra = ""
        if e.node_class == "Variable":
            extra = f"  [{e.data_type}, {e.access}{', ' + e.unit if e.unit else ''}]"
        lines.append(f"{indent}{e.browse_name}  ({e.node_class}) {e.nodeid}{extra}")
    return "\n".join(lines)


def tag_skeleton(entries: list[BrowseEntry], endpoint: str, source_name: str = "opcua1") -> str:
    """TOML: a ``[[sources.opcua]]`` with every numeric variable, and an ``[assets.tags]`` stub for each."""
    numeric = {"Double", "Float", "Int16", "Int32", "Int64", "UInt16", "UInt32", "UInt64", "Byte", "SByte",
               "Boolean"}
    variables = [e for e in entries if e.node_class == "Variable" and e.data_type in numeric]
    q = json.dumps
    out = [
        f"# Tag-map skeleton from {endpoint} (edge opcua browse --emit-tags). Check every asset and measure.",
        "",
        "[[sources.opcua]]",
        f"name = {q(source_name)}",
        f"endpoint = {q(endpoint)}",
        "",
    ]
    tags: list[tuple[str, BrowseEntry]] = []
    for e in variables:
        tag = e.string_id if e.string_id else ".".join(e.path)
        tags.append((tag, e))
        out += ["[[sources.opcua.nodes]]", f"tag = {q(tag)}", f"node = {q(e.nodeid)}", ""]
    for tag, e in tags:
        folders = e.path[:-1]
        asset = "/".join(folders[2:] if len(folders) >= 4 else folders)  # below enterprise/site
        out += [f"[assets.tags.{q(tag)}]", f"asset = {q(asset)}", f"measure = {q(e.browse_name)}"]
        if e.unit:
            out.append(f"unit = {q(e.unit)}")
        out.append("")
    return "\n".join(out)

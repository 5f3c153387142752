"""Ingest command groups: ``edge opcua browse``, ``edge certs show|trust|reject``, ``edge simulate``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_opcua(sub)
    _register_certs(sub)
    _register_simulate(sub)


# -- edge opcua ------------------------------------------------------------------------------------
def _register_opcua(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("opcua", help="OPC-UA tools: browse a server")
    osub = p.add_subparsers(dest="opcua_command", metavar="ACTION", required=True)
    b = osub.add_parser("browse", help="print a server's address space as a tree; --emit-tags writes a "
                                       "tag-map skeleton for firmware-config")
    b.add_argument("endpoint", help="opc.tcp://HOST:PORT[/path]")
    b.add_argument("--depth", type=int, default=6, help="levels below Objects (default 6)")
    b.add_argument("--emit-tags", type=Path, default=None, metavar="FILE",
                   help="write a TOML tag-map skeleton")
    b.add_argument("--source-name", default="opcua1", help="source name in the skeleton")
    b.add_argument("--include-server", action="store_true", help="also walk the standard Server object")
    _security_args(b)
    b.set_defaults(func=_browse)


def _security_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--security-mode", default="None", choices=["None", "Sign", "SignAndEncrypt"])
    p.add_argument("--security-policy", default=None,
                   choices=["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"])
    p.add_argument("--pki-dir", type=Path, default=None, help="client PKI folder (default $FE_PKI_DIR or "
                                                             "/var/lib/factory-edge/pki)")
    p.add_argument("--trust-on-first-use", action="store_true")
    p.add_argument("--username", default=None)
    p.add_argument("--password-env", default=None, metavar="VAR",
                   help="environment variable with the password")


def _browse(args: argparse.Namespace) -> int:
    from ingest.settings import OpcUaSourceSettings
    from ingest.sources.opcua.browse import browse_tree, render_tree, tag_skeleton
    from ingest.sources.opcua.certs import DEFAULT_PKI_DIR, CertificateRefused
    from ingest.sources.opcua.source import OpcUaSource

    if args.security_mode != "None" and args.security_policy is None:
        args.security_policy = "Basic256Sha256"
    cfg: dict[str, Any] = {
        "name": "browse", "endpoint": args.endpoint, "security_mode": args.security_mode,
        "security_policy": args.security_policy or "None", "pki_dir": args.pki_dir or DEFAULT_PKI_DIR,
        "trust_on_first_use": args.trust_on_first_use, "username": args.username,
    }
    if args.password_env:
        cfg["password"] = {"env": args.password_env}
    settings = OpcUaSourceSettings.model_validate(cfg)

    async def noop(_: Any) -> None:
        return None

    async def go() -> int:
        source = OpcUaSource(settings, noop)
        client = await source.connect()
        try:
            entries = await browse_tree(client, depth=args.depth, include_server=args.include_server)
        finally:
            await client.disconnect()
        print(render_tree(entries))
        if args.emit_tags is not None:
            args.emit_tags.write_text(tag_skeleton(entries, args.endpoint, args.source_name))
            n = sum(1 for e in entries if e.node_class == "Variable")
            print(f"wrote tag-map skeleton ({n} variables) to {args.emit_tags}", file=sys.stderr)
        return 0

    try:
        return asyncio.run(go())
    except CertificateRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as exc:
        print(f"error: cannot reach {args.endpoint}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


# -- edge certs ------------------------------------------------------------------------------------
def _register_certs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("certs", help="the OPC-UA client certificate and the trust list of servers")
    csub = p.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    s = csub.add_parser("show", help="own certificate, trusted and rejected server certificates")
    s.add_argument("--generate", action="store_true", help="create the application certificate if missing")
    t = csub.add_parser("trust", help="trust a rejected server certificate (thumbprint) or a file")
    t.add_argument("ref", help="thumbprint (or a unique prefix) from 'edge certs show', or a .der/.pem file")
    r = csub.add_parser("reject", help="move a trusted server certificate to the rejected list")
    r.add_argument("ref", help="thumbprint (or a unique prefix)")
    for q in (s, t, r):
        q.add_argument("--pki-dir", type=Path, default=None,
                       help="client PKI folder (default $FE_PKI_DIR or /var/lib/factory-edge/pki)")
    s.set_defaults(func=_certs_show)
    t.set_defaults(func=_certs_trust)
    r.set_defaults(func=_certs_reject)


def _pki(args: argparse.Namespace) -> Any:
    from ingest.sources.opcua.certs import DEFAULT_PKI_DIR, Pki

    return Pki(args.pki_dir or Path(os.environ.get("FE_PKI_DIR", str(DEFAULT_PKI_DIR))))


def _certs_show(args: argparse.Namespace) -> int:
    pki = _pki(args)
    if args.generate:
        asyncio.run(pki.ensure_own())
    own = pki.own()
    print(f"pki dir: {pki.root}")
    missing = "(none yet: made at the first secure connect, or with --generate)"
    print(f"own:      {own.describe() if own else missing}")
    for label, items in (("trusted", pki.trusted()), ("rejected", pki.rejected())):
        print(f"{label}:{'' if items else '  (none)'}")
        for c in items:
            print(f"  {c.thumbprint}  {c.subject}  uri={c.application_uri}  until {c.not_after:%Y-%m-%d}")
    return 0


def _certs_trust(args: argparse.Namespace) -> int:
    try:
        info = _pki(args).trust(args.ref)
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"trusted: {info.describe()}")
    return 0


def _certs_reject(args: argparse.Namespace) -> int:
    try:
        info = _pki(args).reject(args.ref)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"rejected: {info.describe()}")
    return 0


# -- edge simulate ---------------------------------------------------------------------------------
def _register_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="serve a simulated plant over OPC-UA with injected faults")
    p.add_argument("--lines", type=int, default=2)
    p.add_argument("--machines", type=int, default=3, help="machines per line")
    p.add_argument("--rate-hz", type=float, default=10.0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--opcua-port", type=int, default=4840)
    p.add_argument("--labels", type=Path, default=None, metavar="FILE",
                   help="write fault ground truth here (JSON lines)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["demo-site", "plain"], default="demo-site",
                   help="demo-site (default): asset paths and published units as firmware-config's "
                        "demo site models them (line 2 in degF/psi, some pressures in kPa); plain: "
                        "canonical units, acme/plant1/area1/LINE/MACHINE")
    p.add_argument("--faults", default="auto",
                   help="'auto' (drawn from the seed), 'none', or KIND[:TARGET][@START[+DUR]],... with kinds "
                        "bearing_wear, overheating, stuck_sensor, spikes, dropout, server_restart")
    p.add_argument("--namespace-uri", default=None, help="default urn:factory-edge:sim")
    p.add_argument("--namespace-shift", type=int, default=0,
                   help="register N other namespaces first, so ours sits at another index")
    p.add_argument("--security", action="append", default=None,
                   help="endpoint security, repeatable: None, Basic256Sha256_Sign, "
                        "Basic256Sha256_SignAndEncrypt, Aes128_Sha256_RsaOaep_..., Aes256_Sha256_RsaPss_...")
    p.add_argument("--cert-dir", type=Path, default=None,
                   help="server certificate folder (secured endpoints)")
    p.add_argument("--user", default=None, help="require this username (password from --password-env)")
    p.add_argument("--password-env", default=None, metavar="VAR")
    p.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from edge.simulator.faults import FaultSpecError, parse_faults
    from edge.simulator.opcua_server import SECURITY_CHOICES, SIM_NAMESPACE, serve_plant
    from edge.simulator.plant import Plant, PlantConfig, machine_names

    if args.lines < 1 or args.machines < 1 or args.rate_hz <= 0:
        print("error: --lines and --machines must be >= 1 and --rate-hz > 0", file=sys.stderr)
        return EXIT_USAGE
    security = args.security or ["None"]
    bad = [s for s in security if s not in SECURITY_CHOICES]
    if bad:
        print(f"error: --security {bad[0]}: choose from {', '.join(SECURITY_CHOICES)}", file=sys.stderr)
        return EXIT_USAGE
    if any(s != "None" for s in security) and args.cert_dir is None:
        print("error: secured endpoints need --cert-dir", file=sys.stderr)
        return EXIT_USAGE
    users = None
    if args.user:
        if not args.password_env or args.password_env not in os.environ:
            print("error: --user needs --password-env naming a set environment variable", file=sys.stderr)
            return EXIT_USAGE
        users = {args.user: os.environ[args.password_env]}
    try:
        faults = parse_faults(args.faults, machine_names(args.lines, args.machines),
                              duration_s=args.duration, seed=args.seed)
    except FaultSpecError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return EXIT_USAGE
    kw = {"lines": args.lines, "machines": args.machines, "rate_hz": args.rate_hz, "seed": args.seed,
          "faults": tuple(faults)}
    config = PlantConfig.demo_site(**kw) if args.layout == "demo-site" else PlantConfig(**kw)  # type: ignore[arg-type]
    plant = Plant(config, labels_path=args.labels)
    ns = args.namespace_uri or SIM_NAMESPACE

    async def go() -> None:
        ready = asyncio.Event()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def announce() -> None:
            await ready.wait()
            print(f"serving {len(plant.tags)} tags at {args.rate_hz:g} Hz on opc.tcp://{args.host}:"
                  f"{args.opcua_port} namespace {ns} (faults: {len(faults)}"
                  f"{', labels ' + str(args.labels) if args.labels else ''})", flush=True)

        task = asyncio.create_task(announce())
        server = await serve_plant(plant, host=args.host, port=args.opcua_port, duration_s=args.duration,
                                   stop_event=stop, ready=ready, namespace_uri=ns,
                                   namespace_shift=args.namespace_shift, security=security,
                                   cert_dir=args.cert_dir, users=users)
        task.cancel()
        print(f"stopped: {server.values_written} values written, {server.restarts} restarts", flush=True)

    try:
        asyncio.run(go())
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.opcua_port}: {exc}", file=sys.stderr)
        return 1
    return 0

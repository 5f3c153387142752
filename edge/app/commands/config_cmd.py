"""``edge config validate|render|schema``: exit 0 when fine, 2 on any config problem."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from edge.app.config import (
    ConfigError,
    default_config_dir,
    known_boxes,
    load_config,
    missing_secrets,
    schema_text,
)

EXIT_CONFIG = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="validate, render or describe the layered config")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    v = csub.add_parser(
        "validate",
        help="check the layers of one box (or base.toml and every box); exit 2 on any problem",
    )
    _common(v)
    v.add_argument("--secrets", action="store_true",
                   help="also check that every secret can be read here (names only are printed)")
    v.add_argument("--broker-conf", type=Path, default=None, metavar="FILE",
                   help="the broker's Mosquitto config, for its queue limits (default: "
                   "DIR/mosquitto/factory-edge.conf when there is one, else Mosquitto's defaults)")
    v.add_argument("--expected-rate", type=float, default=EXPECTED_SAMPLES_PER_S, metavar="SAMPLES_PER_S",
                   help="samples/s the box takes in over MQTT, for the outage horizons (default 50000)")
    v.set_defaults(func=_validate)

    r = csub.add_parser("render", help="print the merged config (secrets by reference) and its sha256")
    _common(r)
    r.set_defaults(func=_render)

    s = csub.add_parser("schema", help="print the JSON schema of the config")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--write", type=Path, metavar="FILE", help="write the schema to FILE instead")
    g.add_argument("--check", type=Path, metavar="FILE", help="exit 2 unless FILE holds the current schema")
    s.set_defaults(func=_schema)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="config folder (default ./firmware-config, then $FE_CONFIG_DIR)")
    p.add_argument("--box", default=None, help="box name: merges its site's layers and boxes/<box>.toml")


def _errors(exc: ConfigError, seen: set[str] | None = None) -> int:
    for line in exc.problems:
        if seen is None or line not in seen:
            print(f"error: {line}", file=sys.stderr)
        if seen is not None:
            seen.add(line)
    return EXIT_CONFIG


def _validate(args: argparse.Namespace) -> int:
    config_dir = args.dir if args.dir is not None else default_config_dir()
    boxes: list[str | None] = [args.box]
    if args.box is None:
        boxes = [None, *known_boxes(config_dir)]
    failed = False
    seen: set[str] = set()  # a problem in a shared layer is reported once, not once per box
    for box in boxes:
        try:
            loaded = load_config(config_dir, box)
        except ConfigError as exc:
            _errors(exc, seen)
            failed = True
            continue
        layers = " + ".join(str(p) for p in loaded.layers)
        broker_conf = args.broker_conf or (config_dir / BROKER_CONF
                                           if (config_dir / BROKER_CONF).is_file() else None)
        loaded.warnings.extend(horizon_warnings(loaded.config, broker_conf, args.expected_rate))
        for line in loaded.warnings[:20]:
            print(f"warning: {line}", file=sys.stderr)
        if len(loaded.warnings) > 20:
            print(f"warning: ... and {len(loaded.warnings) - 20} more", file=sys.stderr)
        if args.secrets:
            missing = missing_secrets(loaded.config)
            for line in missing:
                print(f"error: {loaded.layers[-1]}: {line}", file=sys.stderr)
            if missing:
                failed = True
                continue
        print(f"ok: {layers} (sha256 {loaded.sha256()[:12]})")
    return EXIT_CONFIG if failed else 0


# -- outage horizons: the spool's and the broker's ------------------------------------------------------
# Until the config has fields for them, documented assumptions (firmware-config/mosquitto/README.md):
EXPECTED_SAMPLES_PER_S = 50_000.0
SPOOL_BYTES_PER_SAMPLE = 38.0  # Arrow IPC segments, measured (SAMPLES batches of 10,000 rows)
MQTT_BYTES_PER_SAMPLE = 50.0  # JSON {"ts": epoch_us, "value": float} in a samples list
SAMPLES_PER_MESSAGE = 10.0
BROKER_CONF = Path("mosquitto") / "factory-edge.conf"
MOSQUITTO_DEFAULTS: dict[str, float] = {"max_queued_messages": 1000, "max_queued_bytes": 0,
                                        "persistent_client_expiration": math.inf}
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}  # mosquitto's: m = month


def mosquitto_limits(path: Path | None) -> dict[str, float]:
    """max_queued_messages, max_queued_bytes (0 = no limit) and persistent_client_expiration (seconds; inf =
    never) of a Mosquitto config file, Mosquitto's defaults for what it does not set (or for no file)."""
    out = dict(MOSQUITTO_DEFAULTS)
    if path is None:
        return out
    for raw in path.read_text().splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) != 2 or words[0] not in out:
            continue
        key, value = words
        if key == "persistent_client_expiration":
            out[key] = float(value[:-1]) * _UNITS[value[-1]] if value[-1] in _UNITS else float(value)
        else:
            out[key] = float(value)
    return out


def horizon_warnings(config: Any, broker_conf: Path | None, rate: float) -> list[str]:
    """Warnings where the spool's outage horizon (``spool.max_bytes`` at ``rate`` samples/s) is longer than
    what the broker holds for the appliance while it is away, or than the MQTT session lasts."""
    sources = config.sources.mqtt
    if not sources or rate <= 0:
        return []
    lim = mosquitto_limits(broker_conf)
    where = str(broker_conf) if broker_conf else "Mosquitto's defaults (no broker config given)"
    horizon = config.spool.max_bytes / (rate * SPOOL_BYTES_PER_SAMPLE)
    by_msgs = (lim["max_queued_messages"] * SAMPLES_PER_MESSAGE / rate
               if lim["max_queued_messages"] > 0 else math.inf)
    by_bytes = (lim["max_queued_bytes"] / (rate * MQTT_BYTES_PER_SAMPLE)
                if lim["max_queued_bytes"] > 0 else math.inf)
    held = min(by_msgs, by_bytes)
    out = []
    if horizon > held:
        out.append(
            f"spool.max_bytes: the spool holds {horizon / 60:.1f} min at {rate:,.0f} samples/s, but the "
            f"broker ({where}) holds only {held / 60:.1f} min of QoS 1 messages for the appliance while "
            f"it is away (max_queued_messages {lim['max_queued_messages']:.0f}, max_queued_bytes "
            f"{lim['max_queued_bytes']:.0f}; assumed {SAMPLES_PER_MESSAGE:.0f} samples of "
            f"{MQTT_BYTES_PER_SAMPLE:.0f} B a message): messages beyond that are dropped at the broker; "
            "raise them (firmware-config/mosquitto/README.md)")
    for i, s in enumerate(sources):
        expiry = s.session_expiry_s if s.session_expiry_s is not None else config.broker.session_expiry_s
        if s.clean_start or expiry < horizon:
            out.append(f"sources.mqtt[{i}].session_expiry_s: the session ends {expiry} s after a disconnect "
                       f"(clean_start {str(s.clean_start).lower()}), shorter than the spool's horizon of "
                       f"{horizon:.0f} s: what is published after that is not kept for the appliance")
        if lim["persistent_client_expiration"] < expiry:
            out.append(f"sources.mqtt[{i}]: the broker ({where}) removes sessions after "
                       f"{lim['persistent_client_expiration']:.0f} s (persistent_client_expiration), shorter "
                       f"than the session expiry of {expiry} s")
    return out


def _render(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.dir if args.dir is not None else default_config_dir(), args.box)
    except ConfigError as exc:
        return _errors(exc)
    print(loaded.render())
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
        print(f"wrote {args.write}")
        return 0
    if args.check is not None:
        try:
            current = args.check.read_text()
        except OSError as exc:
            print(f"error: {args.check}: cannot be read: {exc.strerror}", file=sys.stderr)
            return EXIT_CONFIG
        if current != text:
            print(f"error: {args.check} is out of date; run: edge config schema --write {args.check}",
                  file=sys.stderr)
            return EXIT_CONFIG
        print(f"ok: {args.check} is current")
        return 0
    sys.stdout.write(text)
    return 0

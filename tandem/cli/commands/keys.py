"""``tandem keys``: the CurveZMQ keys every ZMQ socket uses (docs/security.md)."""

from __future__ import annotations

import argparse
import sys

from tandem import security
from tandem.cli.util import add_config_argument, settings_from_args

EXIT_EXISTS = 1


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser(
        "keys",
        help="generate the CurveZMQ keys that authenticate every ZMQ socket",
        description="Write the deployment's keypair (or with --client a connect-only one) into "
        "security.keys_dir (default <data_dir>/keys), files 0600, and add its public key to "
        "the allow-list authorized/. Copy the directory to every machine (docs/security.md).",
    )
    add_config_argument(keys)
    keys.add_argument(
        "--client",
        metavar="NAME",
        help="a keypair for a machine that only connects (clients/NAME.key_secret; copy it "
        "there as client.key_secret beside tandem.key); delete authorized/NAME.key to revoke it",
    )
    keys.add_argument("--force", action="store_true", help="replace an existing keypair")
    keys.add_argument(
        "--if-missing", action="store_true", help="do nothing (exit 0) when the keypair exists"
    )
    keys.set_defaults(func=_keys)


def _keys(args: argparse.Namespace) -> int:
    folder = security.keys_dir(settings_from_args(args))
    name = args.client or security.SERVER
    existing = (folder / "clients" if args.client else folder) / f"{name}.key_secret"
    if args.if_missing and existing.exists():
        sys.stdout.write(f"keys exist: {existing}\n")
        return 0
    try:
        secret = security.generate(folder, client=args.client, force=args.force)
    except security.SecurityError as exc:
        sys.stderr.write(f"tandem keys: {exc}\n")
        return EXIT_EXISTS
    sys.stdout.write(f"wrote {secret} (0600) and {folder / security.AUTHORIZED / name}.key\n")
    return 0

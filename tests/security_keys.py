"""Keys for the authentication tests: the deployment's, and the peers that must be refused."""

from __future__ import annotations

from pathlib import Path

from tandem import security


def deployment(folder: Path) -> security.Keys:
    """A fresh deployment keypair (``tandem keys``) in ``folder``."""
    security.generate(folder)
    keys = security.load_keys(folder)
    assert keys is not None
    return keys


def bad_peers(good: security.Keys, tmp: Path) -> dict[str, security.Policy]:
    """Client policies that must get nowhere with a ``good`` server: no keys at all;
    another deployment's keys; and a key pair not on the allow-list that does know the
    server's public key (the strongest outsider)."""
    other = deployment(tmp / "other-keys")
    stranger = security.Keys(other.public, other.secret, good.server_public, None, tmp)
    return {
        "no keys": security.Policy(),
        "wrong keys": security.Policy(other),
        "unlisted key": security.Policy(stranger),
    }


BAD_PEERS = ["no keys", "wrong keys", "unlisted key"]

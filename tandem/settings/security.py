"""Settings of ZMQ authentication (CurveZMQ keys and the plaintext opt-out)."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class SecuritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys_dir: Path | None = Field(
        None,
        description="Directory of the CurveZMQ keys made by `tandem keys`; None = "
        "<data_dir>/keys. When it holds keys, every ZMQ socket is authenticated; a directory "
        "named here must hold them.",
    )
    allow_plaintext: bool = Field(
        False,
        description="Let a ZMQ socket without keys bind a non-loopback address. Anyone who "
        "reaches the port can then command the robot and read its streams: only on an "
        "isolated network.",
    )

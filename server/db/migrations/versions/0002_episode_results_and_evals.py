"""episode results (autonomous / assisted success), weights version, env steps, eval batches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows recorded before this revision: the same rule as tandem.messages.episode_result,
# with the operator's label first (a discarded or demo episode has no result).
BACKFILL = """
UPDATE episodes SET result = CASE
    WHEN kind = 'demo' OR discarded OR outcome = 'discard' THEN NULL
    WHEN outcome = 'failure' OR (outcome IS NULL AND NOT success) THEN 'failure'
    WHEN intervention_steps = 0 THEN 'autonomous_success'
    WHEN kind = 'evaluation' THEN 'failure'
    ELSE 'assisted_success'
END
"""


def upgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("weights_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("env_steps", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("eval_batch", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("eval_index", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_episodes_result"), ["result"], unique=False)
        batch_op.create_index(batch_op.f("ix_episodes_eval_batch"), ["eval_batch"], unique=False)
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_episodes_eval_batch"))
        batch_op.drop_index(batch_op.f("ix_episodes_result"))
        for column in ("eval_index", "eval_batch", "env_steps", "weights_version", "result"):
            batch_op.drop_column(column)

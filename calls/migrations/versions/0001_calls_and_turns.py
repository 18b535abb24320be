"""calls and turns

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("room", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("caller_number", sa.String(64)),
        sa.Column("dialled_number", sa.String(64)),
        sa.Column("trunk_id", sa.String(64)),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("end_reason", sa.String(32)),
        sa.Column("end_detail", sa.Text()),
        sa.Column("provider", sa.String(64)),
        sa.Column("llm_model", sa.String(128)),
        sa.Column("summary", sa.Text()),
        sa.Column("outcome", sa.String(255)),
        sa.Column("recording_path", sa.Text()),
        sa.Column("webhook_state", sa.String(16)),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.Column("webhook_last_error", sa.Text()),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_caller_number", "calls", ["caller_number"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("intent_confidence", sa.Float()),
        sa.Column("tool_name", sa.String(128)),
        sa.Column("tool_args", sa.JSON()),
        sa.Column("metrics", sa.JSON()),
        sa.UniqueConstraint("call_id", "seq", name="uq_turns_call_seq"),
    )
    op.create_index("ix_turns_call_id", "turns", ["call_id"])


def downgrade() -> None:
    op.drop_table("turns")
    op.drop_table("calls")

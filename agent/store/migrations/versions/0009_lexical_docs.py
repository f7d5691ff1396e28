"""lexical_docs: the terms and weighted frames of each indexed pattern (hybrid retrieval, issue 14)

Revision ID: 0009
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lexical_docs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("collection", sa.String(length=16), nullable=False),
        sa.Column("doc_id", sa.String(length=200), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ux_lexical_docs_collection_doc", "lexical_docs", ["collection", "doc_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_lexical_docs_collection_doc", table_name="lexical_docs")
    op.drop_table("lexical_docs")

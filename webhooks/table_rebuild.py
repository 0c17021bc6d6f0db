"""Rebuilding a table in place on PostgreSQL, as a partitioned table or back to a plain one.

The migrations that partition attempts (0017) and deliveries with their event links (0019) copy each table
into a new one of the same name. What names the table is kept: indexes, unique and foreign-key constraints
(its own and those of other tables pointing at it), the identity sequence and where it stands, so later
migrations and the ORM see the same table. An offline step: the table is locked for the copy.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Rebuild:
    """What was set aside from the old table, to be put on the new one."""

    table: str
    columns: list[str]
    indexes: list[tuple[str, str]]
    constraints: list[tuple[str, str]]

    @property
    def old(self) -> str:
        return f"{self.table}_unpartitioned"


def drop_references_to(cursor, table: str) -> list[tuple[str, str, str]]:
    """Drop the foreign keys of other tables that point at `table`; return them (table, name, definition)
    for `restore_references`. Their copies on partitions go with them."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE confrelid = %s::regclass AND contype = 'f' AND conparentid = 0 AND conrelid <> confrelid",
        [table],
    )
    references = cursor.fetchall()
    for owner, name, _ in references:
        cursor.execute(f'ALTER TABLE {owner} DROP CONSTRAINT "{name}"')
    return references


def restore_references(cursor, references: list[tuple[str, str, str]]) -> None:
    """Put back the foreign keys `drop_references_to` took away (checked against the rows now there)."""
    for owner, name, definition in references:
        cursor.execute(f'ALTER TABLE {owner} ADD CONSTRAINT "{name}" {definition}')


def start(cursor, table: str, partition_by: str | None) -> Rebuild:
    """Lock `table`, set its indexes and constraints aside, rename it, and make the new one in its place
    (`PARTITION BY <partition_by>`, or plain). The caller makes partitions, copies rows, then `finish`es."""
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid), contype, conindid FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('f', 'u', 'p') AND conparentid = 0",
        [table],
    )
    found = cursor.fetchall()
    constraints = [(name, definition) for name, definition, kind, _ in found if kind in ("f", "u")]
    backing = [index for _, _, kind, index in found if kind in ("u", "p")]
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass AND NOT (i.indexrelid = ANY(%s::oid[]))",
        [table, backing],
    )
    # A partitioned table's own index is shown `ON ONLY`: the new one must reach every partition.
    indexes = [(name, definition.replace(" ON ONLY ", " ON ")) for name, definition in cursor.fetchall()]
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [table],
    )
    rebuild = Rebuild(table, [row[0] for row in cursor.fetchall()], indexes, constraints)
    cursor.execute(f"ALTER TABLE {table} RENAME TO {rebuild.old}")
    cursor.execute(f"ALTER TABLE {rebuild.old} RENAME CONSTRAINT {table}_pkey TO {rebuild.old}_pkey")
    for name, definition in constraints:
        if definition.startswith("UNIQUE"):
            cursor.execute(f'ALTER TABLE {rebuild.old} RENAME CONSTRAINT "{name}" TO "{name[:50]}_old"')
    for name, _ in indexes:
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:50]}_old"')
    partitioning = f" PARTITION BY {partition_by}" if partition_by else ""
    cursor.execute(
        f"CREATE TABLE {table} (LIKE {rebuild.old} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS "
        f"INCLUDING STORAGE){partitioning}"
    )
    return rebuild


def copy_rows(cursor, rebuild: Rebuild, chosen: dict[str, str] | None = None, joined: str = "") -> None:
    """Copy every row of the old table into the new one; `chosen` gives an expression for some columns
    (over the old table as `a` and whatever `joined` adds)."""
    chosen = chosen or {}
    listed = ", ".join(rebuild.columns)
    selected = ", ".join(chosen.get(column, f"a.{column}") for column in rebuild.columns)
    cursor.execute(f"INSERT INTO {rebuild.table} ({listed}) SELECT {selected} FROM {rebuild.old} a {joined}")  # noqa: S608


def finish(cursor, rebuild: Rebuild, *, key: str) -> None:
    """Key, index and constrain the new table as the old one was, carry the id sequence on, drop the old."""
    table = rebuild.table
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})")
    for _, definition in rebuild.indexes:
        cursor.execute(definition)
    for name, definition in rebuild.constraints:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [rebuild.old])
    old_sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608
    last_value, is_called = cursor.fetchone()
    cursor.execute(f"DROP TABLE {rebuild.old}")
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute("SELECT setval(%s, %s, %s)", [sequence, last_value, is_called])
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {table}_id_seq")

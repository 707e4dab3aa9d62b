"""String fields compared by code point in the database, as Python compares ``str``.

A string that the database compares for identity (a unique index, ``=``, ``IN``) or order
(``<``, ``ORDER BY``) must compare there as it does in Python, or the two disagree:
MariaDB's ``utf8mb4_unicode_ci`` (what docker-compose.yml sets) says ``evt-A`` = ``evt-a``,
``straße`` = ``strasse``, full-width = ASCII, and sorts ``a-1`` before ``B-1``; a unique event id
then refuses a distinct id and a tail query picks another predecessor than the scoring engine.

The binary collation per backend (code-point order, trailing spaces significant):

* MariaDB: ``utf8mb4_nopad_bin`` (``utf8mb4_bin`` is PAD SPACE: ``'a' = 'a '``);
* MySQL ≥ 8.0.17: ``utf8mb4_0900_bin`` (NO PAD); older: ``utf8mb4_bin``;
* PostgreSQL: ``"C"`` (byte order of UTF-8 = code-point order, deterministic);
* SQLite: its default, ``BINARY`` (no COLLATE clause).

``db_parameters()`` names it, so a migration's ``AddField``/``AlterField`` creates or changes the
column with it (Django's schema editors read ``db_parameters(connection)["collation"]``).

Case-insensitive lookups (``iexact``, ``icontains``, ``istartswith``, ``iendswith``: admin
``search_fields``, list searches) stay case-insensitive: on MySQL/MariaDB ``LIKE`` follows the
column's collation (now binary), so both sides are lower-cased there; on PostgreSQL ``UPPER()``
under ``"C"`` folds ASCII only, so it runs under the database's default collation instead.
"""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import lookups


def binary_collation(connection) -> str | None:
    """The collation that compares by code point on this connection's backend (None: the default)."""
    if connection.vendor == "mysql":
        if connection.mysql_is_mariadb:
            return "utf8mb4_nopad_bin"
        return "utf8mb4_0900_bin" if connection.mysql_version >= (8, 0, 17) else "utf8mb4_bin"
    if connection.vendor == "postgresql":
        return "C"
    return None


class _CaseInsensitive:
    """A case-insensitive lookup that stays so on a column with a binary collation."""

    def as_mysql(self, compiler, connection):
        lhs_sql, params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        params.extend(rhs_params)
        return f"LOWER({lhs_sql}) {self.get_rhs_op(connection, f'LOWER({rhs_sql})')}", params

    def as_postgresql(self, compiler, connection):
        # Django writes UPPER(col::text) LIKE UPPER(%s): fold under the database's collation.
        lhs_sql, params = self.process_lhs(compiler, connection)
        lhs_sql = lhs_sql.replace("::text)", '::text COLLATE "default")', 1)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        params.extend(rhs_params)
        return f"{lhs_sql} {self.get_rhs_op(connection, rhs_sql)}", params


class BinaryIExact(_CaseInsensitive, lookups.IExact):
    pass


class BinaryIContains(_CaseInsensitive, lookups.IContains):
    pass


class BinaryIStartsWith(_CaseInsensitive, lookups.IStartsWith):
    pass


class BinaryIEndsWith(_CaseInsensitive, lookups.IEndsWith):
    pass


class BinaryCollationMixin:
    """Compare by code point in the database (see the module docstring). An explicit
    ``db_collation`` still wins."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if not params.get("collation"):
            params["collation"] = binary_collation(connection)
        return params


class BinaryCharField(BinaryCollationMixin, models.CharField):
    """A ``CharField`` compared by code point: identifiers, keys, anything ordered in SQL."""


class BinaryEmailField(BinaryCollationMixin, models.EmailField):
    """An ``EmailField`` compared by code point (store it normalised, e.g. lower-cased)."""


for _field in (BinaryCharField, BinaryEmailField):
    for _lookup in (BinaryIExact, BinaryIContains, BinaryIStartsWith, BinaryIEndsWith):
        _field.register_lookup(_lookup)


class AlterFieldCollation(migrations.AlterField):
    """``AlterField`` to one of the fields above that touches the database only where the column
    changes: where the column's parameters (type, collation) are the same before and after, as on
    SQLite, it does nothing instead of copying the whole table (SQLite alters by rebuilding)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if self._changes(app_label, schema_editor, from_state, to_state):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if self._changes(app_label, schema_editor, from_state, to_state):
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def _changes(self, app_label, schema_editor, from_state, to_state) -> bool:
        old = from_state.apps.get_model(app_label, self.model_name)._meta.get_field(self.name)
        new = to_state.apps.get_model(app_label, self.model_name)._meta.get_field(self.name)
        connection = schema_editor.connection
        return old.db_parameters(connection) != new.db_parameters(connection)

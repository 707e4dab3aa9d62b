"""Set-based bulk updates: many rows, different values per row, one statement.

Django's ``bulk_update`` builds ``CASE WHEN pk=… THEN …`` per field: for 1,000 rows it spends ~1 s
of CPU building expressions (measured in bench/, scoring 10,000 events spent 30 of 33 s there),
and the database evaluates an N-branch CASE per row. Here the values travel as a derived table that
the database joins on the primary key:

* MySQL/MariaDB: ``UPDATE t JOIN (SELECT … UNION ALL SELECT …) v ON t.pk = v.pk SET …``
* SQLite (≥ 3.33): ``UPDATE t SET … FROM (VALUES (…), (…)) AS v WHERE t.pk = v.column1``
* PostgreSQL: ``UPDATE t SET … FROM (VALUES (%s::type, …), (…)) AS v (pk, …) WHERE t.pk = v.pk``
  (the first row's casts type the derived table's columns: a column of NULLs is otherwise text)

Other backends fall back to ``bulk_update``. Values are prepared by each field
(``get_db_prep_save``), so UUIDs, datetimes and booleans are stored exactly as the ORM stores them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections

# SQLite's default limit on bound variables is 32,766; MySQL's packet limit is far above this.
MAX_PARAMS = 30_000
# Backends with a set-based statement here; others fall back to Django's bulk_update/bulk_create.
_NATIVE = ("mysql", "sqlite", "postgresql")


def rows_update(
    model,
    *,
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
    using: str = "default",
) -> int:
    """``UPDATE model SET fields[i] = row[i + 1], constants…`` for each ``row = (pk, *values)``.

    Returns the number of statements executed.
    """
    if not rows:
        return 0
    constants = dict(constants or {})
    connection = connections[using]
    meta = model._meta
    if connection.vendor not in _NATIVE:
        return _fallback(model, fields=fields, rows=rows, constants=constants, using=using)

    qn = connection.ops.quote_name
    pk = meta.pk
    field_objs = [meta.get_field(name) for name in fields]
    const_objs = [(meta.get_field(name), value) for name, value in constants.items()]
    const_params = [field.get_db_prep_save(value, connection) for field, value in const_objs]
    per_statement = max(1, min(2000, MAX_PARAMS // (len(fields) + 1)))
    table = qn(meta.db_table)
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            params: list[Any] = []
            for row in part:
                params.append(pk.get_db_prep_save(row[0], connection))
                params.extend(field.get_db_prep_save(value, connection) for field, value in zip(field_objs, row[1:]))
            width = len(fields) + 1
            if connection.vendor == "mysql":
                names = ["_pk", *[f"_v{i}" for i in range(len(fields))]]
                first = "SELECT " + ", ".join(f"%s AS {qn(name)}" for name in names)
                rest = " UNION ALL SELECT " + ", ".join(["%s"] * width)
                derived = first + rest * (len(part) - 1)
                assignments = [f"t.{qn(f.column)} = v.{qn(f'_v{i}')}" for i, f in enumerate(field_objs)]
                assignments += [f"t.{qn(f.column)} = %s" for f, _ in const_objs]
                sql = (
                    f"UPDATE {table} AS t JOIN ({derived}) AS v ON t.{qn(pk.column)} = v.{qn('_pk')} "
                    f"SET {', '.join(assignments)}"
                )
                cursor.execute(sql, params + const_params)
            elif connection.vendor == "postgresql":
                names = ", ".join(qn(name) for name in ["_pk", *[f"_v{i}" for i in range(len(fields))]])
                first = "(" + ", ".join(f"%s::{f.cast_db_type(connection)}" for f in [pk, *field_objs]) + ")"
                values = ", ".join([first] + ["(" + ", ".join(["%s"] * width) + ")"] * (len(part) - 1))
                assignments = [f"{qn(f.column)} = v.{qn(f'_v{i}')}" for i, f in enumerate(field_objs)]
                assignments += [f"{qn(f.column)} = %s" for f, _ in const_objs]
                sql = (
                    f"UPDATE {table} SET {', '.join(assignments)} FROM (VALUES {values}) AS v ({names}) "
                    f"WHERE {table}.{qn(pk.column)} = v.{qn('_pk')}"
                )
                cursor.execute(sql, const_params + params)
            else:
                values = ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * len(part))
                assignments = [f"{qn(f.column)} = v.column{i + 2}" for i, f in enumerate(field_objs)]
                assignments += [f"{qn(f.column)} = %s" for f, _ in const_objs]
                sql = (
                    f"UPDATE {table} SET {', '.join(assignments)} FROM (VALUES {values}) AS v "
                    f"WHERE {table}.{qn(pk.column)} = v.column1"
                )
                cursor.execute(sql, const_params + params)
            statements += 1
    return statements


def _fallback(model, *, fields, rows, constants, using) -> int:
    objs = []
    for row in rows:
        obj = model(pk=row[0])
        for name, value in zip(fields, row[1:]):
            setattr(obj, name, value)
        for name, value in constants.items():
            setattr(obj, name, value)
        objs.append(obj)
    model.objects.using(using).bulk_update(objs, [*fields, *constants], batch_size=1000)
    return (len(objs) + 999) // 1000


_PLAIN_TYPES = {
    "CharField",
    "TextField",
    "EmailField",
    "SlugField",
    "IntegerField",
    "SmallIntegerField",
    "PositiveSmallIntegerField",
    "PositiveIntegerField",
    "BigIntegerField",
    "BooleanField",
}


def _converter(field, connection):
    """A cheap value -> database value function for one field (``get_db_prep_save`` semantics)."""
    if field.get_internal_type() in _PLAIN_TYPES and not field.is_relation:
        return None  # passed as is
    target = field.target_field if field.is_relation else field
    if target.get_internal_type() == "UUIDField" and not connection.features.has_native_uuid_field:
        prep = field.get_db_prep_save
        return lambda value: value.hex if isinstance(value, uuid.UUID) else prep(value, connection)
    if target.get_internal_type() == "JSONField":
        # Rows often share one value object (the same rules record on thousands of score
        # changes): encode each object once per statement batch. The memo holds the object, so
        # its id cannot be reused while the memo lives.
        memo: dict[int, tuple[Any, Any]] = {}

        def prepare_json(value):
            hit = memo.get(id(value))
            if hit is None or hit[0] is not value:
                hit = memo[id(value)] = (value, field.get_db_prep_save(value, connection))
            return hit[1]

        return prepare_json
    return lambda value: field.get_db_prep_save(value, connection)


def objs_insert(objs: Sequence, *, ignore_conflicts: bool = False, using: str = "default") -> int | None:
    """Insert model instances as multi-row INSERTs, taking their attribute values as they are.

    What ``bulk_create`` does, at a fraction of the CPU: it compiles every value through the
    query compiler (~0.1 ms per 17-column row, the largest cost of a 1,000-event batch request in
    bench/) and, on SQLite, splits at 999 parameters. No signals, no ``pre_save`` (``auto_now_add``
    values must be set by the caller), no primary keys read back: the caller sets them (UUIDs) or
    does not need them. ``ignore_conflicts`` skips rows that violate a unique constraint.
    Returns the number of rows inserted (with ``ignore_conflicts``: fewer than ``len(objs)`` when
    some were skipped), or None on a backend that does not say.
    """
    if not objs:
        return 0
    model = type(objs[0])
    connection = connections[using]
    if connection.vendor not in _NATIVE:
        model.objects.using(using).bulk_create(objs, ignore_conflicts=ignore_conflicts, batch_size=1000)
        return None if ignore_conflicts else len(objs)
    return _insert(model, [obj.__dict__ for obj in objs], ignore_conflicts=ignore_conflicts, using=using)


def dicts_insert(model, rows: Sequence[Mapping[str, Any]], *, ignore_conflicts: bool = False,
                 using: str = "default") -> int | None:
    """:func:`objs_insert` for rows given as ``{attname: value}``: no model instance is built (an
    instance costs ~30 us, as much as the rest of a row's insert). A field a row leaves out gets
    its default (per row, so callable defaults run per row)."""
    if not rows:
        return 0
    connection = connections[using]
    if connection.vendor not in _NATIVE:
        return objs_insert([model(**row) for row in rows], ignore_conflicts=ignore_conflicts, using=using)
    fields = _insert_fields(model)
    # Constant defaults once per call; only callable ones (uuid4, dict, list …) per row.
    constant = {f.attname: f.get_default() for f in fields if not callable(f.default)}
    per_row = [f for f in fields if callable(f.default)]
    complete = []
    for row in rows:
        if len(row) < len(fields):
            filled = {name: value for name, value in constant.items() if name not in row}
            filled.update((f.attname, f.get_default()) for f in per_row if f.attname not in row)
            row = {**filled, **row}
        complete.append(row)
    return _insert(model, complete, ignore_conflicts=ignore_conflicts, using=using)


def _insert_fields(model) -> list:
    return [f for f in model._meta.concrete_fields if not (f.primary_key and f.get_internal_type() in _AUTO)]


def _insert(model, rows: Sequence[Mapping[str, Any]], *, ignore_conflicts: bool, using: str) -> int:
    meta = model._meta
    connection = connections[using]
    fields = _insert_fields(model)
    converters = [_converter(f, connection) for f in fields]
    attnames = [f.attname for f in fields]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    if connection.vendor == "mysql":
        head, tail = ("INSERT IGNORE INTO" if ignore_conflicts else "INSERT INTO"), ""
    else:
        head, tail = "INSERT INTO", (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    per_statement = max(1, min(2000, MAX_PARAMS // len(fields)))
    inserted = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            params: list[Any] = []
            for values in part:
                for attname, convert in zip(attnames, converters):
                    value = values[attname]
                    params.append(value if convert is None or value is None else convert(value))
            sql = f"{head} {qn(meta.db_table)} ({columns}) VALUES {', '.join([one] * len(part))}{tail}"
            cursor.execute(sql, params)
            inserted += cursor.rowcount
    return inserted


_AUTO = {"AutoField", "BigAutoField", "SmallAutoField"}

"""Statements written once from a model's own table and column names, for the ingest's hot path.

An ingest writes a handful of rows; building each statement through the ORM (compiling the query, preparing
every value through its field) cost more than running it. These functions write the same SQL once per model,
field list and database vendor (whose quoting they use) and cache it; callers pass every value as a parameter,
prepared by the field's own ``get_db_prep_save`` where the type needs it (dates, JSON, UUIDs).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field, Model


def concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return field


def _column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(str(concrete_field(model, name).column))


@cache
def update_sql(model: type[Model], names: tuple[str, ...], keep_first: str = "", vendor: str = "") -> str:
    """``UPDATE <table> SET <column> = %s, ... WHERE <pk> = %s``; the column named ``keep_first`` keeps a value it
    already has: ``<column> = COALESCE(<column>, %s)``."""
    assignments = []
    for name in names:
        column = _column(model, name)
        assignments.append(f"{column} = COALESCE({column}, %s)" if name == keep_first else f"{column} = %s")
    meta = model._meta
    pk = connection.ops.quote_name(str(meta.pk.column))
    table = connection.ops.quote_name(meta.db_table)
    return f"UPDATE {table} SET {', '.join(assignments)} WHERE {pk} = %s"  # noqa: S608  # model names


@cache
def upsert_sql(
    model: type[Model],
    names: tuple[str, ...],
    *,
    conflict: str,
    keep: tuple[str, ...] = (),
    search_vector: str = "",
    returning: bool = False,
    vendor: str = "",
) -> str:
    """``INSERT INTO <table> (<columns>) VALUES (%s, ...) ON CONFLICT (<conflict>) DO UPDATE SET <column> =
    EXCLUDED.<column>, ...`` for every column but ``conflict`` and those in ``keep``; with ``returning``, the
    row's primary key comes back. ``search_vector`` names a column written as ``to_tsvector(%s::regconfig, %s)``
    (PostgreSQL only), whose two parameters follow the others."""
    quote = connection.ops.quote_name
    columns = [_column(model, name) for name in names]
    values = ["%s"] * len(names)
    updated = [_column(model, name) for name in names if name != conflict and name not in keep]
    if search_vector:
        column = _column(model, search_vector)
        columns.append(column)
        values.append("to_tsvector(%s::regconfig, %s)")
        updated.append(column)
    meta = model._meta
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) VALUES ({', '.join(values)}) "  # noqa: S608  # model names
        f"ON CONFLICT ({_column(model, conflict)}) DO UPDATE SET "
        + ", ".join(f"{column} = EXCLUDED.{column}" for column in updated)
    )
    return f"{sql} RETURNING {quote(str(meta.pk.column))}" if returning else sql


@cache
def insert_sql(model: type[Model], names: tuple[str, ...], vendor: str = "") -> str:
    """``INSERT INTO <table> (<columns>) VALUES (%s, ...)``: one row, for ``executemany``."""
    columns = ", ".join(_column(model, name) for name in names)
    table = connection.ops.quote_name(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(names))})"  # noqa: S608  # model names


@cache
def delete_sql(model: type[Model], name: str, vendor: str = "") -> str:
    """``DELETE FROM <table> WHERE <column> = %s``."""
    table = connection.ops.quote_name(model._meta.db_table)
    return f"DELETE FROM {table} WHERE {_column(model, name)} = %s"  # noqa: S608  # model names


@cache
def select_sql(model: type[Model], names: tuple[str, ...], where: str, vendor: str = "") -> str:
    """``SELECT <columns> FROM <table> WHERE <column> = %s``."""
    columns = ", ".join(_column(model, name) for name in names)
    table = connection.ops.quote_name(model._meta.db_table)
    return f"SELECT {columns} FROM {table} WHERE {_column(model, where)} = %s"  # noqa: S608  # model names

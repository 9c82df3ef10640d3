"""``ledger.driver.select_all`` returns exactly what SQLAlchemy would, on both backends.

It runs the hot reads (a check's state, the token lookup) on the driver's
connection — a psycopg pipeline on PostgreSQL, the sqlite3 connection on
SQLite — so its rows must equal SQLAlchemy's, values, types and names.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import ON_POSTGRES
from governance.projections import tables
from governance.errors import NotFoundError
from governance.policy.context import _STATE_QUERIES, load_state
from ledger.driver import driver_rows, select_all
from policy_fixtures.gate_scenarios import Gate
from policy_fixtures.web_scenarios import break_glass

PARAMS = {"model": "credit-risk", "version": "1"}


def _through_sqlalchemy(engine, statements, params):
    with engine.connect() as conn:
        results = {name: conn.execute(statement, params) for name, statement in statements.items()}
        return {name: (list(result.keys()), [tuple(row) for row in result.all()])
                for name, result in results.items()}


def test_every_state_query_gives_sqlalchemys_rows_values_types_and_names(world, app):
    break_glass(Gate(world))  # evidence, sign-offs, datasets, an override and a deployment
    engine = app.extensions["db_engine"]
    expected = _through_sqlalchemy(engine, _STATE_QUERIES, PARAMS)
    with engine.connect() as conn:
        got = select_all(conn, _STATE_QUERIES, PARAMS)
    assert set(got) == set(_STATE_QUERIES)
    for name, (columns, rows) in expected.items():
        assert rows, f"the scenario leaves {name} empty: the comparison would prove nothing"
        assert [tuple(row) for row in got[name]] == rows, name
        assert [[type(v) for v in row] for row in got[name]] == [[type(v) for v in row] for row in rows], name
        assert all(list(row._fields) == columns for row in got[name]), name
    assert got["model"][0].uses_personal_data is True  # a Boolean column stays a bool on SQLite


def test_no_rows_is_an_empty_list_and_an_unknown_version_is_not_found(world, app):
    Gate(world).compliant()
    engine = app.extensions["db_engine"]
    with engine.connect() as conn:
        got = select_all(conn, _STATE_QUERIES, {"model": "credit-risk", "version": "nope"})
        assert got["version"] == [] and got["evidence"] == [] and len(got["model"]) == 1
        with pytest.raises(NotFoundError, match="^no version 'nope' of model 'credit-risk'$"):
            load_state(conn, "credit-risk", "nope")
        with pytest.raises(NotFoundError, match="^no model 'ghost'$"):
            load_state(conn, "ghost", "1")


def test_reads_inside_a_write_transaction_see_its_uncommitted_rows(world, app):
    """On the writer's connection select_all joins the open transaction, begins none."""
    Gate(world).compliant()
    ledger = app.extensions["ledger"]
    statement = {"tokens": sa.select(tables.token.c.token_id).order_by(tables.token.c.token_id)}
    before = len(_through_sqlalchemy(app.extensions["db_engine"], statement, {})["tokens"][1])
    with ledger.transaction() as writer:
        writer.append("identity.token.created", "operator:test", "token:0123456789abcdef", {
            "token_id": "0123456789abcdef", "principal": "zed", "roles": ["auditor"],
            "description": "", "expires_at": None})
        inside = select_all(writer.connection, statement, {})["tokens"]
    assert len(inside) == before + 1
    assert ("0123456789abcdef",) in [tuple(row) for row in inside]


def test_reads_outside_a_transaction_leave_the_connection_as_they_found_it(app):
    """PostgreSQL: autocommit reads, so no BEGIN is sent and nothing is left to roll back.
    SQLite: one statement runs alone; several get one transaction, for one snapshot."""
    engine = app.extensions["db_engine"]
    one = {"tokens": sa.select(tables.token.c.token_id)}
    several = {"tokens": sa.select(tables.token.c.token_id), "models": sa.select(tables.model.c.name)}
    postgres = engine.dialect.name == "postgresql"
    for statements in (one, several):
        with engine.connect() as conn:
            select_all(conn, statements, {})
            raw = conn.connection.driver_connection
            if postgres:
                assert raw.autocommit is False
                assert raw.info.transaction_status == 0, "a transaction was left open (IDLE is 0)"
                assert not conn.in_transaction()
            else:
                assert raw.in_transaction is (statements is several)
                # begun on the driver: SQLAlchemy joins it if asked, without a second BEGIN
                conn.execute(sa.select(tables.model.c.name)).all()
                assert conn.in_transaction()
        if not postgres:
            assert not raw.in_transaction, "the pool's rollback on return must end the read"


def test_a_driver_error_is_raised_as_sqlalchemy_would_raise_it(make_app):
    """The app answers SQLAlchemy's OperationalError/ProgrammingError with 503: a
    driver error must not escape as the driver's own class (a 500)."""
    app = make_app(migrate=False)  # no tables: the query fails in the database
    with app.extensions["db_engine"].connect() as conn:
        with pytest.raises(sa.exc.DBAPIError) as raised:
            select_all(conn, {"tokens": sa.select(tables.token.c.token_id)}, {})
    expected = sa.exc.ProgrammingError if conn.dialect.name == "postgresql" else sa.exc.OperationalError
    assert type(raised.value) is expected
    assert "gov_token" in str(raised.value)


@pytest.mark.skipif(not ON_POSTGRES,
                    reason="PostgreSQL only: it drops the connection with pg_terminate_backend; "
                           "an SQLite connection cannot be dropped from outside")
def test_a_connection_the_server_dropped_is_invalidated_and_the_next_read_works(app):
    engine = app.extensions["db_engine"]
    statement = {"tokens": sa.select(tables.token.c.token_id)}
    with engine.connect() as conn:
        pid = conn.connection.driver_connection.info.backend_pid
        with engine.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.OperationalError) as raised:
            select_all(conn, statement, {})
        assert raised.value.connection_invalidated
        assert conn.invalidated
    with engine.connect() as conn:
        assert conn.connection.driver_connection.info.backend_pid != pid
        assert select_all(conn, statement, {}) == {"tokens": []}


def test_driver_rows_gives_the_rows_sqlalchemy_gives_inside_the_transaction(world, app):
    """driver_rows (a proof's or a frontier's nodes) joins the open write transaction
    and returns what exec_driver_sql returns, as plain tuples."""
    Gate(world).compliant()
    ledger = app.extensions["ledger"]
    p = "?" if app.extensions["db_engine"].dialect.name == "sqlite" else "%s"
    nodes = f"SELECT seq, leaf_hash, nodes FROM ledger_entry WHERE seq IN ({p}, {p}, {p}) ORDER BY seq"
    token = f"SELECT token_id, principal FROM gov_token WHERE token_id = {p}"
    with ledger.transaction() as writer:
        writer.append("identity.token.created", "operator:test", "token:0123456789abcdef", {
            "token_id": "0123456789abcdef", "principal": "zed", "roles": ["auditor"],
            "description": "", "expires_at": None})
        assert driver_rows(writer.connection, token, ("0123456789abcdef",)) == [("0123456789abcdef", "zed")]
        got = driver_rows(writer.connection, nodes, (0, 3, 7))
        expected = writer.connection.exec_driver_sql(nodes, (0, 3, 7)).all()
    assert [row[0] for row in got] == [0, 3, 7]
    assert [tuple(row) for row in got] == [tuple(row) for row in expected]
    assert bytes(got[0][1]) == ledger.entry(0).leaf_hash and got[1][2] and got[2][2]


def test_driver_rows_raises_as_sqlalchemy_would(make_app):
    app = make_app(migrate=False)
    with app.extensions["db_engine"].connect() as conn:
        with pytest.raises(sa.exc.DBAPIError) as raised:
            driver_rows(conn, "SELECT seq FROM ledger_entry", ())
    expected = sa.exc.ProgrammingError if conn.dialect.name == "postgresql" else sa.exc.OperationalError
    assert type(raised.value) is expected


def test_ages_never_fall_where_the_canonical_fast_path_steps_aside():
    """age_days has five decimals: no value in [1e-6, 1e-5), where orjson and JCS
    write floats differently and a check's context would go to the slow
    reference encoder (sub-second-old evidence made checks ~4x slower)."""
    from datetime import datetime, timedelta, timezone

    from governance.policy.context import _age_days
    from ledger.canonical import _fast_path_admits
    from ledger.entry import utc_timestamp

    then = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    ages = [_age_days(then + timedelta(microseconds=us), utc_timestamp(then))
            for us in range(0, 3_000_000, 997)]
    assert not [a for a in ages if 1e-6 <= abs(a) < 1e-5]
    assert _fast_path_admits({"ages": ages})
    assert 0.0 in ages and 1e-5 in ages and max(ages) >= 3e-5  # the range was covered


AWKWARD_TEXT = ['quote " and \\ backslash', "new\nline\ttab\r", "é 中文 🧪 \u2028\u2029", '{"json": [1, "x"]}',
                "", "null", "'; DROP TABLE gov_model; --", "\x01\x1f control"]


def test_awkward_text_and_large_integers_come_back_exactly(app):
    """On PostgreSQL the rows travel as JSON text (one statement for all the
    reads): every string and integer must come back as SQLAlchemy gives it."""
    engine = app.extensions["db_engine"]
    rows = [dict(name=f"m{i}", description=text, owner=text[::-1], intended_use=text * 3,
                 risk_tier="high", uses_personal_data=bool(i % 2), protected_attributes="[]",
                 tags=text, created_at="2026-11-26T00:00:00.000000Z", created_by="tester",
                 seq=2 ** 62 + i)
            for i, text in enumerate(AWKWARD_TEXT)]
    with engine.begin() as conn:  # projection rows written directly: this tests reading them back
        conn.execute(sa.insert(tables.model), rows)
    m = tables.model
    statements = {"all": sa.select(m).where(m.c.created_by == sa.bindparam("by")).order_by(m.c.seq),
                  "newest": sa.select(m.c.seq, m.c.description).where(
                      m.c.created_by == sa.bindparam("by")).order_by(m.c.seq.desc()),
                  "none": sa.select(m.c.name).where(m.c.name == sa.bindparam("by"))}
    expected = _through_sqlalchemy(engine, statements, {"by": "tester"})
    with engine.connect() as conn:
        got = select_all(conn, statements, {"by": "tester"})
    assert [tuple(r) for r in got["all"]] == expected["all"][1] == [tuple(r.values()) for r in rows]
    assert [type(v) for v in got["all"][0]] == [str] * 5 + [bool] + [str] * 4 + [int]
    assert [tuple(r) for r in got["newest"]] == expected["newest"][1]
    assert [tuple(r) for r in got["newest"]][0] == (2 ** 62 + 7, AWKWARD_TEXT[7])
    assert got["none"] == []


@pytest.mark.parametrize("column", [
    sa.Column("at", sa.DateTime()), sa.Column("doc", sa.JSON()), sa.Column("blob", sa.LargeBinary()),
    sa.Column("amount", sa.Numeric()), sa.Column("ratio", sa.Float())])
def test_postgresql_refuses_to_combine_columns_json_would_change(column):
    """Dates, JSON, bytes, decimals and floats would not come back as SQLAlchemy
    gives them through row_to_json: such a statement is refused, not read wrong."""
    from sqlalchemy.dialects.postgresql import psycopg as pg

    from ledger.driver import _PgCombined

    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.BigInteger), column)
    fine = {"a": sa.select(table.c.id), "b": sa.select(table.c.id)}
    assert "ARRAY(SELECT row_to_json(s)::text" in _PgCombined(pg.dialect(), fine).sql
    with pytest.raises(ValueError, match="do not all come back exactly through JSON"):
        _PgCombined(pg.dialect(), {"a": sa.select(table.c.id), "b": sa.select(table)})
    twice = sa.select(table.c.id, table.c.id.label("id2"), sa.literal_column("1").label("id2"))
    with pytest.raises(ValueError, match="do not all come back"):
        _PgCombined(pg.dialect(), {"a": sa.select(table.c.id), "b": twice})

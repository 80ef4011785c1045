"""The PySpark backend's dispatch, session resolution and warning/error paths.

Spark itself is not run here: a minimal stand-in ``pyspark`` package (a ``DataFrame`` class and
a ``SparkSession`` with an active-session slot) is put on ``sys.path`` so that the backend
module imports, and the recorded reader calls show what a read asks of Spark.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

import rivers as rs
from rivers.io_handlers.delta import DeltaIOHandler
from rivers.io_handlers.delta.base import DeltaWriteRequest

FAKE_PYSPARK_SQL = """
class DataFrame:
    def __init__(self, calls=None):
        self.calls = calls if calls is not None else []

    def filter(self, condition):
        self.calls.append(("filter", condition))
        return self

    def select(self, *columns):
        self.calls.append(("select", columns))
        return self


class _Reader:
    def __init__(self, calls):
        self.calls = calls

    def format(self, name):
        self.calls.append(("format", name))
        return self

    def option(self, key, value):
        self.calls.append(("option", key, value))
        return self

    def load(self, path):
        self.calls.append(("load", path))
        return DataFrame(self.calls)


class SparkSession:
    _active = None

    def __init__(self):
        self.calls = []
        self.read = _Reader(self.calls)

    @classmethod
    def getActiveSession(cls):
        return cls._active
"""

MODULES = ("pyspark", "pyspark.sql", "rivers.io_handlers.delta.pyspark")


@pytest.fixture
def fake_pyspark(tmp_path, monkeypatch):
    """Makes the stand-in ``pyspark`` importable; yields its ``pyspark.sql`` module."""
    package = tmp_path / "fake_site" / "pyspark"
    (package / "sql").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sql" / "__init__.py").write_text(textwrap.dedent(FAKE_PYSPARK_SQL))
    monkeypatch.syspath_prepend(str(tmp_path / "fake_site"))
    # delta-spark is absent: building a local session must fail with the install hint.
    monkeypatch.setitem(sys.modules, "delta", None)
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    import pyspark.sql

    yield pyspark.sql
    for name in MODULES:
        sys.modules.pop(name, None)


def request(mode: str = "overwrite", **overrides) -> DeltaWriteRequest:
    fields = {
        "table_uri": "/lake/events",
        "table_name": "events",
        "delta_write_mode": mode,
        "schema_mode": None,
        "predicate": None,
        "partition_by": None,
        "table_configuration": None,
        "writer_properties": None,
        "commit_properties": None,
        "merge_config": None,
        "merge_predicate_override": None,
        "storage_options": None,
    }
    fields.update(overrides)
    return DeltaWriteRequest(**fields)


def test_without_pyspark_spark_frames_name_the_extra(lake, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.delitem(sys.modules, "rivers.io_handlers.delta.pyspark", raising=False)
    SparkFrame = type("DataFrame", (), {"__module__": "pyspark.sql.dataframe"})

    handler = DeltaIOHandler(table_uri=lake)

    assert not any(tp.__module__.startswith("pyspark") for tp in DeltaIOHandler.type_handlers())
    with pytest.raises(TypeError, match=r"pyspark\.DataFrame.*pip install rivers\[pyspark\]"):
        handler.load_input(rs.InputContext("events", "report", type_hint=SparkFrame))


def test_spark_frames_dispatch_to_the_pyspark_backend_last(fake_pyspark):
    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    session = fake_pyspark.SparkSession()
    handlers = DeltaIOHandler.type_handlers({"spark_session": session})

    assert list(handlers)[-1] is fake_pyspark.DataFrame
    backend = handlers[fake_pyspark.DataFrame]
    assert isinstance(backend, PySparkDeltaTypeHandler)
    assert backend.spark is session
    assert list(backend.supported_types) == [fake_pyspark.DataFrame]


def test_read_filters_selects_and_time_travels_with_the_given_session(fake_pyspark, lake):
    session = fake_pyspark.SparkSession()
    handler = DeltaIOHandler(table_uri=lake, handler_config={"spark_session": session})
    ctx = rs.InputContext(
        "events",
        "report",
        asset_metadata={"delta/columns": '["id", "kind"]', "delta/version": "3"},
        type_hint=fake_pyspark.DataFrame,
    )

    frame = handler.load_input(ctx)

    assert isinstance(frame, fake_pyspark.DataFrame)
    assert session.calls == [
        ("format", "delta"),
        ("option", "versionAsOf", 3),
        ("load", f"{lake}/events"),
        ("select", ("id", "kind")),
    ]


def test_read_applies_the_partition_predicate_as_a_filter(fake_pyspark):
    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    session = fake_pyspark.SparkSession()

    PySparkDeltaTypeHandler(session).load_input(
        "/lake/events", "events", None, "region = 'north'", fake_pyspark.DataFrame
    )

    assert session.calls == [("format", "delta"), ("load", "/lake/events"), ("filter", "region = 'north'")]


def test_missing_session_warns_and_uses_the_active_one(fake_pyspark):
    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    active = fake_pyspark.SparkSession()
    fake_pyspark.SparkSession._active = active
    backend = PySparkDeltaTypeHandler()

    with pytest.warns(UserWarning, match="using the active SparkSession"):
        assert backend.spark is active
    assert backend.spark is active  # resolved once


def test_no_session_and_no_delta_spark_is_an_import_error(fake_pyspark):
    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    backend = PySparkDeltaTypeHandler()

    with pytest.warns(UserWarning, match="no handler_config"):
        with pytest.raises(ImportError, match=r"pip install rivers\[delta-pyspark\]"):
            backend.spark  # noqa: B018


def test_storage_options_are_ignored_with_a_warning(fake_pyspark, lake):
    session = fake_pyspark.SparkSession()
    handler = DeltaIOHandler(
        table_uri=lake, storage_options={"AWS_REGION": "eu-west-1"}, handler_config={"spark_session": session}
    )

    with pytest.warns(UserWarning, match="ignores storage_options"):
        handler.load_input(rs.InputContext("events", "report", type_hint=fake_pyspark.DataFrame))


def test_write_rejects_non_spark_frames(fake_pyspark):
    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    backend = PySparkDeltaTypeHandler(fake_pyspark.SparkSession())

    with pytest.raises(TypeError, match="writes pyspark.sql.DataFrame"):
        backend.handle_output(rs.OutputContext("events"), [{"id": 1}], request())


def test_create_or_replace_is_not_supported(fake_pyspark):
    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    backend = PySparkDeltaTypeHandler(fake_pyspark.SparkSession())

    with pytest.raises(ValueError, match="create_or_replace' is not supported by the PySpark"):
        backend.handle_output(rs.OutputContext("events"), fake_pyspark.DataFrame(), request("create_or_replace"))


def test_write_warns_about_ignored_writer_settings(fake_pyspark):
    from deltalake import CommitProperties, WriterProperties

    from rivers.io_handlers.delta.pyspark import PySparkDeltaTypeHandler

    backend = PySparkDeltaTypeHandler(fake_pyspark.SparkSession())
    settings = request(writer_properties=WriterProperties(), commit_properties=CommitProperties())

    # The stand-in has no delta.tables, so the write stops right after the warning.
    with pytest.warns(UserWarning, match="ignores writer_properties, commit_properties"):
        with pytest.raises(ImportError):
            backend.handle_output(rs.OutputContext("events"), fake_pyspark.DataFrame(), settings)

"""Where handler fields come from (storage-and-io.md "BaseIOHandler", R41; docs/getting-started.md):
user handlers read environment variables named after their fields, the built-in handlers read
only their arguments and defaults."""

import pydantic
import pytest
from obstore.store import MemoryStore
from pydantic_settings import SettingsConfigDict

import rivers as rs


class UserHandler(rs.BaseIOHandler):
    mode: str = "overwrite"
    prefix: str = ""

    def handle_output(self, context, obj):
        pass

    def load_input(self, context):
        return None


class PrefixedHandler(UserHandler):
    model_config = SettingsConfigDict(env_prefix="LAKE_")


class QuietPickle(rs.PickleIOHandler):
    pass


@pytest.fixture
def generic_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MODE", "append")
    monkeypatch.setenv("PREFIX", "from-env")
    monkeypatch.setenv("TABLE_URI", str(tmp_path / "from-env"))
    monkeypatch.setenv("SCHEMA_MODE", "merge")


def test_user_handlers_read_fields_from_the_environment(generic_environment):
    handler = UserHandler()
    assert (handler.mode, handler.prefix) == ("append", "from-env")
    assert UserHandler(mode="error").mode == "error"


def test_a_user_handler_s_model_config_chooses_the_prefix(generic_environment, monkeypatch):
    monkeypatch.setenv("LAKE_MODE", "ignore")
    assert PrefixedHandler().mode == "ignore"
    assert PrefixedHandler().prefix == ""


def test_the_pickle_handler_ignores_the_environment(generic_environment):
    handler = rs.PickleIOHandler(store=MemoryStore())
    assert handler.prefix == ""
    assert QuietPickle(store=MemoryStore()).prefix == ""
    assert rs.PickleIOHandler(store=MemoryStore(), prefix="explicit").prefix == "explicit"


def test_the_in_memory_handler_ignores_the_environment(generic_environment):
    assert rs.InMemoryIOHandler().model_dump() == {}


def test_the_delta_handler_ignores_the_environment(generic_environment, tmp_path):
    from rivers.io_handlers.delta import DeltaIOHandler

    handler = DeltaIOHandler(table_uri=str(tmp_path / "lake"))
    assert handler.mode == "overwrite"
    assert handler.schema_mode is None
    assert DeltaIOHandler(table_uri=str(tmp_path / "lake"), mode="append").mode == "append"
    # A required field is never filled from the environment either.
    with pytest.raises(pydantic.ValidationError, match="table_uri"):
        DeltaIOHandler()


def test_the_built_in_handlers_ignore_dotenv_files(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PREFIX=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    assert rs.PickleIOHandler(store=MemoryStore()).prefix == ""

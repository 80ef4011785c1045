"""``rs.BashTask`` (graph-and-tasks.md "rs.BashTask", R8-R12): direct calls, shell and argv commands,
environment, working directory, output decoding, errors, the decorator form, pickling, and bash tasks run as
standalone steps.

Everything rivers-specific is built inside the tests so that a missing feature fails its own tests only.
"""

import os
import pickle
import sys

import pytest

import rivers as rs
from rivers.exceptions import ExecutionError, GraphValidationError, TaskDefinitionError


def _step_event_types(repo, run_id, node):
    return [e.event_type for e in repo.storage.get_events_for_run(run_id) if e.asset_key == node]


def _unrelated_asset():
    @rs.Asset
    def unrelated() -> int:
        return 0

    return unrelated


# --------------------------------------------------------------------------- direct call: output


def test_direct_call_returns_stdout_without_trailing_newline():
    assert rs.BashTask("hi", command="echo hi")() == "hi"
    assert rs.BashTask("e", command="echo hello")() == "hello"


def test_output_without_trailing_newline_is_unchanged():
    assert rs.BashTask("no_newline", command="printf abc")() == "abc"


def test_all_trailing_newlines_are_stripped():
    assert rs.BashTask("many", command="printf 'a\\n\\n\\n'")() == "a"


def test_trailing_crlf_is_stripped():
    assert rs.BashTask("crlf", command="printf 'line\\r\\n'")() == "line"


def test_inner_newlines_and_surrounding_spaces_are_kept():
    assert rs.BashTask("lines", command="printf 'a\\nb\\n'")() == "a\nb"
    assert rs.BashTask("spaces", command="printf '  padded  \\n'")() == "  padded  "


def test_empty_stdout_gives_empty_string():
    assert rs.BashTask("silent", command="true")() == ""


def test_stdout_is_decoded_as_utf8():
    assert rs.BashTask("utf8", command="printf 'caf\\303\\251\\n'")() == "café"


def test_undecodable_bytes_are_replaced():
    assert rs.BashTask("binary", command="printf '\\377ok'")() == "\ufffdok"


def test_stderr_of_a_successful_command_is_not_part_of_the_output():
    assert rs.BashTask("noisy", command="echo out; echo err >&2")() == "out"


# --------------------------------------------------------------------------- shell string vs argv list


def test_string_command_runs_through_a_shell():
    assert rs.BashTask("arith", command="echo $((6 * 7))")() == "42"
    assert rs.BashTask("pipe", command="echo hello | tr a-z A-Z")() == "HELLO"


def test_string_command_supports_redirection(tmp_path):
    task = rs.BashTask("redirect", command="echo hidden > out.txt; cat out.txt", cwd=str(tmp_path))
    assert task() == "hidden"
    assert (tmp_path / "out.txt").read_text() == "hidden\n"


def test_list_command_is_not_shell_interpreted():
    assert rs.BashTask("literal", command=["echo", "$HOME"])() == "$HOME"
    assert rs.BashTask("no_pipe", command=["echo", "a", "|", "b"])() == "a | b"


def test_list_command_runs_argv_directly():
    assert rs.BashTask("py", command=[sys.executable, "-c", "print(6 * 7)"])() == "42"


# --------------------------------------------------------------------------- env and cwd


def test_env_values_are_visible_to_the_command():
    task = rs.BashTask("env_var", command="echo $RIVERS_BT_VALUE", env={"RIVERS_BT_VALUE": "from-env"})
    assert task() == "from-env"


def test_env_values_are_visible_to_an_argv_command():
    task = rs.BashTask("env_argv", command=["printenv", "RIVERS_BT_VALUE"], env={"RIVERS_BT_VALUE": "argv-env"})
    assert task() == "argv-env"


def test_env_is_layered_on_the_inherited_environment(monkeypatch):
    monkeypatch.setenv("RIVERS_BT_INHERITED", "from-parent")
    task = rs.BashTask("layered", command="echo $RIVERS_BT_INHERITED-$RIVERS_BT_EXTRA", env={"RIVERS_BT_EXTRA": "x"})
    assert task() == "from-parent-x"


def test_env_overrides_an_inherited_variable(monkeypatch):
    monkeypatch.setenv("RIVERS_BT_LAYER", "inherited")
    task = rs.BashTask("override", command="echo $RIVERS_BT_LAYER", env={"RIVERS_BT_LAYER": "override"})
    assert task() == "override"


def test_without_env_the_command_inherits_the_environment(monkeypatch):
    monkeypatch.setenv("RIVERS_BT_ONLY_PARENT", "visible")
    assert rs.BashTask("inherits", command="echo $RIVERS_BT_ONLY_PARENT")() == "visible"


def test_cwd_sets_the_working_directory(tmp_path):
    (tmp_path / "marker.txt").write_text("x")
    assert rs.BashTask("where", command="pwd -P", cwd=str(tmp_path))() == os.path.realpath(tmp_path)
    assert rs.BashTask("listing", command=["ls"], cwd=str(tmp_path))() == "marker.txt"


def test_without_cwd_the_command_inherits_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rs.BashTask("here", command="pwd -P")() == os.path.realpath(tmp_path)


# --------------------------------------------------------------------------- direct call: errors


def test_non_zero_exit_raises_os_error_with_stderr_and_exit_code():
    failing = rs.BashTask("failing", command="echo oops >&2; exit 42")
    with pytest.raises(OSError) as excinfo:
        failing()
    message = str(excinfo.value)
    assert "oops" in message
    assert "42" in message


def test_non_zero_exit_of_an_argv_command_raises_os_error():
    failing = rs.BashTask("argv_failing", command=[sys.executable, "-c", "import sys; sys.exit('argv trouble')"])
    with pytest.raises(OSError, match="argv trouble"):
        failing()


def test_missing_executable_raises_os_error():
    with pytest.raises(OSError):
        rs.BashTask("missing_exe", command=["rivers-no-such-executable-7f3a"])()


def test_unknown_shell_command_raises_os_error():
    with pytest.raises(OSError):
        rs.BashTask("missing_cmd", command="rivers-no-such-executable-7f3a --flag")()


def test_missing_cwd_raises_os_error(tmp_path):
    task = rs.BashTask("nowhere", command="echo hi", cwd=str(tmp_path / "does-not-exist"))
    with pytest.raises(OSError):
        task()


@pytest.mark.parametrize(
    "call",
    [lambda t: t("extra"), lambda t: t(flag=True), lambda t: t(1, 2)],
    ids=["positional", "keyword", "two-positional"],
)
def test_direct_call_rejects_arguments(call):
    task = rs.BashTask("strict", command="echo hi")
    with pytest.raises(TypeError):
        call(task)


# --------------------------------------------------------------------------- decorator form


def test_decorator_form_is_named_after_the_function_and_never_runs_its_body(tmp_path):
    body_calls = []

    @rs.BashTask(command="echo hi", cwd=str(tmp_path), env={"A": "1"}, tags=["shell"])
    def say_hi():
        body_calls.append("ran")

    assert isinstance(say_hi, rs.BashTask)
    assert say_hi.name == "say_hi"
    assert say_hi.command == "echo hi"
    assert say_hi.env == {"A": "1"}
    assert say_hi.cwd == str(tmp_path)
    assert say_hi.tags == ["shell"]
    assert say_hi() == "hi"
    assert body_calls == []


def test_decorator_form_with_list_command_and_env():
    @rs.BashTask(command=[sys.executable, "-c", "print(6 * 7)"], env={"PYTHONUNBUFFERED": "1"})
    def answer(): ...

    assert answer.name == "answer"
    assert answer() == "42"


def test_explicit_name_given_to_the_decorator_wins():
    @rs.BashTask(name="explicit", command="echo named")
    def function_name(): ...

    assert isinstance(function_name, rs.BashTask)
    assert function_name.name == "explicit"
    assert function_name() == "named"


def test_nameless_unapplied_bash_task_cannot_be_called():
    pending = rs.BashTask(command="echo hi")
    with pytest.raises(TaskDefinitionError):
        pending()


def test_nameless_unapplied_bash_task_cannot_be_registered():
    pending = rs.BashTask(command="echo hi")
    with pytest.raises(TaskDefinitionError):
        rs.CodeRepository(assets=[], tasks=[pending], default_executor=rs.Executor.in_process()).validate()


# --------------------------------------------------------------------------- properties and pickling


def test_constructor_properties_reflect_arguments(tmp_path):
    task = rs.BashTask(
        "snapshot",
        command=["pg_dump", "--schema-only", "shop"],
        env={"PGHOST": "db"},
        cwd=str(tmp_path),
        tags=["db", "nightly"],
    )
    assert task.name == "snapshot"
    assert task.command == ["pg_dump", "--schema-only", "shop"]
    assert task.env == {"PGHOST": "db"}
    assert task.cwd == str(tmp_path)
    assert task.tags == ["db", "nightly"]


def test_property_defaults():
    task = rs.BashTask("plain", command="echo plain")
    assert task.name == "plain"
    assert task.command == "echo plain"
    assert task.env is None
    assert task.cwd is None
    assert task.tags is None


def test_name_and_command_may_be_keywords():
    task = rs.BashTask(name="kw", command="echo kw")
    assert task.name == "kw"
    assert task() == "kw"


def test_bash_task_survives_a_pickle_round_trip(tmp_path):
    task = rs.BashTask(
        "roundtrip", command="echo $RIVERS_BT_P-$(basename $(pwd))", env={"RIVERS_BT_P": "v"}, cwd=str(tmp_path)
    )
    clone = pickle.loads(pickle.dumps(task))
    assert isinstance(clone, rs.BashTask)
    assert (clone.name, clone.command, clone.env, clone.cwd, clone.tags) == (
        task.name,
        task.command,
        task.env,
        task.cwd,
        task.tags,
    )
    assert clone() == task() == f"v-{tmp_path.name}"


def test_decorator_form_bash_task_survives_a_pickle_round_trip():
    @rs.BashTask(command=["echo", "decorated"], tags=["t"])
    def decorated(): ...

    clone = pickle.loads(pickle.dumps(decorated))
    assert clone.name == "decorated"
    assert clone.command == ["echo", "decorated"]
    assert clone.tags == ["t"]
    assert clone() == "decorated"


# --------------------------------------------------------------------------- construction errors


def test_missing_command_is_a_type_error():
    with pytest.raises(TypeError):
        rs.BashTask("no_command")


@pytest.mark.parametrize(
    "command",
    ["", [], ["echo", 3], ["echo", None], 42],
    ids=["empty-string", "empty-list", "int-in-list", "none-in-list", "not-a-string"],
)
def test_bad_command_is_a_task_definition_error(command):
    with pytest.raises(TaskDefinitionError):
        rs.BashTask("bad", command=command)


@pytest.mark.parametrize(
    "env",
    [{"A": 1}, {1: "a"}, {"A": None}],
    ids=["int-value", "int-key", "none-value"],
)
def test_bad_env_is_a_task_definition_error(env):
    with pytest.raises(TaskDefinitionError):
        rs.BashTask("bad_env", command="echo hi", env=env)


@pytest.mark.parametrize("name", ["a/b", "a[0]", "x]", ""])
def test_reserved_or_empty_name_is_a_task_definition_error(name):
    with pytest.raises(TaskDefinitionError):
        rs.BashTask(name, command="echo hi")


def test_io_handler_of_wrong_type_is_a_task_definition_error():
    with pytest.raises(TaskDefinitionError):
        rs.BashTask("bad_handler", command="echo hi", io_handler=object())


def test_bash_tasks_do_not_accept_hooks():
    @rs.Hook.success
    def on_ok(ctx):
        pass

    with pytest.raises(TypeError):
        rs.BashTask("hooked", command="echo hi", hooks=[on_ok])


# --------------------------------------------------------------------------- as a standalone step


def test_standalone_bash_task_runs_when_named_and_is_loadable(make_repo):
    task = rs.BashTask("greeting", command="echo hello")
    repo = make_repo([_unrelated_asset()], tasks=[task])
    result = repo.materialize(selection=["greeting"])
    assert result.success
    assert result.materialized_assets == ["greeting"]
    assert repo.load_node("greeting") == "hello"


def test_standalone_bash_task_does_not_run_without_selection(make_repo, tmp_path):
    task = rs.BashTask("toucher", command="touch touched.txt; echo done", cwd=str(tmp_path))
    repo = make_repo([_unrelated_asset()], tasks=[task])
    result = repo.materialize()
    assert result.success
    assert "toucher" not in result.materialized_assets
    assert not (tmp_path / "touched.txt").exists()


def test_decorator_form_bash_task_as_a_step(make_repo):
    @rs.BashTask(command="echo from-decorator")
    def decorated_step(): ...

    repo = make_repo([_unrelated_asset()], tasks=[decorated_step])
    repo.materialize(selection=["decorated_step"])
    assert repo.load_node("decorated_step") == "from-decorator"


def test_bash_step_uses_env_and_cwd(make_repo, tmp_path):
    task = rs.BashTask(
        "located", command="echo $RIVERS_BT_STEP:$(pwd -P)", env={"RIVERS_BT_STEP": "s"}, cwd=str(tmp_path)
    )
    repo = make_repo([_unrelated_asset()], tasks=[task])
    repo.materialize(selection=["located"])
    assert repo.load_node("located") == f"s:{os.path.realpath(tmp_path)}"


def test_bash_step_output_is_written_through_its_io_handler(make_repo, recording_handler):
    task = rs.BashTask("handled", command="printf 'x\\n'", io_handler=recording_handler)
    repo = make_repo([_unrelated_asset()], tasks=[task])
    repo.materialize(selection=["handled"])
    assert [(w["asset_name"], w["value"]) for w in recording_handler.writes] == [("handled", "x")]
    assert repo.io_handler_for_output("handled") is recording_handler


def test_bash_step_io_handler_string_resolves_from_resources(make_repo, recording_handler):
    task = rs.BashTask("handled", command="echo y", io_handler="bucket")
    repo = make_repo([_unrelated_asset()], tasks=[task], resources={"bucket": recording_handler})
    assert repo.io_handler_for_output("handled") is recording_handler
    repo.materialize(selection=["handled"])
    assert [w["value"] for w in recording_handler.writes] == ["y"]


def test_downstream_asset_receives_the_stdout_string(make_repo):
    task = rs.BashTask("raw_count", command="echo 41")

    @rs.Asset
    def incremented(raw_count: str) -> int:
        assert isinstance(raw_count, str)
        return int(raw_count) + 1

    repo = make_repo([incremented], tasks=[task])
    result = repo.materialize(selection=["raw_count", "incremented"])
    assert result.success
    assert repo.load_node("incremented") == 42


def test_job_listing_a_bash_task_executes_it(make_repo):
    task = rs.BashTask("stamp", command="echo stamped")
    job = rs.Job(name="stamping", assets=[task], executor=rs.Executor.in_process())
    repo = make_repo([_unrelated_asset()], tasks=[task], jobs=[job])
    result = repo.get_job("stamping").execute()
    assert result.success
    assert repo.load_node("stamp") == "stamped"


def test_failing_bash_step_makes_materialize_raise_execution_error(make_repo):
    failing = rs.BashTask("failing", command="echo oops >&2; exit 3")
    repo = make_repo([_unrelated_asset()], tasks=[failing])
    with pytest.raises(ExecutionError, match="failing"):
        repo.materialize(selection=["failing"])


def test_failing_bash_step_is_reported_without_raising(make_repo):
    failing = rs.BashTask("failing", command="echo oops >&2; exit 3")

    @rs.Asset
    def after(failing: str) -> str:
        return failing

    repo = make_repo([after], tasks=[failing])
    result = repo.materialize(selection=["failing", "after"], raise_on_error=False)
    assert not result.success
    assert [name for name, _ in result.failed_assets] == ["failing"]
    assert _step_event_types(repo, result.run_id, "after") == ["StepSkipped"]
    failure = [
        e
        for e in repo.storage.get_events_for_run(result.run_id)
        if e.event_type == "StepFailure" and e.asset_key == "failing"
    ]
    assert len(failure) == 1
    assert dict(failure[0].metadata)["rivers/failure_reason"] == "error"


@pytest.mark.parametrize(
    "kwargs",
    [{"command": ["rivers-no-such-executable-7f3a"]}, {"command": "echo hi", "cwd": "/rivers/no/such/dir"}],
    ids=["missing-executable", "missing-cwd"],
)
def test_bash_step_that_cannot_start_fails_the_step(make_repo, kwargs):
    task = rs.BashTask("unstartable", **kwargs)
    repo = make_repo([_unrelated_asset()], tasks=[task])
    result = repo.materialize(selection=["unstartable"], raise_on_error=False)
    assert not result.success
    assert [name for name, _ in result.failed_assets] == ["unstartable"]


def test_bash_step_retry_policy_is_applied(make_repo, tmp_path):
    task = rs.BashTask(
        "stubborn",
        command="echo attempt >> attempts.txt; exit 1",
        cwd=str(tmp_path),
        retry=rs.RetryPolicy(max_retries=2),
    )
    repo = make_repo([_unrelated_asset()], tasks=[task])
    result = repo.materialize(selection=["stubborn"], raise_on_error=False)
    assert not result.success
    assert (tmp_path / "attempts.txt").read_text().splitlines() == ["attempt"] * 3
    kinds = _step_event_types(repo, result.run_id, "stubborn")
    assert kinds.count("StepRetry") == 2
    assert kinds[-1] == "StepFailure"


def test_bash_step_succeeds_on_retry(make_repo, tmp_path):
    task = rs.BashTask(
        "second_time",
        command="if [ -e seen ]; then echo second; else touch seen; exit 1; fi",
        cwd=str(tmp_path),
        retry=rs.RetryPolicy(max_retries=1),
    )
    repo = make_repo([_unrelated_asset()], tasks=[task])
    result = repo.materialize(selection=["second_time"])
    assert result.success
    assert repo.load_node("second_time") == "second"
    assert _step_event_types(repo, result.run_id, "second_time").count("StepRetry") == 1


def test_stderr_of_a_successful_bash_step_is_captured_into_its_logs(make_repo):
    task = rs.BashTask("warns", command="echo result; echo careful-now >&2")
    repo = make_repo([_unrelated_asset()], tasks=[task])
    result = repo.materialize(selection=["warns"])
    assert repo.load_node("warns") == "result"
    rows = {row.step_key: row for row in repo.storage.get_run_logs(result.run_id)}
    assert "careful-now" in (rows["warns"].stderr or "")
    events_text = " ".join(str(e.metadata) for e in repo.storage.get_events_for_run(result.run_id))
    assert "careful-now" not in events_text


def test_bash_task_name_conflicting_with_an_asset_is_rejected():
    clash = rs.BashTask("unrelated", command="echo clash")
    with pytest.raises(GraphValidationError):
        rs.CodeRepository(
            assets=[_unrelated_asset()], tasks=[clash], default_executor=rs.Executor.in_process()
        ).validate()


# --------------------------------------------------------------------------- parallel executor


def test_bash_step_runs_identically_under_the_parallel_executor():
    from . import graph_parallel_defs as defs

    defs.clear_store()
    repo = rs.CodeRepository(
        assets=[defs.par_greeting_upper],
        tasks=[defs.par_greeting],
        default_executor=rs.Executor.parallel(max_workers=2),
    )
    repo.resolve(storage=rs.Storage.memory())
    try:
        result = repo.materialize(selection=["par_greeting", "par_greeting_upper"])
        assert result.success
        assert repo.load_node("par_greeting") == "parallel hello"
        assert repo.load_node("par_greeting_upper") == "PARALLEL HELLO"
    finally:
        repo.shutdown()

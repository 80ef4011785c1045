"""Code-location identity (platform.md §2, R31): a cloud deployment refuses to write without
``RIVERS_CODE_LOCATION_ID``; a dev one writes under a default identity; locations with their
own identities share one SurrealDB server."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import rivers as rs

    @rs.Asset
    def orders():
        return [1, 2]

    repo = rs.CodeRepository(assets=[orders])
    try:
        remote = sys.argv[1] == "remote"
        storage = rs.Storage.connect(sys.argv[2]) if remote else rs.Storage.embedded(sys.argv[1])
        repo.resolve(storage=storage)
        result = repo.materialize()
        print("ran", result.success, len(storage.get_runs()))
    except Exception as error:
        print("error", type(error).__name__, error)
    """
)


def run(env: dict[str, str], *args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("RIVERS_DEPLOYMENT", "RIVERS_CODE_LOCATION_ID")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_cloud_without_an_identity_fails_before_writing_anything(tmp_path):
    store = str(tmp_path / "store")
    out = run({"RIVERS_DEPLOYMENT": "cloud"}, store)
    assert out.startswith("error StorageError"), out
    assert "RIVERS_CODE_LOCATION_ID" in out and "RIVERS_DEPLOYMENT=cloud" in out, out
    # Nothing was written under a default identity: a dev process finds no run.
    assert run({}, store) == "ran True 1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "ran True 1"),
        ({"RIVERS_DEPLOYMENT": "dev"}, "ran True 1"),
        ({"RIVERS_DEPLOYMENT": "cloud", "RIVERS_CODE_LOCATION_ID": "3f1c9a52"}, "ran True 1"),
        ({"RIVERS_CODE_LOCATION_ID": "3f1c9a52"}, "ran True 1"),
    ],
)
def test_a_run_is_written_with_an_identity_or_in_dev(tmp_path, env, expected):
    assert run(env, str(tmp_path / "store")) == expected


def test_an_unknown_deployment_mode_is_refused_by_name(tmp_path):
    out = run({"RIVERS_DEPLOYMENT": "prod"}, str(tmp_path / "store"))
    assert out.startswith("error StorageError"), out
    assert "RIVERS_DEPLOYMENT" in out and '"prod"' in out and '"cloud"' in out, out


def test_two_locations_with_their_own_identities_share_one_server(surreal_server):
    endpoint = surreal_server().endpoint
    first = run({"RIVERS_DEPLOYMENT": "cloud", "RIVERS_CODE_LOCATION_ID": "sales"}, "remote", endpoint)
    second = run({"RIVERS_DEPLOYMENT": "cloud", "RIVERS_CODE_LOCATION_ID": "finance"}, "remote", endpoint)
    assert (first, second) == ("ran True 1", "ran True 2")

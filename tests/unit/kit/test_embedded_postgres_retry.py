"""kit.infra.start_embedded_postgres: an initdb killed by a signal in a folder it initialises is
tried again on an emptied folder (bounded); a cluster that existed is never emptied. The stand-in
for embedded-postgres' get_server only raises what its initdb raised; the real server start is
tested in tests/integration/kit/test_embedded_infrastructure.py."""

import subprocess

import pytest

from kit.infra import start_embedded_postgres


def _killed_initdb(folder):
    (folder / "half-made").write_text("x")
    raise subprocess.CalledProcessError(-11, ["/x/bin/initdb", "-D", str(folder)])


def test_a_killed_initdb_in_a_new_folder_is_tried_again_on_an_empty_folder(tmp_path):
    folder, calls = tmp_path / "pg", []

    def get_server(path, cleanup_mode):
        calls.append(sorted(p.name for p in path.iterdir()))
        if len(calls) == 1:
            _killed_initdb(path)
        return "server"

    assert start_embedded_postgres(folder, get_server) == "server"
    assert calls == [[], []]  # the second try found the folder emptied


def test_it_gives_up_after_the_attempts_and_never_empties_an_existing_cluster(tmp_path):
    folder = tmp_path / "pg"

    def always_killed(path, cleanup_mode):
        _killed_initdb(path)

    with pytest.raises(subprocess.CalledProcessError):
        start_embedded_postgres(folder, always_killed, attempts=2)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "PG_VERSION").write_text("18")
    with pytest.raises(subprocess.CalledProcessError):
        start_embedded_postgres(existing, always_killed)
    assert (existing / "PG_VERSION").exists()

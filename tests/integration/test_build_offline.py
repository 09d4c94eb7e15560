"""`--offline`: requirements downloaded on the host into a cached wheelhouse, staged into the context, installed
with --no-index in the build (tests/data/images/offline fails to build without it)."""
from __future__ import annotations

import pytest

from .build_support import REPO, copy_context, repository, run_cli  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker]


def test_offline_build_installs_from_a_cached_host_wheelhouse(tmp_path, repository):
    context = copy_context(REPO / "tests" / "data" / "images" / "offline", tmp_path / "offline")
    registry, name = repository.split("/", 1)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # a private wheelhouse cache
    args = ["build", str(context), "--name", name, "--registry", registry, "-o", "json"]

    online_tag = run_cli(*args, "--dry-run", env=env).json["images"][0]["tag"]
    first = run_cli(*args, "--offline", env=env)
    assert first.code == 0, first.stderr[-3000:]
    (image,) = first.json["images"]
    assert image["built"] and image["tag"] != online_tag  # the wheels are part of what the tag says

    (wheelhouse,) = (tmp_path / "cache" / "flyte-agents" / "wheelhouse").iterdir()
    assert [p.name for p in wheelhouse.glob("*.whl")] == ["six-1.17.0-py2.py3-none-any.whl"]
    downloaded = (wheelhouse / ".complete").stat().st_mtime_ns

    again = run_cli(*args, "--offline", env=env)
    assert (again.code, again.json["builds"], again.json["images"][0]["tag"]) == (0, 0, image["tag"])
    assert (wheelhouse / ".complete").stat().st_mtime_ns == downloaded  # served from the cache, no new download


def test_offline_without_requirements_is_a_user_error(tmp_path, repository):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    run = run_cli("build", str(context), "--offline", "--name", repository.split("/", 1)[1])
    assert run.code == 2 and "requirements.txt" in run.error

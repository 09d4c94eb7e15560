"""build with the real Docker Engine up: a dry run writes nothing anywhere, and a broken Dockerfile is refused
before anything is built (the unit table runs with no Engine; here one answers and must not be used)."""
from __future__ import annotations

import codecs
import os

import pytest

from .build_support import REPO, copy_context, repository, run_cli  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker]


def tree(root) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_offline_dry_run_downloads_nothing_and_writes_nothing(tmp_path, repository):
    """Before: the dry run pip-downloaded the wheelhouse into the cache (and built local packages in the
    source tree). The index is unreachable here: any download attempt would fail the command."""
    context = copy_context(REPO / "tests" / "data" / "images" / "offline", tmp_path / "offline")
    (tmp_path / "cache").mkdir()
    registry, name = repository.split("/", 1)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_NO_CACHE_DIR": "1"}
    before = tree(tmp_path)
    run = run_cli("build", str(context), "--name", name, "--registry", registry, "--offline", "--dry-run",
                  "-o", "json", env=env)
    assert run.code == 0, run.stderr[-2000:]
    (image,) = run.json["images"]
    assert image["build"] and any("offline wheelhouse not downloaded yet" in r for r in image["reasons"])
    assert tree(tmp_path) == before


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_dockerfile_that_is_not_utf8_is_exit_6_before_any_build(tmp_path, repository, docker_client, encoding):
    context = tmp_path / "ctx"
    context.mkdir()
    text = "FROM scratch\nLABEL note=café\n"
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le") if encoding == "utf-16" else text.encode(encoding)
    (context / "Dockerfile").write_bytes(data)
    images_before = {i.id for i in docker_client.images.list()}
    run = run_cli("build", str(context), "--name", repository.split("/", 1)[1])
    assert (run.code, run.stderr.count("\n")) == (6, 1), run.stderr
    assert run.error.startswith(f"error: Dockerfile {context / 'Dockerfile'} ")
    assert {i.id for i in docker_client.images.list()} == images_before
    assert os.listdir(context) == ["Dockerfile"]

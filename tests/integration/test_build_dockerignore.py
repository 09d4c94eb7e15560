""".dockerignore conformance: the context the pipeline sends against the one the real Docker CLI sends.

Both build `FROM scratch / COPY . /ctx/` from the same directory with a deliberately awkward .dockerignore; the
files that reach the two images must be the same, and the content digest must cover exactly those files.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import uuid

import pytest

from flyte_agents.adapters.docker import DockerEngine
from flyte_agents.workflows import image_tags, images

from .build_support import remove_images

pytestmark = [pytest.mark.docker]

DOCKERIGNORE = r"""# comment line
*.log
!keep.log
build/
secret/*
!secret/public.pem
dir
!dir/keep.txt
other
!**/deep.txt
**/__pycache__
docs/**/*.md
\#hash.txt
  space name.txt
\[x\].txt
.dockerignore
"""

FILES = ["app.py", "debug.log", "keep.log", "build/out.bin", "secret/key", "secret/public.pem", "dir/drop.txt",
         "dir/keep.txt", "other/deep.txt", "pkg/__pycache__/m.pyc", "pkg/mod.py", "docs/a/b/c.md", "docs/a/b/c.txt",
         "docs/top.md", "#hash.txt", "space name.txt", "[x].txt", "x.txt"]


def make_context(root):
    root.mkdir()
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("app.py")
    (root / "empty").mkdir()
    (root / ".dockerignore").write_text(DOCKERIGNORE)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx/\n")
    return root


def files_in_image(docker_client, ref, scratch) -> set[str]:
    archive = scratch / f"{uuid.uuid4().hex}.tar"
    with open(archive, "wb") as out:
        for chunk in docker_client.api.get_image(ref):
            out.write(chunk)
    names = set()
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for layer_name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer_name)) as layer:
                names |= {n.rstrip("/").removeprefix("ctx/") for n in layer.getnames() if n.startswith("ctx/")}
    return names


def test_pipeline_sends_what_the_docker_cli_sends(tmp_path, docker_client):
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        pytest.skip("the docker CLI is not on PATH: it is the reference implementation here")
    context = make_context(tmp_path / "ctx")
    repository = f"fa-test-ignore-{uuid.uuid4().hex[:10]}"
    try:
        # DOCKER_BUILDKIT=0: the CLI's own context walk and tar, sent to the same legacy builder the SDK uses.
        subprocess.run([docker_cli, "build", "-q", "-t", f"{repository}:cli", str(context)], check=True,
                       capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
        spec = images.ImageSpec(context, repository)
        docker = DockerEngine.connect()
        result = images.apply(images.plan([spec], images.Options(), docker), docker)
        ours = files_in_image(docker_client, f"{repository}:{result.images[0].tag}", tmp_path)
        theirs = files_in_image(docker_client, f"{repository}:cli", tmp_path)
        layers = [docker_client.images.get(ref).attrs["RootFS"]["Layers"]
                  for ref in (f"{repository}:{result.images[0].tag}", f"{repository}:cli")]
    finally:
        remove_images(docker_client, repository)

    assert ours == theirs
    # Byte-identical COPY layer: our labelled Dockerfile travelled under a hidden name the daemon removed, so the
    # builder reused the layer `docker build` made (the user's own Dockerfile and all).
    assert layers[0] == layers[1]
    # Spot checks of the rules that surprise people, so a shared misunderstanding cannot pass unnoticed.
    assert {"keep.log", "secret/public.pem", "dir/keep.txt", "docs/a/b/c.txt", "link", "empty"} <= ours
    assert not {"debug.log", "secret/key", "dir/drop.txt", "other/deep.txt", "docs/top.md", "#hash.txt",
                "space name.txt", "[x].txt", ".dockerignore"} & ours
    # The digest covers exactly what the image can see (a directory that is only sent for a re-included file
    # inside it, like dir/, exists by implication of that file's path).
    scanned = image_tags.scan_context(context, context / "Dockerfile")
    digested = {e.path for e in scanned.entries if e.hashed}
    implied = {"/".join(path.split("/")[:i]) for path in digested for i in range(1, path.count("/") + 1)}
    assert digested | implied == ours
    assert "dir" in implied - digested

"""Parsing of the Engine's build and push streams (flyte_agents.adapters.docker), on chunk shapes recorded from
Docker Engine 20.10. The same code runs against the real Engine in tests/integration/test_build*.py; these cases
pin down the shapes a single real run does not produce on demand (a line split across chunks, no aux ID)."""
from __future__ import annotations

import pytest

from flyte_agents.adapters import docker as da
from flyte_agents.errors import BuildStepFailed, DockerfileError


def collect(chunks):
    events = []
    image_id = da._read_build(iter(chunks), events.append)
    return image_id, events


def test_steps_and_output_lines_survive_chunk_boundaries_and_colour_codes():
    image_id, events = collect([
        {"stream": "Step 1/2 : FROM base"}, {"stream": "\n"}, {"stream": " ---> 67a5ab96efcb\nStep 2/2 : RUN x"},
        {"stream": "\n"}, {"stream": "par"}, {"stream": "tial line\n\x1b[91mfrom stderr\n\x1b[0m"},
        {"aux": {"ID": "sha256:abc"}}, {"stream": "Successfully built abc\n"},
    ])
    assert image_id == "sha256:abc"
    assert events == [da.BuildStep(1, 2, "FROM base"), da.BuildOutput(" ---> 67a5ab96efcb"),
                      da.BuildStep(2, 2, "RUN x"), da.BuildOutput("partial line"), da.BuildOutput("from stderr"),
                      da.BuildOutput("Successfully built abc")]


def test_image_id_falls_back_to_the_successfully_built_line():
    assert collect([{"stream": "Successfully built 4edd55b3c11d\n"}])[0] == "4edd55b3c11d"


def test_a_stream_without_an_image_id_fails():
    with pytest.raises(BuildStepFailed, match="without an image ID"):
        collect([{"stream": "Step 1/1 : FROM scratch\n"}])


def test_a_failing_run_step_is_a_step_failure_naming_the_step():
    chunks = [{"stream": "Step 2/3 : RUN exit 3\n"}, {"stream": "output\n"},
              {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}}]
    events = []
    with pytest.raises(BuildStepFailed, match=r"^step 2/3 `RUN exit 3` failed: The command"):
        da._read_build(iter(chunks), events.append)
    assert events[-1] == da.StepFailed(da.BuildStep(2, 3, "RUN exit 3"), events[-1].message)


def test_a_failing_copy_is_a_dockerfile_error():
    chunks = [{"stream": "Step 2/2 : COPY nothere /x\n"}, {"error": "COPY failed: file not found in build context"}]
    with pytest.raises(DockerfileError, match="COPY failed"):
        collect(chunks)


def test_push_error_chunks_fail_and_the_digest_comes_from_aux():
    ok = [{"status": "Pushing", "id": "b416dcbc4b7d", "progressDetail": {"current": 512, "total": 2048}},
          {"progressDetail": {}, "aux": {"Tag": "t", "Digest": "sha256:1b79", "Size": 314}}]
    events = []
    assert da._read_push(iter(ok), events.append, "r:t") == "sha256:1b79"
    assert events == [da.PushProgress("b416dcbc4b7d", "Pushing", 512, 2048)]
    with pytest.raises(da.PushFailed, match="connection refused"):
        da._read_push(iter([{"errorDetail": {"message": "dial tcp: connect: connection refused"}}]), print, "r:t")
    with pytest.raises(da.PushFailed, match="without a manifest digest"):
        da._read_push(iter([{"status": "The push refers to repository [r]"}]), print, "r:t")


@pytest.mark.parametrize("message, transient", [
    ("received unexpected HTTP status: 503 Service Unavailable", True),
    ("received unexpected HTTP status: 502 Bad Gateway", True),
    ("toomanyrequests: 429 Too Many Requests", True),
    ("net/http: TLS handshake timeout", True),
    ("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer", True),
    ("Patch http://r/v2/x/blobs/uploads/1: EOF", True),
    ('Get "http://127.0.0.1:30999/v2/": dial tcp 127.0.0.1:30999: connect: connection refused', False),
    ("dial tcp: lookup nonexistent.invalid: no such host", False),
    ("unauthorized: authentication required", False),
    ("denied: requested access to the resource is denied", False),
    ("manifest blob unknown: blob unknown to registry (sha256:5034fa)", False),
])
def test_only_transient_push_failures_are_retried(message, transient):
    assert da.PushFailed(message).transient is transient

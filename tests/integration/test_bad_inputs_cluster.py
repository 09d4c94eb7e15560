"""KUBECONFIG listing several files, against the real API server (kwok) and real helm 3 and 4: merged the way
kubectl merges them, by our client and by helm, which then gets no --kubeconfig of ours."""
from __future__ import annotations

import yaml

from flyte_agents.adapters.helm import Helm
from flyte_agents.adapters.kube import Kube


def test_several_kubeconfig_files_reach_the_cluster_the_merge_selects(kubeconfig, kube_api, helm, tmp_path,
                                                                      monkeypatch):
    # The first file sets the current context but defines only another one; the context it names lives in the
    # second file (the real cluster). kubectl uses the first current-context and the merged contexts.
    first = tmp_path / "first"
    first.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kwok",
        "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "dead", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'absent'}:{kubeconfig}")
    kube = Kube.connect(None, None)
    try:
        assert kube.context == "kwok"
        assert "kube-root-ca.crt" in kube.config_map_names("default")  # the real API server answered
    finally:
        kube.close()
    location = f"{first}:{kubeconfig}"
    releases = Helm(helm.path, location, "kwok").releases("default")
    assert isinstance(releases, list)  # helm reached the cluster through the merged $KUBECONFIG

"""The version registry on a fake loader: settle before load, latest-N policy, failed pushes, labels, status."""

import os

import pytest

from twotower.serving.models import InvalidArgument, ModelRegistry, NotFound, Servable


def _write_version(root, version, model="m", content="x"):
    path = os.path.join(root, model, str(version))
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
        f.write(content)
    return path


def _loader(model, version, path):
    with open(os.path.join(path, "saved_model.pb")) as f:
        if f.read() == "broken":
            raise ValueError("not a SavedModel")
    return Servable(model, version, path, {}, {})


def _states(registry, model="m"):
    return {s.version: s.state for s in registry.status(model)}


def test_latest_version_served_new_ones_after_they_settle_old_ones_unloaded(tmp_path):
    root = str(tmp_path)
    _write_version(root, 1)
    loads, changes = [], []
    registry = ModelRegistry(
        root, loader=_loader, on_load=lambda *a: loads.append(a[:3]), on_change=lambda: changes.append(1)
    )
    registry.poll()  # the first poll loads what is there
    assert registry.get("m").version == 1 and _states(registry) == {1: "AVAILABLE"}
    _write_version(root, 2)
    registry.poll()  # seen once: may still be being copied
    assert registry.get("m").version == 1 and 2 not in _states(registry)
    registry.poll()  # unchanged since the last poll: load it, then unload 1
    assert registry.get("m").version == 2
    assert _states(registry) == {2: "AVAILABLE", 1: "END"}
    assert loads == [("m", 1, True), ("m", 2, True)]
    assert len(changes) == 2  # the polls that changed what is served
    with pytest.raises(NotFound, match=r"Servable not found for request: Specific\(m, 1\)"):
        registry.get("m", version=1)
    assert registry.loaded() == {("m", "2"): 1.0}


def test_keep_versions_and_labels(tmp_path):
    root = str(tmp_path)
    for v in (1, 2, 3):
        _write_version(root, v)
    registry = ModelRegistry(root, keep_versions=2, labels={"stable": 2, "old": 1}, loader=_loader)
    registry.poll()
    assert sorted(registry.loaded()) == [("m", "2"), ("m", "3")]  # never loads 1: not among the latest 2
    assert registry.get("m").version == 3
    assert registry.get("m", label="stable").version == 2
    with pytest.raises(NotFound, match=r"Specific\(m, 1\)"):
        registry.get("m", label="old")
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: canary"):
        registry.get("m", label="canary")
    assert [s.version for s in registry.status("m")] == [3, 2]


def test_a_broken_push_is_reported_and_the_version_before_keeps_serving(tmp_path):
    root = str(tmp_path)
    _write_version(root, 1)
    registry = ModelRegistry(root, loader=_loader)
    registry.poll()
    _write_version(root, 2, content="broken")
    registry.poll()
    registry.poll()
    assert registry.get("m").version == 1
    (state,) = registry.status("m", version=2)
    assert (state.state, state.error_code) == ("END", "UNKNOWN") and "not a SavedModel" in state.error_message
    registry.poll()  # not retried while its files are unchanged
    assert registry.status("m", version=2)[0].state == "END"
    _write_version(root, 2, content="fixed!")  # a new push of the same version is tried again
    registry.poll()
    registry.poll()
    assert registry.get("m").version == 2 and _states(registry) == {2: "AVAILABLE", 1: "END"}


def test_a_deleted_version_is_unloaded_and_unknown_models_are_404(tmp_path):
    root = str(tmp_path)
    _write_version(root, 1)
    _write_version(root, 1, model="other")
    os.makedirs(os.path.join(root, "m", "not-a-version"))
    registry = ModelRegistry(root, loader=_loader)
    registry.poll()
    assert sorted(registry.loaded()) == [("m", "1"), ("other", "1")]
    import shutil

    shutil.rmtree(os.path.join(root, "other", "1"))
    registry.poll()
    assert sorted(registry.loaded()) == [("m", "1")]
    with pytest.raises(NotFound, match=r"Latest\(other\)"):
        registry.get("other")
    with pytest.raises(NotFound, match="Could not find any versions of model nope"):
        registry.status("nope")
    with pytest.raises(NotFound, match="Could not find version 9 of model m"):
        registry.status("m", version=9)


def test_only_named_models_are_served_and_a_missing_dir_is_not_an_error(tmp_path):
    root = str(tmp_path)
    _write_version(root, 1, model="a")
    _write_version(root, 1, model="b")
    registry = ModelRegistry(root, model_names=("b", "later"), loader=_loader)
    registry.poll()
    assert sorted(registry.loaded()) == [("b", "1")]
    ModelRegistry(str(tmp_path / "none"), loader=_loader).poll()

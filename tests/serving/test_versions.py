"""Which directories are versions, which versions serve from the first poll, and what the status API shows."""

import logging
import os

from twotower.serving.models import ModelRegistry, Servable
from twotower.serving.versions import escaping_link, is_version_name


def _write_version(root, version, model="m", content="x"):
    path = os.path.join(root, model, str(version))
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
        f.write(content)
    return path


def _loader(model, version, path):
    with open(os.path.join(path, "saved_model.pb")) as f:
        if f.read() == "broken":
            raise ValueError(f"not a SavedModel: {os.path.abspath(path)}/saved_model.pb")
    return Servable(model, version, path, {}, {})


def test_only_ascii_digit_names_are_versions():
    assert is_version_name("1") and is_version_name("0042")
    assert not any(is_version_name(n) for n in ("²", "١", "١٢", "1²", "-1", "+1", " 1", "1.0", "", "9" * 19))


def test_other_names_are_ignored_with_one_warning_and_never_break_a_poll(tmp_path, caplog):
    root = str(tmp_path)
    _write_version(root, 1)
    for name in ("²", "١", "tmp-push"):  # int("²") raises; int("١") == 1 would alias version 1
        os.makedirs(os.path.join(root, "m", name))
        with open(os.path.join(root, "m", name, "saved_model.pb"), "w") as f:
            f.write("x")
    registry = ModelRegistry(root, loader=_loader)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            registry.poll()
    assert registry.loaded() == {("m", "1"): 1.0}
    warned = [r.getMessage() for r in caplog.records if "not a version" in r.getMessage()]
    assert len(warned) == 3 and any("²" in w for w in warned)  # one each, not one per poll
    _write_version(root, 2)
    registry.poll()
    registry.poll()
    assert registry.get("m").version == 2  # new versions still load: polling goes on


def test_a_broken_newest_version_is_passed_over_from_the_first_poll(tmp_path):
    root = str(tmp_path)
    _write_version(root, 1)
    _write_version(root, 2)
    _write_version(root, 3, content="broken")
    registry = ModelRegistry(root, loader=_loader)
    registry.poll()  # the only poll with --poll-seconds 0
    assert registry.get("m").version == 2
    assert {s.version: s.state for s in registry.status("m")} == {3: "END", 2: "AVAILABLE"}
    two = ModelRegistry(root, keep_versions=2, loader=_loader)
    two.poll()
    assert sorted(two.loaded()) == [("m", "1"), ("m", "2")]


def test_status_messages_name_paths_relative_to_the_serving_dir(tmp_path):
    root = str(tmp_path / "serving")
    _write_version(root, 1, content="broken")
    registry = ModelRegistry(root, loader=_loader)
    registry.poll()
    (state,) = registry.status("m")
    assert state.error_message == "m/1: ValueError: not a SavedModel: m/1/saved_model.pb"
    assert str(tmp_path) not in state.error_message


def test_symlinks_leading_outside_the_serving_dir_are_refused_unless_followed(tmp_path, caplog):
    root, outside = str(tmp_path / "serving"), str(tmp_path / "elsewhere")
    _write_version(root, 1)
    _write_version(outside, 7)
    os.symlink(os.path.join(outside, "m", "7"), os.path.join(root, "m", "2"))  # a version dir pointing out
    three = _write_version(root, 3)
    os.symlink(os.path.join(outside, "m", "7", "variables"), os.path.join(three, "assets"))  # a link inside one
    os.symlink(os.path.join(root, "m", "1"), os.path.join(root, "m", "4"))  # stays inside: allowed
    assert escaping_link(os.path.join(root, "m", "2"), root) == os.path.join(root, "m", "2")
    assert escaping_link(three, root) == os.path.join(three, "assets")
    assert escaping_link(os.path.join(root, "m", "4"), root) is None
    registry = ModelRegistry(root, keep_versions=3, loader=_loader)
    with caplog.at_level(logging.WARNING):
        registry.poll()
    assert sorted(registry.loaded()) == [("m", "1"), ("m", "4")]
    assert sum("symlink leads outside the serving directory" in r.getMessage() for r in caplog.records) == 2
    followed = ModelRegistry(root, keep_versions=3, loader=_loader, follow_symlinks=True)
    followed.poll()
    assert sorted(followed.loaded()) == [("m", "2"), ("m", "3"), ("m", "4")]

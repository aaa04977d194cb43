"""The versions a server holds: loading pushed SavedModels, hot reload, unloading by policy.

Layout (TF Serving's): ``serving_dir/<model>/<version>/saved_model.pb``, version a
directory named with ASCII digits only (other names are ignored, with one warning
each). A ``ModelRegistry`` polls the directory: a new version is loaded once its
files stop changing between two polls (a push still being copied is left alone),
warmed up, then swapped in; requests already holding the old version finish on it.
Of the versions on disk the latest ``keep_versions`` loadable ones are served (TF
Serving's "latest N" policy): a version whose load failed is skipped, and the one
before it serves (from the first poll on) until the failed one's files change;
older ones are unloaded only after a newer one is available. A version reached
through a symlink that leaves the serving directory is refused unless
``follow_symlinks``. Status messages name paths relative to the serving directory.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from twotower.serving.histories import HistoryInputs, history_inputs, merge_history
from twotower.serving.versions import Fingerprint, ServingDir, fingerprint

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
SCANN_SIGNATURE = "scann"
HISTORY_SIGNATURE = "query_with_history"  # export.signatures: the embedding and the history items' scores
INIT_OP = "__saved_model_init_op"

Columns = Dict[str, list]
Outputs = Dict[str, np.ndarray]


class ServingError(Exception):
    """An error a client caused or can act on; ``status`` is its HTTP status code."""

    status = 400


class InvalidArgument(ServingError):
    """Bad request: malformed body, wrong types or shapes, unknown signature or label (HTTP 400)."""


class NotFound(ServingError):
    """Unknown model or version (HTTP 404)."""

    status = 404


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: dtype and full shape (``None`` for unknown dims or rank)."""

    dtype: tf.DType
    shape: Optional[Tuple[Optional[int], ...]]


def _info(spec: tf.TensorSpec) -> TensorInfo:
    return TensorInfo(spec.dtype, tuple(spec.shape.as_list()) if spec.shape.rank is not None else None)


def missing_value(info: TensorInfo) -> Any:
    """Returns one row's "missing" value for ``info``: "" for strings, NaN for floats, 0 for integers."""
    leaf: Any = b"" if info.dtype == tf.string else float("nan") if info.dtype.is_floating else 0
    if info.dtype == tf.bool:
        leaf = False
    for dim in reversed((info.shape or (None,))[1:]):
        leaf = [leaf] * (dim or 1)
    return leaf


class Signature:
    """One servable signature: its inputs and outputs, and a call on a batch of rows."""

    def __init__(
        self,
        name: str,
        inputs: Mapping[str, TensorInfo],
        outputs: Mapping[str, TensorInfo],
        call: Callable[[Dict[str, np.ndarray]], Mapping[str, Any]],
        optional: FrozenSet[str] = frozenset(),
        fill: Optional[Callable[[Columns], Columns]] = None,
    ):
        """``call`` takes ``[batch, ...]`` arrays named as ``inputs`` and returns ``[batch, ...]`` outputs.

        ``optional``: inputs a request may leave out (None in their column); ``fill`` completes such columns
        (and pads lists of unequal lengths) before the call: the history inputs (``serving.histories``).
        """
        self.name, self.inputs, self.outputs, self._call = name, dict(inputs), dict(outputs), call
        self.optional, self.fill = frozenset(optional), fill

    @classmethod
    def of_function(cls, name: str, fn: Any) -> Signature:
        """Returns the signature of a loaded SavedModel's concrete function ``fn``."""
        inputs = {n: _info(s) for n, s in fn.structured_input_signature[1].items()}
        outputs = {n: _info(s) for n, s in fn.structured_outputs.items()}
        return cls(name, inputs, outputs, lambda arrays: fn(**arrays))

    def __call__(self, columns: Columns) -> Outputs:
        """Returns the outputs ``[rows, ...]`` for ``columns`` (input name -> one value per row)."""
        if self.fill is not None:
            columns = self.fill(columns)
        arrays = {}
        with np.errstate(over="ignore"):  # 1e300 as float32 is inf, as TF Serving makes it
            for name, info in self.inputs.items():
                dtype = object if info.dtype == tf.string else info.dtype.as_numpy_dtype
                arrays[name] = np.asarray(columns[name], dtype=dtype)
        return {name: np.asarray(value) for name, value in self._call(arrays).items()}


def scann_signature(query: Signature, default: Signature, index: Any) -> Signature:
    """Returns a signature with ``default``'s inputs and outputs answered by ``index`` over ``query``'s embeddings.

    ``index.search(embeddings [n, dim] float32, k)`` returns ``(item_ids [n, k],
    item_names [n, k], scores [n, k] float32)``; ``k`` is ``default``'s top-K.
    """
    shape = default.outputs["item_ids"].shape or (None, None)
    k = shape[-1] or 100

    def call(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        out = query._call(arrays)
        embeddings = np.asarray(out["embedding"], dtype=np.float32)
        ids, names, scores = index.search(embeddings, k)
        if "history_scores" in out:  # the user's own earlier items, scored as served (export.repeats)
            ids, names, scores = merge_history(ids, names, scores, out, index, k)
        return {"item_ids": ids, "item_names": names, "scores": np.asarray(scores, dtype=np.float32)}

    return Signature(SCANN_SIGNATURE, query.inputs, default.outputs, call)


@dataclasses.dataclass
class Servable:
    """A loaded version: its signatures and their SignatureDefs (as JSON, for the metadata API)."""

    model: str
    version: int
    path: str
    signatures: Dict[str, Signature]
    signature_defs: Dict[str, Any]
    handle: Any = None  # the loaded SavedModel, kept alive as long as the servable
    histories: Optional[HistoryInputs] = None  # its history inputs, filled by the signatures' ``fill``


def signature_defs_of(path: str) -> Dict[str, Any]:
    """Returns {name: SignatureDef as JSON} of the SavedModel at ``path``, as TF Serving's metadata API shows them."""
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    defs = proto.meta_graphs[0].signature_def
    as_json = lambda d: json_format.MessageToDict(  # noqa: E731
        d, preserving_proto_field_name=True, including_default_value_fields=True
    )
    return {name: as_json(defs[name]) for name in defs}


def load_scann_index(version_dir: str) -> Any:
    """Returns the ScaNN index pushed with ``version_dir``, or None (no index, or ScaNN support not installed)."""
    try:
        from twotower.export.scann_index import load_index
    except ImportError as e:
        log.info("no ScaNN signature: twotower.export.scann_index unavailable (%s)", e)
        return None
    try:
        return load_index(version_dir)
    except ImportError as e:
        log.warning("%s: ScaNN index not loaded (%s); install scann to serve the 'scann' signature", version_dir, e)
    except Exception:  # a bad index must not keep the version, and its exact serving_default, from serving
        log.exception("%s: ScaNN index not loaded; the version serves without the 'scann' signature", version_dir)
    return None


def load_servable(
    model: str, version: int, path: str, index_loader: Optional[Callable[[str], Any]] = load_scann_index
) -> Servable:
    """Loads and warms up version ``version`` of ``model`` from ``path``; adds ``scann`` when an index loads."""
    handle = tf.saved_model.load(path)
    signatures = {name: Signature.of_function(name, fn) for name, fn in handle.signatures.items()}
    defs = signature_defs_of(path)
    index = index_loader(path) if index_loader is not None else None
    answers_items = DEFAULT_SIGNATURE in signatures and "item_ids" in signatures[DEFAULT_SIGNATURE].outputs
    if index is not None and answers_items and "query_embedding" in signatures:
        query = signatures.get(HISTORY_SIGNATURE) or signatures["query_embedding"]  # with the repeat scores
        signatures[SCANN_SIGNATURE] = scann_signature(query, signatures[DEFAULT_SIGNATURE], index)
        defs[SCANN_SIGNATURE] = copy.deepcopy(defs[DEFAULT_SIGNATURE])
    histories = (
        history_inputs(path, list(signatures["query_embedding"].inputs)) if "query_embedding" in signatures else None
    )
    for signature in signatures.values():
        if histories is not None and histories.optional <= set(signature.inputs):
            signature.optional, signature.fill = histories.optional, histories.fill
    for signature in signatures.values():  # pay first-call costs before taking traffic
        try:
            signature({name: [missing_value(info)] for name, info in signature.inputs.items()})
        except Exception as e:  # a warm-up on all-missing rows may be refused; real rows may still work
            log.warning("%s: warm-up of signature %r failed: %s", path, signature.name, e)
    return Servable(model, version, path, signatures, defs, handle, histories)


@dataclasses.dataclass(frozen=True)
class VersionState:
    """One row of the model status API."""

    version: int
    state: str  # LOADING, AVAILABLE, END
    error_code: str = "OK"
    error_message: str = ""


class ModelRegistry:
    """The versions loaded from a serving directory, reloaded by polling it."""

    def __init__(
        self,
        serving_dir: str,
        model_names: Sequence[str] = (),
        keep_versions: int = 1,
        labels: Optional[Mapping[str, int]] = None,
        loader: Callable[[str, int, str], Servable] = load_servable,
        on_load: Optional[Callable[[str, int, bool, float], None]] = None,
        on_change: Optional[Callable[[], None]] = None,
        follow_symlinks: bool = False,
        prepare: Optional[Callable[[Servable], None]] = None,
    ):
        """``model_names`` empty: every model directory found; ``labels``: version label -> version number.

        ``on_load(model, version, ok, seconds)`` is called after every load attempt,
        ``on_change()`` after a poll that loaded or unloaded a version;
        ``follow_symlinks`` loads versions whose symlinks lead outside ``serving_dir``;
        ``prepare(servable)`` runs after a load, before the version serves (the history store's seeding).
        """
        if keep_versions < 1:
            raise ValueError(f"--keep-versions must be >= 1, got {keep_versions}")
        self.serving_dir, self.model_names, self.keep_versions = serving_dir, tuple(model_names), keep_versions
        self.labels = dict(labels or {})
        self._loader, self.on_load, self.on_change, self.prepare = loader, on_load, on_change, prepare
        self._loaded: Dict[str, Dict[int, Servable]] = {}  # replaced, never mutated: readers need no lock
        self._states: Dict[str, Dict[int, VersionState]] = {}
        self._seen: Dict[Tuple[str, int], Fingerprint] = {}  # fingerprint at the previous poll
        self._failed: Dict[Tuple[str, int], Fingerprint] = {}  # fingerprint whose load failed
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._first_poll = True
        self._disk = ServingDir(serving_dir, model_names, follow_symlinks)

    # --- reading -------------------------------------------------------------------------------------------------

    def get(self, model: str, version: Optional[int] = None, label: Optional[str] = None) -> Servable:
        """Returns the servable a request names: a version, a label, or (neither) the latest loaded version."""
        versions = self._loaded.get(model, {})
        if label is not None:
            version = self._version_of(label)
        if version is None:
            if not versions:
                raise NotFound(f"Servable not found for request: Latest({model})")
            return versions[max(versions)]
        if version not in versions:
            raise NotFound(f"Servable not found for request: Specific({model}, {version})")
        return versions[version]

    def status(self, model: str, version: Optional[int] = None, label: Optional[str] = None) -> List[VersionState]:
        """Returns the state of every version of ``model`` the server has seen (newest first), or of one."""
        with self._lock:
            states = dict(self._states.get(model, {}))
        if not states:
            raise NotFound(f"Could not find any versions of model {model}")
        if label is not None:
            version = self._version_of(label)
        if version is None:
            return [states[v] for v in sorted(states, reverse=True)]
        if version not in states:
            raise NotFound(f"Could not find version {version} of model {model}")
        return [states[version]]

    def loaded(self) -> Dict[Tuple[str, str], float]:
        """Returns {(model, version): 1.0} for every version serving now (for metrics)."""
        return {(m, str(v)): 1.0 for m, versions in self._loaded.items() for v in versions}

    def _version_of(self, label: str) -> int:
        if label not in self.labels:
            raise InvalidArgument(f"Unrecognized servable version label: {label}")
        return self.labels[label]

    # --- polling -------------------------------------------------------------------------------------------------

    def start(self, poll_seconds: float) -> None:
        """Polls once now, then every ``poll_seconds`` in a background thread (0: never again)."""
        self.poll()
        if poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, args=(poll_seconds,), name="poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stops polling (loaded versions stay loaded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_loop(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.poll()
            except Exception:  # a bad poll (a directory vanishing, a permission) must not end reloading
                log.exception("polling %s failed; trying again in %ss", self.serving_dir, poll_seconds)

    def poll(self) -> None:
        """Loads new versions whose files have settled and unloads versions the policy no longer keeps."""
        with self._poll_lock:
            first, self._first_poll = self._first_poll, False
            before = self.loaded()
            for model in self._disk.models():
                self._poll_model(model, first)
            if self.loaded() != before and self.on_change is not None:
                self.on_change()

    def _poll_model(self, model: str, first: bool) -> None:
        """Serves the newest ``keep_versions`` versions that load: a failed one is passed over for the one before."""
        on_disk = self._disk.versions(model)
        prints = {v: fingerprint(path) for v, path in on_disk.items()}
        serving: List[int] = []
        for v in sorted(on_disk, reverse=True):
            if len(serving) == self.keep_versions:
                break
            if v in self._loaded.get(model, {}):
                serving.append(v)
                continue
            if prints[v] is None or self._failed.get((model, v)) == prints[v]:
                continue  # no saved_model.pb (yet), or these very files failed to load
            settled = first or self._seen.get((model, v)) == prints[v]
            if settled and self._load(model, v, on_disk[v], prints[v]):
                serving.append(v)
        others = {k: p for k, p in self._seen.items() if k[0] != model}
        self._seen = {**others, **{(model, v): prints[v] for v in on_disk}}
        for v in list(self._loaded.get(model, {})):
            if v not in serving:
                self._unload(model, v)

    def _set_state(self, model: str, state: VersionState) -> None:
        with self._lock:
            self._states[model] = {**self._states.get(model, {}), state.version: state}

    def _load(self, model: str, version: int, path: str, files: Fingerprint) -> bool:
        """Loads one version; returns whether it serves now."""
        self._set_state(model, VersionState(version, "LOADING"))
        started = time.monotonic()
        try:
            servable = self._loader(model, version, path)
            if self.prepare is not None:
                self.prepare(servable)
        except Exception as e:  # a broken push must not stop the server or the versions it serves
            log.exception("%s: loading version %d of %s failed", path, version, model)
            self._failed[(model, version)] = files
            message = self._disk.relative(f"{path}: {type(e).__name__}: {e}")
            self._set_state(model, VersionState(version, "END", "UNKNOWN", message))
            if self.on_load is not None:
                self.on_load(model, version, False, time.monotonic() - started)
            return False
        with self._lock:
            self._loaded = {**self._loaded, model: {**self._loaded.get(model, {}), version: servable}}
            self._states[model] = {**self._states.get(model, {}), version: VersionState(version, "AVAILABLE")}
        seconds = time.monotonic() - started
        log.info("loaded %s version %d from %s in %.1fs", model, version, path, seconds)
        if self.on_load is not None:
            self.on_load(model, version, True, seconds)
        return True

    def _unload(self, model: str, version: int) -> None:
        with self._lock:
            versions = {v: s for v, s in self._loaded.get(model, {}).items() if v != version}
            self._loaded = {**{m: vs for m, vs in self._loaded.items() if m != model}, **({model: versions})}
            self._states[model] = {**self._states.get(model, {}), version: VersionState(version, "END")}
        log.info("unloaded %s version %d (requests already on it finish on it)", model, version)

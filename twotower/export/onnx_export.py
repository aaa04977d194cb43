"""ONNX towers: the query and candidate towers as ONNX models, FP32 and FP16, checked against TensorFlow.

``export_onnx`` writes under ``MODEL_DIR/assets.extra/onnx/`` (TF Serving ignores that folder):

- ``query.onnx``, ``candidate.onnx``: FP32; output ``embedding`` ``[batch, dim]`` float32.
- ``query_fp16.onnx``, ``candidate_fp16.onnx``: the same inputs and output, the
  tower's weights and arithmetic in float16 (a feature transform stays float32).
- ``onnx.json``: per tower, which inputs it takes (``raw`` or ``transformed``),
  their names, dtypes and shapes (-1: any batch), why raw inputs were not possible,
  and the largest difference from TensorFlow measured at export on real examples.

Inputs are **raw** features, exactly the SavedModel's ``query_embedding`` /
``candidate_embedding`` inputs (``[batch]``; strings as UTF-8 text; '' and NaN
for missing), whenever tf2onnx can express the tower's Transform graph:
vocabulary lookups, quantile buckets, z-scores, time features, vectors.
Otherwise the model takes **transformed** features, named and shaped as
Transform outputs them (twotower.transform.features): hashed crosses
(FarmHash of joined strings) and text tokenisation (regex replace, string
split) have no ONNX operator. A client computes transformed inputs with the
exported vocabularies (``twotower.vocab.vocabularies.load_vocabularies``:
index of the value, the vocabulary size when unseen; text: token indices padded
with -1) and, for a cross, ``farmhash.fingerprint64("a\\x1fb") % hash_buckets``
(the pyfarmhash package; TensorFlow's to_hash_bucket_fast gives the same), or
runs the Transform graph itself.

A raw model whose outputs differ from TensorFlow's beyond ``FP32_TOLERANCE`` on
the examples falls back to transformed inputs too; a transformed model or an
FP16 model beyond its tolerance is an error.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tensorflow_transform as tft
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from twotower.export import onnx_convert
from twotower.export.assets import ONNX_DIR
from twotower.export.signatures import RetrievalModule, vector_dims
from twotower.trainer import data
from twotower.trainer.towers import Tower
from twotower.transform.features import dense_vector, to_dense

MANIFEST = "onnx.json"
RAW, TRANSFORMED = "raw", "transformed"
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 3e-2  # float16 keeps ~3 digits; a history attention block (layer norms) reaches ~1.3e-2
PARITY_EXAMPLES = 256
_LINK = "transformed_"  # names the transform's outputs apart from the raw inputs of the same name

Features = Mapping[str, np.ndarray]
# What a raw-input conversion that cannot work raises: tf2onnx, onnx's checker, onnxruntime.
_CONVERSION_ERRORS = (
    ValueError,
    RuntimeError,
    onnx.checker.ValidationError,
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


def raw_examples(
    patterns: Sequence[str],
    tft_output: tft.TFTransformOutput,
    names: Sequence[str],
    limit: int = PARITY_EXAMPLES,
    lists: Sequence[str] = (),
) -> Dict[str, np.ndarray]:
    """Returns the first ``limit`` examples of raw features ``names`` as request arrays.

    Each is ``[n]`` (bytes objects, float32 or int64; '' / NaN where missing),
    ``[n, dim]`` float32 for a vector column, or ``[n, width]`` for ``lists`` (history
    ids padded with '', ages with NaN), as the serving signatures take them.
    """
    raw_spec = tft_output.raw_feature_spec()
    dims = vector_dims(tft_output, [n for n in names if n not in lists])
    batch = next(iter(data.raw_dataset(patterns, {n: raw_spec[n] for n in names})))

    def request(name: str) -> tf.Tensor:
        if name in lists:
            value = batch[name]
            return tf.sparse.to_dense(value, default_value="" if value.dtype == tf.string else float("nan"))
        return dense_vector(batch[name], dims[name]) if name in dims else to_dense(batch[name])

    return {n: request(n).numpy()[:limit] for n in names}


def onnx_feed(features: Features) -> Dict[str, np.ndarray]:
    """Returns ``features`` as onnxruntime takes them: bytes become str (ONNX strings are UTF-8 text)."""
    decode = np.vectorize(lambda x: x.decode("utf-8"), otypes=[object])
    return {n: decode(v) if v.dtype.kind in "SO" else v for n, v in features.items()}


def run_onnx(path_or_model: Any, features: Features) -> np.ndarray:
    """Returns the ``embedding`` ``[batch, dim]`` float32 of an ONNX tower (file or ModelProto) on ``features``."""
    model = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else path_or_model
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(["embedding"], onnx_feed({n: v for n, v in features.items() if n in names}))[0]


def _spec(tensor: tf.Tensor, name: str) -> tf.TensorSpec:
    return tf.TensorSpec([None] + tensor.shape.as_list()[1:], tensor.dtype, name=name)


def _describe(model: onnx.ModelProto) -> List[Dict[str, Any]]:
    """Returns name, dtype and shape (-1 where free) of each input of ``model``."""
    inputs = []
    for value in model.graph.input:
        t = value.type.tensor_type
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        dtype = "string" if np_dtype.kind == "O" else np_dtype.name
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        inputs.append({"name": value.name, "dtype": dtype, "shape": shape})
    return inputs


def _max_diff(expected: np.ndarray, got: np.ndarray) -> float:
    return float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64))))


def _checked(model: onnx.ModelProto, features: Features, expected: np.ndarray, tolerance: float, what: str) -> float:
    """Returns the max abs difference of ``model`` from ``expected``; raises ValueError beyond ``tolerance``."""
    diff = _max_diff(expected, run_onnx(model, features))
    if not diff < tolerance:
        raise ValueError(f"{what}: onnxruntime differs from TensorFlow by {diff:.3g} (tolerance {tolerance:g})")
    return diff


def _raw_models(
    transform_fn: tf.types.experimental.GenericFunction,
    module: RetrievalModule,
    tower_model: onnx.ModelProto,
    names: Sequence[str],
    expected: np.ndarray,
    examples: Features,
) -> Tuple[Optional[onnx.ModelProto], Optional[onnx.ModelProto], List[str], str]:
    """Returns (fp32, fp16, unsupported ops, "") raw-input models, or (None, None, unsupported ops, why not)."""
    links = [(_LINK + n, n) for n in names]
    try:
        transform_model = onnx_convert.from_function_with_tables(transform_fn, module.tft_layer)
        unsupported = onnx_convert.unsupported_ops(transform_model)
        if unsupported:
            return None, None, unsupported, f"no ONNX operator for {', '.join(unsupported)}"
        fp32 = onnx_convert.chain(transform_model, tower_model, links)
        diff = _max_diff(expected, run_onnx(fp32, examples))
        fp16 = onnx_convert.chain(transform_model, onnx_convert.float16(tower_model), links)
    except _CONVERSION_ERRORS as e:
        first_line = (str(e).strip().splitlines() or [""])[0]
        return None, None, [], f"conversion failed: {type(e).__name__}: {first_line}"
    if not diff < FP32_TOLERANCE:
        return None, None, [], f"onnxruntime differs from TensorFlow by {diff:.3g} on raw inputs"
    return fp32, fp16, [], ""


def export_tower(
    module: RetrievalModule,
    tower: Tower,
    embed: Callable[..., Dict[str, tf.Tensor]],
    examples: Features,
    name: str,
) -> Dict[str, Any]:
    """Converts one tower; returns {"fp32", "fp16": ModelProto, "entry": its onnx.json entry}.

    ``embed`` is the module's raw-feature tf.function of this tower (with its input
    signature); ``examples`` are raw request arrays for it (``raw_examples``).
    """
    started = time.monotonic()
    names = tower.feature_names

    def transform(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out = module.transform(features)
        return {_LINK + n: out[n] for n in names}

    transform_fn = tf.function(transform, input_signature=embed.input_signature, autograph=False)
    outputs = transform_fn.get_concrete_function().structured_outputs
    tower_signature = {n: _spec(outputs[_LINK + n], n) for n in names}
    tower_fn = tf.function(lambda features: {"embedding": tower(features)}, autograph=False)
    tower_model = onnx_convert.from_function(tower_fn, tower_signature)
    constants = {n: tf.constant(v) for n, v in examples.items()}
    transformed = {n: v.numpy() for n, v in module.transform(constants).items() if n in tower_signature}
    expected_transformed = tower({n: tf.constant(v) for n, v in transformed.items()}).numpy()
    _checked(tower_model, transformed, expected_transformed, FP32_TOLERANCE, f"{name} tower (transformed inputs)")

    expected = embed(constants)["embedding"].numpy()
    fp32, fp16, unsupported, why_not = _raw_models(transform_fn, module, tower_model, names, expected, examples)
    entry: Dict[str, Any] = {"inputs": RAW, "raw_unsupported_ops": unsupported}
    feed = examples
    if fp32 is None:
        entry.update(inputs=TRANSFORMED, raw_fallback=why_not)
        fp32, fp16 = tower_model, onnx_convert.float16(tower_model)
        expected, feed = expected_transformed, transformed
    entry["features"] = _describe(fp32)
    entry["output"] = {"name": "embedding", "dtype": "float32", "shape": [-1, int(expected.shape[1])]}
    entry["examples"] = int(expected.shape[0])
    entry["max_abs_diff"] = {
        "fp32": _checked(fp32, feed, expected, FP32_TOLERANCE, f"{name}.onnx"),
        "fp16": _checked(fp16, feed, expected, FP16_TOLERANCE, f"{name}_fp16.onnx"),
    }
    entry["files"] = {"fp32": f"{name}.onnx", "fp16": f"{name}_fp16.onnx"}
    logging.info("ONNX %s tower: %s inputs (%s), %.1fs", name, entry["inputs"], why_not, time.monotonic() - started)
    return {"fp32": fp32, "fp16": fp16, "entry": entry}


def export_onnx(
    module: RetrievalModule, model_dir: str, query_examples: Features, candidate_examples: Features
) -> Dict[str, Any]:
    """Writes both towers, FP32 and FP16, and onnx.json under ``model_dir/assets.extra/onnx``; returns onnx.json.

    ``query_examples`` / ``candidate_examples``: raw request arrays (``raw_examples``)
    of real interactions and catalogue items, on which each model is checked.
    """
    out = os.path.join(model_dir, ONNX_DIR)
    tf.io.gfile.makedirs(out)
    manifest: Dict[str, Any] = {"opset": onnx_convert.OPSET, "towers": {}}
    parts = {
        "query": (module.query_tower, module.query_embedding, query_examples),
        "candidate": (module.candidate_tower, module.candidate_embedding, candidate_examples),
    }
    for name, (tower, embed, examples) in parts.items():
        result = export_tower(module, tower, embed, examples, name)
        entry = result["entry"]
        for precision, file in entry["files"].items():
            with tf.io.gfile.GFile(os.path.join(out, file), "wb") as f:
                f.write(result[precision].SerializeToString())
        manifest["towers"][name] = entry
    with tf.io.gfile.GFile(os.path.join(out, MANIFEST), "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest

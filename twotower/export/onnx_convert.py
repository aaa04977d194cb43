"""TensorFlow -> ONNX conversion with tf2onnx, and the ONNX graph edits the export needs.

tf2onnx (pinned in constraints.txt) maps Transform's vocabulary lookups to
``ai.onnx.ml`` CategoryMapper. More ops of a Transform graph get a mapping
here (``HANDLERS``):

- ``UpperBound`` (``tft.apply_buckets``): the number of boundaries <= the value (exact).
- ``StringToHashBucketFast`` with one bucket (the OOV bucket of every vocabulary):
  always 0 (exact). With more buckets (hashed crosses) it stays unmapped: FarmHash
  has no ONNX form.
- ``Select``/``SelectV2`` (``tf.where``): always ONNX Where. tf2onnx's faster
  x * cond + y * !cond turns a NaN in the branch not taken into NaN, and
  ``tf.where(is_finite(x), x, fill)`` is how missing values are filled.
- ``Log1p`` (time recency): Log(1 + x), within an ulp but for x below ~1e-7.
- ``Equal``/``NotEqual`` of a string and a string constant (the '' = missing
  test): CategoryMapper (exact), since ONNX's Equal takes strings only from opset 19,
  beyond tf2onnx 1.17. Other comparisons keep tf2onnx's own mapping.

Ops without a mapping (string joins, splits, regexes, hashes) are left in the
graph; ``unsupported_ops`` lists them so the caller can choose another input.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import TensorProto, helper, numpy_helper
from tf2onnx import constants, optimizer, tf_loader, tfonnx
from tf2onnx.onnx_opset.controlflow import Select
from tf2onnx.onnx_opset.logical import Equal

OPSET = 17
Model = onnx.ModelProto
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def _upper_bound(ctx: Any, node: Any, name: str, args: List[Any]) -> None:
    """UpperBound(boundaries [R, N], values [R, M]) -> [R, M]: how many boundaries are <= each value."""
    out_dtype = node.output_dtypes[0]
    boundaries, values = node.input
    ctx.remove_node(node.name)

    def axes(suffix: str, axis: int) -> str:
        return ctx.make_const(f"{name}/{suffix}", np.array([axis], np.int64)).output[0]

    b = ctx.make_node("Unsqueeze", [boundaries, axes("b_axis", 1)]).output[0]  # [R, 1, N]
    v = ctx.make_node("Unsqueeze", [values, axes("v_axis", 2)]).output[0]  # [R, M, 1]
    below = ctx.make_node("Cast", [ctx.make_node("LessOrEqual", [b, v]).output[0]], attr={"to": TensorProto.INT64})
    count = ctx.make_node("ReduceSum", [below.output[0], axes("sum_axis", 2)], attr={"keepdims": 0}).output[0]
    ctx.make_node("Cast", [count], attr={"to": out_dtype}, name=name, outputs=node.output, dtypes=[out_dtype])


def _one_hash_bucket(ctx: Any, node: Any, name: str, args: List[Any]) -> None:
    """StringToHashBucketFast with num_buckets=1 -> int64 zeros of the input's shape; otherwise left unmapped."""
    if node.get_attr_value("num_buckets") != 1:
        return
    dtypes = node.output_dtypes
    ctx.remove_node(node.name)
    shape = ctx.make_node("Shape", node.input).output[0]
    zero = helper.make_tensor("value", TensorProto.INT64, [1], [0])
    ctx.make_node("ConstantOfShape", [shape], attr={"value": zero}, name=name, outputs=node.output, dtypes=dtypes)


def _select(ctx: Any, node: Any, name: str, args: List[Any]) -> None:
    """Select/SelectV2 -> Where, whatever the branches hold (tf2onnx's own mapping, told NaN matters)."""
    node.set_attr("handles_nan", True)
    Select.version_9(ctx, node)


def _log1p(ctx: Any, node: Any, name: str, args: List[Any]) -> None:
    """Log1p(x) -> Log(x + 1)."""
    dtype = node.output_dtypes[0]
    one = ctx.make_const(f"{name}/one", np.array(1, helper.tensor_dtype_to_np_dtype(dtype))).output[0]
    ctx.remove_node(node.name)
    plus = ctx.make_node("Add", [node.input[0], one]).output[0]
    ctx.make_node("Log", [plus], name=name, outputs=node.output, dtypes=[dtype])


def _equal(ctx: Any, node: Any, name: str, args: List[Any]) -> None:
    """(Not)Equal: numbers as tf2onnx does; a string against a scalar string constant by CategoryMapper."""
    if ctx.get_dtype(node.input[0]) != TensorProto.STRING:
        Equal.version_11(ctx, node)
        return
    constant = [i for i, n in enumerate(node.inputs) if n.is_const()]
    value = node.inputs[constant[0]].get_tensor_value(as_list=True) if constant else None
    if not isinstance(value, (bytes, str)):
        return  # against a string tensor or a list: left unmapped
    value = value.encode("utf-8") if isinstance(value, str) else value
    other = node.input[1 - constant[0]]
    hit = 0 if node.type == "NotEqual" else 1
    outputs, shapes = node.output, node.output_shapes
    ctx.remove_node(node.name)
    attr = {"cats_strings": [value], "cats_int64s": [hit], "default_int64": 1 - hit}
    mapped = ctx.make_node("CategoryMapper", [other], domain=constants.AI_ONNX_ML_DOMAIN, attr=attr).output[0]
    boolean = TensorProto.BOOL
    ctx.make_node("Cast", [mapped], attr={"to": boolean}, name=name, outputs=outputs, shapes=shapes, dtypes=[boolean])


HANDLERS = {
    "UpperBound": (_upper_bound, []),
    "Log1p": (_log1p, []),
    "Select": (_select, []),
    "SelectV2": (_select, []),
    "StringToHashBucketFast": (_one_hash_bucket, []),
    "Equal": (_equal, []),
    "NotEqual": (_equal, []),
}


@contextlib.contextmanager
def _tf2onnx_log(level: int) -> Iterator[None]:
    """Raises tf2onnx's log threshold to ``level`` for the block (its shape-inference chatter is not news)."""
    logger = logging.getLogger("tf2onnx")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def unsupported_ops(model: onnx.ModelProto) -> List[str]:
    """Returns the sorted op types of ``model`` that no ONNX operator set defines (TensorFlow ops left unmapped)."""
    return sorted({n.op_type for n in model.graph.node if not onnx.defs.has(n.op_type, n.domain)})


def from_function(function: tf.types.experimental.GenericFunction, signature: Dict[str, tf.TensorSpec]) -> Model:
    """Returns the ONNX model of ``function`` (using no lookup tables) called on one dict of ``signature``."""
    with _tf2onnx_log(logging.ERROR):
        model, _ = tf2onnx.convert.from_function(
            function, input_signature=[signature], opset=OPSET, custom_op_handlers=dict(HANDLERS)
        )
    return model


def from_function_with_tables(function: tf.types.experimental.GenericFunction, resources: tf.Module) -> onnx.ModelProto:
    """Returns the ONNX model of ``function`` (a tf.function with an input signature) using lookup tables.

    ``resources`` tracks the tables and assets ``function`` uses (a Transform
    layer). Goes through a temporary SavedModel, the one route where tf2onnx
    reads the contents of lookup tables (Transform's vocabularies). Ops left
    unmapped are not logged: ``unsupported_ops`` lists them.
    """
    with _tf2onnx_log(logging.CRITICAL):
        with tempfile.TemporaryDirectory(prefix="twotower-onnx-") as tmp:
            holder = tf.Module()
            holder.resources, holder.function = resources, function
            tf.saved_model.save(holder, tmp, signatures={"function": function.get_concrete_function()})
            graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
                tmp,
                None,
                None,
                tag="serve",
                signatures=["function"],
                return_initialized_tables=True,
                return_tensors_to_rename=True,
            )
        with tf.Graph().as_default() as graph:
            tf.import_graph_def(graph_def, name="")
            g = tfonnx.process_tf_graph(
                graph,
                continue_on_error=True,
                opset=OPSET,
                custom_op_handlers=dict(HANDLERS),
                input_names=inputs,
                output_names=outputs,
                tensors_to_rename=renames,
                initialized_tables=tables,
            )
        return optimizer.optimize_graph(g).make_model("twotower")


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new


def chain(first: onnx.ModelProto, second: onnx.ModelProto, links: Sequence[Tuple[str, str]]) -> onnx.ModelProto:
    """Returns one model feeding ``first``'s outputs into ``second``'s inputs by ``links`` (output, input).

    The result keeps ``first``'s input names and ``second``'s output names.
    """
    merged = onnx.compose.merge_models(first, second, list(links), prefix1="a/", prefix2="b/")
    for value in list(merged.graph.input) + list(merged.graph.output):
        _rename(merged.graph, value.name, value.name[2:])
    return merged


def _half(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name)


def float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Returns a copy of ``model`` computing in float16 behind the same float32 inputs and outputs.

    Float weights and constants become float16, casts to float32 cast to float16,
    and float32 inputs and outputs get a cast at the graph's edge.
    """
    half = onnx.ModelProto()
    half.CopyFrom(model)
    g = half.graph
    for i, tensor in enumerate(g.initializer):
        if tensor.data_type == FLOAT:
            g.initializer[i].CopyFrom(_half(tensor))
    for node in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"float16: node {node.name} ({node.op_type}) has a subgraph; not supported")
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == FLOAT:
                a.i = HALF
            elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT:
                a.t.CopyFrom(_half(a.t))
    casts_in, casts_out = [], []
    for value in g.input:
        if value.type.tensor_type.elem_type == FLOAT:
            _rename(g, value.name, value.name + "/fp16")
            value.name = value.name[: -len("/fp16")]
            casts_in.append(helper.make_node("Cast", [value.name], [value.name + "/fp16"], to=HALF))
    for value in g.output:
        if value.type.tensor_type.elem_type == FLOAT:
            name = value.name
            _rename(g, name, name + "/fp16")
            value.name = name
            casts_out.append(helper.make_node("Cast", [name + "/fp16"], [name], to=FLOAT))
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    for value in g.value_info:
        if value.type.tensor_type.elem_type == FLOAT:
            value.type.tensor_type.elem_type = HALF
    onnx.checker.check_model(half)
    return half

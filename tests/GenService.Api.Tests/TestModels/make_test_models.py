"""Writes the tiny ONNX models the API tests serve (deterministic; rerun to regenerate).

tiny-gan:  class-conditional "generator": z [N,4] FP32, y [N] INT64 -> img [N,1,2,2] = tanh(z @ W + E[y] + b)
tiny-vae:  "decoder" z [N,2] -> x [N,1,2,2] = tanh(z @ Wd); no encoder, so no encode/reconstruct routes.
Run: /usr/bin/python3 tests/GenService.Api.Tests/TestModels/make_test_models.py
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1234)


def save(model_dir, graph, manifest):
    os.makedirs(os.path.join(HERE, model_dir), exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="genservice-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, model_dir, manifest["graphs"][next(iter(manifest["graphs"]))]["file"]))
    with open(os.path.join(HERE, model_dir, "model.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


w = rng.standard_normal((4, 4)).astype(np.float32) * 0.5
e = rng.standard_normal((10, 4)).astype(np.float32) * 0.5
b = rng.standard_normal((4,)).astype(np.float32) * 0.1
gan = helper.make_graph(
    [
        helper.make_node("MatMul", ["z", "W"], ["zw"]),
        helper.make_node("Gather", ["E", "y"], ["ey"], axis=0),
        helper.make_node("Add", ["zw", "ey"], ["h1"]),
        helper.make_node("Add", ["h1", "b"], ["h2"]),
        helper.make_node("Tanh", ["h2"], ["h3"]),
        helper.make_node("Reshape", ["h3", "shape"], ["img"]),
    ],
    "tiny_gan",
    [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4]),
     helper.make_tensor_value_info("y", TensorProto.INT64, ["batch"])],
    [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 1, 2, 2])],
    [numpy_helper.from_array(w, "W"), numpy_helper.from_array(e, "E"), numpy_helper.from_array(b, "b"),
     numpy_helper.from_array(np.array([-1, 1, 2, 2], dtype=np.int64), "shape")],
)
save("tiny-gan", gan, {
    "name": "tiny-gan", "family": "gan", "version": "1",
    "description": "Test model: a class-conditional 4-d latent to a 2x2 image through one affine layer and tanh.",
    "output": {"kind": "image", "shape": [1, 2, 2], "range": [-1.0, 1.0]},
    "conditioning": {"num_classes": 10, "labels": [str(i) for i in range(10)]},
    "latent_shape": [4],
    "graphs": {"generator": {"file": "generator.onnx", "inputs": {"latent": "z", "class_label": "y"}, "outputs": {"sample": "img"}}},
    "batching": {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_queue_size": 256},
    "instances": 1,
    "card": {"training_data": "none (random weights)", "license": "MIT"},
})

wd = rng.standard_normal((2, 4)).astype(np.float32)
vae = helper.make_graph(
    [helper.make_node("MatMul", ["z", "Wd"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
     helper.make_node("Reshape", ["t", "shape"], ["x"])],
    "tiny_vae_decoder",
    [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 2])],
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 2, 2])],
    [numpy_helper.from_array(wd, "Wd"), numpy_helper.from_array(np.array([-1, 1, 2, 2], dtype=np.int64), "shape")],
)
save("tiny-vae", vae, {
    "name": "tiny-vae", "family": "vae", "version": "2",
    "description": "Test model: a decoder-only VAE (no encoder graph).",
    "output": {"kind": "image", "shape": [1, 2, 2], "range": [-1.0, 1.0]},
    "latent_shape": [2],
    "graphs": {"decoder": {"file": "decoder.onnx", "inputs": {"latent": "z"}, "outputs": {"sample": "x"}}},
    "batching": {"max_batch_size": 16, "max_queue_delay_ms": 1, "max_queue_size": 256},
})
print("wrote tiny-gan, tiny-vae under", HERE)

"""Writes tiny-ddpm, the small diffusion model the scheduling tests serve (deterministic; rerun to regenerate).

denoiser: sample [N,1,4,4] FP32, timestep [N] INT64, class_label [N] INT64 (0..3, 4 = null class)
          -> prediction [N,1,4,4] = 0.9 * tanh(flat(sample) @ W + T[timestep] + E[class_label])
Every row depends on its own timestep and label, so a scheduler that mixes up rows, timesteps or labels
in a merged batch changes the samples. 100 train timesteps keep the table small; max_batch_size 8 makes the
row cap bite with a handful of requests.
Run: /usr/bin/python3 tests/GenService.Api.Tests/Families/DiffusionScheduling/TestModels/make_tiny_ddpm.py
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(5678)
T, D, CLASSES = 100, 16, 4

w = (rng.standard_normal((D, D)) * 0.4).astype(np.float32)
tab = (rng.standard_normal((T, D)) * 0.5).astype(np.float32)
emb = (rng.standard_normal((CLASSES + 1, D)) * 0.5).astype(np.float32)
graph = helper.make_graph(
    [
        helper.make_node("Reshape", ["sample", "flat"], ["x"]),
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Gather", ["Tt", "timestep"], ["te"], axis=0),
        helper.make_node("Gather", ["E", "class_label"], ["ye"], axis=0),
        helper.make_node("Add", ["xw", "te"], ["h1"]),
        helper.make_node("Add", ["h1", "ye"], ["h2"]),
        helper.make_node("Tanh", ["h2"], ["h3"]),
        helper.make_node("Mul", ["h3", "scale"], ["h4"]),
        helper.make_node("Reshape", ["h4", "shape"], ["prediction"]),
    ],
    "tiny_ddpm_denoiser",
    [helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", 1, 4, 4]),
     helper.make_tensor_value_info("timestep", TensorProto.INT64, ["batch"]),
     helper.make_tensor_value_info("class_label", TensorProto.INT64, ["batch"])],
    [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch", 1, 4, 4])],
    [numpy_helper.from_array(w, "W"), numpy_helper.from_array(tab, "Tt"), numpy_helper.from_array(emb, "E"),
     numpy_helper.from_array(np.array(0.9, dtype=np.float32), "scale"),
     numpy_helper.from_array(np.array([-1, D], dtype=np.int64), "flat"),
     numpy_helper.from_array(np.array([-1, 1, 4, 4], dtype=np.int64), "shape")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="genservice-tests")
model.ir_version = 8
onnx.checker.check_model(model)
out = os.path.join(HERE, "tiny-ddpm")
os.makedirs(out, exist_ok=True)
onnx.save(model, os.path.join(out, "denoiser.onnx"))
manifest = {
    "name": "tiny-ddpm", "family": "diffusion", "version": "1",
    "description": "Test model: a class-conditional one-layer denoiser over 4x4 images (random weights).",
    "output": {"kind": "image", "shape": [1, 4, 4], "range": [-1.0, 1.0]},
    "conditioning": {"num_classes": CLASSES, "labels": [str(i) for i in range(CLASSES)], "null_class": CLASSES},
    "graphs": {"denoiser": {"file": "denoiser.onnx",
                            "inputs": {"sample": "sample", "timestep": "timestep", "class_label": "class_label"},
                            "outputs": {"prediction": "prediction"}}},
    "scheduler": {"num_train_timesteps": T, "beta_schedule": "linear", "beta_start": 0.001, "beta_end": 0.2,
                  "prediction_type": "epsilon", "clip_sample": False, "timestep_spacing": "leading",
                  "steps_offset": 0, "set_alpha_to_one": True},
    "batching": {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_queue_size": 1024},
    "instances": 1,
    "card": {"training_data": "none (random weights)", "license": "MIT"},
}
with open(os.path.join(out, "model.json"), "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
print("wrote", out)

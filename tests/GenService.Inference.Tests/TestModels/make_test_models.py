#!/usr/bin/python3
"""Writes the tiny ONNX test models (and their model.json) used by the inference tests.

Each model is a few ops with a dynamic batch dimension 0 and row-independent maths, so a row's
result does not depend on what else is in its batch. Weights come from a fixed seed.
Run: /usr/bin/python3 tests/GenService.Inference.Tests/TestModels/make_test_models.py
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(1234)
OPSET = [helper.make_opsetid("", 13)]


def w(name, shape, scale=0.5):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def save(model_name, file, nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, file.replace(".onnx", ""), inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="make_test_models")
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = os.path.join(HERE, model_name)
    os.makedirs(folder, exist_ok=True)
    onnx.save(model, os.path.join(folder, file))


def manifest(name, body):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    body = {"name": name, **body}
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(body, f, indent=2)
        f.write("\n")


F, I64 = TensorProto.FLOAT, TensorProto.INT64
IMAGE = {"kind": "image", "shape": [1, 2, 2], "range": [-1.0, 1.0]}
COND = {"num_classes": 3, "labels": ["a", "b", "c"], "null_class": 3}


def tiny_gan():
    # sample = tanh([latent, float(class_label)] @ W + b), reshaped to [B,1,2,2].
    nodes = [
        helper.make_node("Cast", ["y"], ["yf"], to=F),
        helper.make_node("Unsqueeze", ["yf", "axis1"], ["y2"]),
        helper.make_node("Concat", ["z", "y2"], ["zy"], axis=1),
        helper.make_node("MatMul", ["zy", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["hb"]),
        helper.make_node("Tanh", ["hb"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["img"]),
    ]
    W, b = w("W", (5, 4)), w("b", (4,))
    save("tiny-gan", "generator.onnx", nodes,
         [helper.make_tensor_value_info("z", F, ["batch", 4]), helper.make_tensor_value_info("y", I64, ["batch"])],
         [helper.make_tensor_value_info("img", F, ["batch", 1, 2, 2])],
         [W, b, const("axis1", np.array([1], np.int64)), const("shape", np.array([-1, 1, 2, 2], np.int64))])
    # Reference outputs computed here with numpy from the same weights (not by ONNX Runtime).
    z = np.random.default_rng(99).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0], np.int64)
    zy = np.concatenate([z, y[:, None].astype(np.float32)], axis=1)
    img = np.tanh(zy.astype(np.float64) @ numpy_helper.to_array(W).astype(np.float64) + numpy_helper.to_array(b))
    with open(os.path.join(HERE, "tiny-gan-reference.json"), "w") as f:
        json.dump({"z": z.flatten().tolist(), "y": y.tolist(), "img": img.flatten().tolist()}, f, indent=1)
        f.write("\n")
    manifest("tiny-gan", {
        "family": "gan", "version": "1", "description": "Test GAN: MatMul+Tanh, latent [4], 3 classes",
        "output": IMAGE, "conditioning": COND, "latent_shape": [4],
        "graphs": {"generator": {"file": "generator.onnx", "inputs": {"latent": "z", "class_label": "y"}, "outputs": {"sample": "img"}}},
        "batching": {"max_batch_size": 8, "max_queue_delay_ms": 2, "max_queue_size": 64}, "instances": 2,
        "card": {"purpose": "tests"},
    })


def tiny_vae():
    dec = [
        helper.make_node("MatMul", ["z", "Wd"], ["h"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["x"]),
    ]
    save("tiny-vae", "decoder.onnx", dec,
         [helper.make_tensor_value_info("z", F, ["batch", 3])],
         [helper.make_tensor_value_info("x", F, ["batch", 1, 2, 2])],
         [w("Wd", (3, 4)), const("shape", np.array([-1, 1, 2, 2], np.int64))])
    enc = [
        helper.make_node("Flatten", ["x"], ["xf"], axis=1),
        helper.make_node("MatMul", ["xf", "Wm"], ["mu"]),
        helper.make_node("MatMul", ["xf", "Wv"], ["lv"]),
    ]
    save("tiny-vae", "encoder.onnx", enc,
         [helper.make_tensor_value_info("x", F, ["batch", 1, 2, 2])],
         [helper.make_tensor_value_info("mu", F, ["batch", 3]), helper.make_tensor_value_info("lv", F, ["batch", 3])],
         [w("Wm", (4, 3)), w("Wv", (4, 3), 0.1)])
    manifest("tiny-vae", {
        "family": "vae", "version": "1", "description": "Test VAE: linear encoder, MatMul+Tanh decoder",
        "output": IMAGE, "latent_shape": [3],
        "graphs": {
            "decoder": {"file": "decoder.onnx", "inputs": {"latent": "z"}, "outputs": {"sample": "x"}},
            "encoder": {"file": "encoder.onnx", "inputs": {"sample": "x"}, "outputs": {"mean": "mu", "log_var": "lv"}},
        },
        "batching": {"max_batch_size": 16, "max_queue_delay_ms": 1, "max_queue_size": 256},
    })


def tiny_flow():
    # x = 2 z + 1; z = (x - 1) / 2; log_det (x -> z) = -4 ln 2 per sample.
    inv = [helper.make_node("Mul", ["z", "two"], ["z2"]), helper.make_node("Add", ["z2", "one"], ["x"])]
    save("tiny-flow", "inverse.onnx", inv,
         [helper.make_tensor_value_info("z", F, ["batch", 1, 2, 2])],
         [helper.make_tensor_value_info("x", F, ["batch", 1, 2, 2])],
         [const("two", np.float32(2.0)), const("one", np.float32(1.0))])
    fwd = [
        helper.make_node("Sub", ["x", "one"], ["x1"]),
        helper.make_node("Div", ["x1", "two"], ["z"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["s0"]),
        helper.make_node("Add", ["s0", "ld"], ["log_det"]),
    ]
    save("tiny-flow", "forward.onnx", fwd,
         [helper.make_tensor_value_info("x", F, ["batch", 1, 2, 2])],
         [helper.make_tensor_value_info("z", F, ["batch", 1, 2, 2]), helper.make_tensor_value_info("log_det", F, ["batch"])],
         [const("two", np.float32(2.0)), const("one", np.float32(1.0)), const("zero", np.float32(0.0)),
          const("ld", np.float32(-4 * np.log(2.0))), const("axes", np.array([1, 2, 3], np.int64))])
    manifest("tiny-flow", {
        "family": "flow", "version": "1", "description": "Test flow: x = 2z + 1",
        "output": IMAGE, "latent_shape": [1, 2, 2], "likelihood": {"bin_width": 0.125},
        "graphs": {
            "inverse": {"file": "inverse.onnx", "inputs": {"latent": "z"}, "outputs": {"sample": "x"}},
            "forward": {"file": "forward.onnx", "inputs": {"sample": "x"}, "outputs": {"latent": "z", "log_det": "log_det"}},
        },
    })


def tiny_diffusion():
    # prediction = tanh(sample * a + t / 1000 + class / 10)  (broadcast per row).
    nodes = [
        helper.make_node("Cast", ["t"], ["tf"], to=F),
        helper.make_node("Div", ["tf", "k1000"], ["t1"]),
        helper.make_node("Cast", ["y"], ["yf"], to=F),
        helper.make_node("Div", ["yf", "k10"], ["y1"]),
        helper.make_node("Add", ["t1", "y1"], ["ty"]),
        helper.make_node("Reshape", ["ty", "rs"], ["ty4"]),
        helper.make_node("Mul", ["x", "a"], ["xa"]),
        helper.make_node("Add", ["xa", "ty4"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["eps"]),
    ]
    save("tiny-diffusion", "denoiser.onnx", nodes,
         [helper.make_tensor_value_info("x", F, ["batch", 1, 2, 2]), helper.make_tensor_value_info("t", I64, ["batch"]),
          helper.make_tensor_value_info("y", I64, ["batch"])],
         [helper.make_tensor_value_info("eps", F, ["batch", 1, 2, 2])],
         [const("k1000", np.float32(1000.0)), const("k10", np.float32(10.0)), const("a", np.float32(0.3)),
          const("rs", np.array([-1, 1, 1, 1], np.int64))])
    manifest("tiny-diffusion", {
        "family": "diffusion", "version": "1", "description": "Test denoiser: tanh(0.3 x + t/1000 + y/10)",
        "output": IMAGE, "conditioning": COND,
        "graphs": {"denoiser": {"file": "denoiser.onnx", "inputs": {"sample": "x", "timestep": "t", "class_label": "y"}, "outputs": {"prediction": "eps"}}},
        "scheduler": "scheduler_config.json",
        "batching": {"max_batch_size": 32, "max_queue_delay_ms": 1, "max_queue_size": 512},
    })
    with open(os.path.join(HERE, "tiny-diffusion", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "DDPMScheduler", "_diffusers_version": "0.30.0", "num_train_timesteps": 100,
                   "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "beta_end": 0.02,
                   "prediction_type": "epsilon", "clip_sample": True, "clip_sample_range": 1.0,
                   "timestep_spacing": "trailing", "steps_offset": 0, "set_alpha_to_one": False,
                   "trained_betas": None, "variance_type": "fixed_small"}, f, indent=2)
        f.write("\n")


def tiny_ar():
    # Vocab 6, one layer, 2 heads of dim 3. present.key = concat(past.key, Ek[ids]) along the sequence;
    # logits = El[ids] + 0.01 * sum(present.key over heads, positions, dims).
    V, H, D = 6, 2, 3
    nodes = [
        helper.make_node("Gather", ["Ek", "ids"], ["k0"]),            # [B,S,H*D]
        helper.make_node("Reshape", ["k0", "bshd"], ["k1"]),          # [B,S,H,D]
        helper.make_node("Transpose", ["k1"], ["k2"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["pk", "k2"], ["present_k"], axis=2),
        helper.make_node("Gather", ["Ev", "ids"], ["v0"]),
        helper.make_node("Reshape", ["v0", "bshd"], ["v1"]),
        helper.make_node("Transpose", ["v1"], ["v2"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["pv", "v2"], ["present_v"], axis=2),
        helper.make_node("ReduceSum", ["present_k", "axes"], ["ks"], keepdims=0),   # [B]
        helper.make_node("Mul", ["ks", "c"], ["ksc"]),
        helper.make_node("Reshape", ["ksc", "b11"], ["ks3"]),
        helper.make_node("Gather", ["El", "ids"], ["l0"]),            # [B,S,V]
        helper.make_node("Add", ["l0", "ks3"], ["logits"]),
    ]
    save("tiny-ar", "decoder.onnx", nodes,
         [helper.make_tensor_value_info("ids", I64, ["batch", "seq"]),
          helper.make_tensor_value_info("pk", F, ["batch", H, "past", D]),
          helper.make_tensor_value_info("pv", F, ["batch", H, "past", D])],
         [helper.make_tensor_value_info("logits", F, ["batch", "seq", V]),
          helper.make_tensor_value_info("present_k", F, ["batch", H, "total", D]),
          helper.make_tensor_value_info("present_v", F, ["batch", H, "total", D])],
         [w("Ek", (V, H * D)), w("Ev", (V, H * D)), w("El", (V, V), 1.0), const("c", np.float32(0.01)),
          const("bshd", np.array([0, 0, H, D], np.int64)), const("axes", np.array([1, 2, 3], np.int64)),
          const("b11", np.array([-1, 1, 1], np.int64))])
    manifest("tiny-ar", {
        "family": "ar", "version": "1", "description": "Test AR decoder with a one-layer KV cache",
        "output": {"kind": "text", "shape": [8]},
        "graphs": {"decoder": {"file": "decoder.onnx",
                               "inputs": {"input_ids": "ids", "past_key_values.0.key": "pk", "past_key_values.0.value": "pv"},
                               "outputs": {"logits": "logits", "present.0.key": "present_k", "present.0.value": "present_v"}}},
        "tokens": {"vocab_size": V, "bos_token_id": 0, "eos_token_id": 1, "max_length": 9,
                   "vocabulary": ["<s>", "</s>", "a", "b", "c", "d"]},
        "batching": {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_queue_size": 128},
    })


if __name__ == "__main__":
    tiny_gan()
    tiny_vae()
    tiny_flow()
    tiny_diffusion()
    tiny_ar()
    print("wrote test models under", HERE)

"""PyTorch eager baseline for the text-to-image benchmark (docs/benchmarks.md, "Text-to-image (issue 13)").

The digits-txt2img pipeline in eager PyTorch, as a plain Python server would run it with diffusers'
StableDiffusionPipeline: the training's own modules (models/training/txt2img_model.py, loaded with their shipped
EMA weights by train_txt2img.load_all()), CLIP BPE tokenization (models/training/clip_bpe.py on the model's
tokenizer/), PNDM (PLMS, skip_prk_steps, the folder's scheduler config) for 50 steps = 51 UNet evaluations,
guidance 7.5 with the empty negative prompt, 1 sample per request, the image decoded by the VAE, clamped and
encoded as a base64 PNG in a JSON answer (what the service returns by default). Captions are the 600 of the
model's grammar, as in the service's benchmark; every request has its own seed.

Two ways of serving 16 concurrent clients (closed loop: each client sends the next request when its answer is in):
  plain    one request at a time (a single worker thread and a FIFO queue, as a plain Python server without a
           batching layer): each request's UNet call has 2 rows (unconditional + conditional); diffusers encodes the
           prompt and the negative prompt in two text-encoder calls.
  batched  the best case for eager PyTorch: the 16 clients' requests run together, one UNet call of 32 rows per step
           (16 unconditional + 16 conditional), one text-encoder call per 16 prompts and per 16 negative prompts,
           one VAE call per 16 images; every client waits for the whole batch.
Runs alternate (plain, batched, plain, ...); the last line is a JSON summary with the medians.

Checks before measuring (the script stops when one fails):
  - the torch weights are those in the served ONNX graphs: every ONNX initializer whose name is a module
    parameter (the exporter keeps state_dict names) is compared with it; max abs diff must be 0;
  - the torch PLMS step here equals the numpy PNDMScheduler transcription of
    tests/GenService.Sampling.Tests/Reference/make_reference.py on a 51-evaluation trajectory (<= 1e-5 relative).

Run: /usr/bin/python3 src/GenService.Bench/TextToImage/torch_txt2img_baseline.py [--runs 3] [--seconds 60]
     [--clients 16] [--threads 2] [--steps 50] [--guidance 7.5] [--model-dir models/digits-txt2img]
     [--training-dir models/training]
A run of `plain` first warms up for 1.5 x clients x one request's time (every client's first request answered, so
the queue is in steady state), then counts the requests answered in the next --seconds; `batched` warms up with one
batch. --seconds must hold several queue cycles: one request alone takes ~1 s here, so a plain client waits ~16 s.
torch.set_num_threads(--threads) (2: the VM's two cores, which the service's benchmark runs on too); one inter-op
thread.
"""
import argparse
import base64
import importlib.util
import json
import os
import queue
import random
import statistics
import struct
import sys
import threading
import time
import zlib

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TRAINING = os.path.join(ROOT, "models", "training")
SAMPLING_REF = os.path.join(ROOT, "tests", "GenService.Sampling.Tests", "Reference")
clip_bpe = train_txt2img = None  # models/training's modules, imported in main() (--training-dir)


def import_training(folder):
    """models/training/clip_bpe.py and train_txt2img.py (the torch modules and their shipped weights)."""
    global clip_bpe, train_txt2img
    sys.path[:0] = [folder, TRAINING]
    import clip_bpe as bpe
    import train_txt2img as training
    clip_bpe, train_txt2img = bpe, training


def captions():
    """The model's caption grammar in the order TextToImageBench.cs uses (a fixed shuffle is not reproduced here:
    .NET's Random differs from Python's; the set of 600 captions is the same, shuffled with Python's own seed)."""
    sizes = ["small", "large"]
    colours = ["black", "white", "red", "green", "blue", "yellow"]
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    all_ = [f"a {s} {fg} {d} on a {bg} background" for d in digits for s in sizes for fg in colours
            for bg in colours if bg != fg]
    random.Random(13).shuffle(all_)
    return all_


class Plms:
    """diffusers' PNDMScheduler with skip_prk_steps (the PLMS form Stable Diffusion 1.x runs), on torch tensors:
    timesteps [t_{N-1}, t_{N-2}, t_{N-2}, ..., t_0] (N + 1 evaluations), the linear multistep over the last four
    model outputs, and _get_prev_sample (formula 9 of the PNDM paper)."""

    def __init__(self, cfg, steps):
        T = cfg["num_train_timesteps"]
        if cfg["beta_schedule"] != "scaled_linear" or not cfg["skip_prk_steps"] or cfg["timestep_spacing"] != "leading":
            raise ValueError("this baseline runs the digits-txt2img scheduler: scaled_linear, leading, skip_prk_steps")
        betas = torch.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, T, dtype=torch.float64) ** 2
        self.acp = torch.cumprod(1 - betas, 0).float()
        self.final = torch.tensor(1.0) if cfg["set_alpha_to_one"] else self.acp[0]
        self.ratio = T // steps
        ts = np.arange(0, steps) * self.ratio + cfg["steps_offset"]
        self.timesteps = [int(t) for t in np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1]]
        self.ets, self.counter, self.cur_sample = [], 0, None

    def step(self, model_output, timestep, sample):
        prev_timestep = timestep - self.ratio
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            prev_timestep = timestep
            timestep = timestep + self.ratio
        e = self.ets
        if len(e) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(e) == 1 and self.counter == 1:
            model_output = (model_output + e[-1]) / 2
            sample, self.cur_sample = self.cur_sample, None
        elif len(e) == 2:
            model_output = (3 * e[-1] - e[-2]) / 2
        elif len(e) == 3:
            model_output = (23 * e[-1] - 16 * e[-2] + 5 * e[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * e[-1] - 59 * e[-2] + 37 * e[-3] - 9 * e[-4])
        a_t = self.acp[timestep]
        a_prev = self.acp[prev_timestep] if prev_timestep >= 0 else self.final
        b_t, b_prev = 1 - a_t, 1 - a_prev
        denom = a_t * b_prev ** 0.5 + (a_t * b_t * a_prev) ** 0.5
        self.counter += 1
        return (a_prev / a_t) ** 0.5 * sample - (a_prev - a_t) * model_output / denom


def check_plms(cfg, steps):
    """The torch PLMS against the numpy PNDMScheduler transcription of the sampling tests (float64 there)."""
    spec = importlib.util.spec_from_file_location("sampling_reference", os.path.join(SAMPLING_REF, "make_reference.py"))
    sys.path.insert(0, SAMPLING_REF)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    ref_cfg = ref.base_cfg(**{k: cfg[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end",
                                                  "prediction_type", "timestep_spacing", "steps_offset",
                                                  "set_alpha_to_one", "skip_prk_steps")})
    want = ref.Pndm(ref_cfg, steps)
    mine = Plms(cfg, steps)
    assert [int(t) for t in want.timesteps] == mine.timesteps, "timesteps differ from the reference PNDMScheduler"
    rng = np.random.default_rng(0)
    x_ref = rng.standard_normal(256)
    x = torch.tensor(x_ref, dtype=torch.float32)
    worst = 0.0
    for i, t in enumerate(mine.timesteps):
        eps = np.tanh(0.9 * x_ref + 0.001 * t)  # any smooth stand-in for the network
        x_ref = want.step(eps, i, x_ref, None)
        x = mine.step(torch.tensor(eps, dtype=torch.float32), t, x)
        worst = max(worst, float(np.abs(x.double().numpy() - x_ref).max() / np.abs(x_ref).max()))
    assert worst <= 1e-5, f"torch PLMS differs from the reference PNDMScheduler by {worst} (relative)"
    return worst


def check_weights(model_dir, modules):
    """Max abs diff between the ONNX graphs' initializers and the torch parameters of the same name."""
    import onnx
    from onnx import numpy_helper
    worst, matched, total = 0.0, 0, 0
    for part, prefix, module in modules:
        state = {prefix + k: v for k, v in module.state_dict().items()}
        total += len(state)
        for init in onnx.load(os.path.join(model_dir, part, "model.onnx")).graph.initializer:
            if init.name in state:
                w = numpy_helper.to_array(init)
                if w.shape == tuple(state[init.name].shape):
                    worst = max(worst, float(np.abs(w - state[init.name].numpy()).max()))
                    matched += 1
    assert matched >= total // 2, f"only {matched} of {total} parameters found by name in the ONNX graphs"
    assert worst == 0.0, f"the torch weights differ from the served ONNX graphs by {worst}"
    return worst, matched, total


def png(image):
    """[3, H, W] in [-1, 1] -> PNG bytes (8-bit RGB), -1 -> 0 and 1 -> 255 as the service maps them."""
    a = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Pipeline:
    def __init__(self, model_dir, steps, guidance):
        vae, te, unet, scaling, _ = train_txt2img.load_all()
        self.vae, self.te, self.unet, self.scaling = vae, te, unet, scaling
        self.tok = clip_bpe.ClipBpe.from_folder(os.path.join(model_dir, "tokenizer"))
        with open(os.path.join(model_dir, "scheduler", "scheduler_config.json")) as f:
            self.cfg = json.load(f)
        with open(os.path.join(model_dir, "unet", "config.json")) as f:
            size = json.load(f)["sample_size"]
        self.latent_shape = (unet.conv_in.in_channels, size, size)
        self.steps, self.guidance = steps, guidance

    @torch.no_grad()
    def __call__(self, prompts, seeds):
        """One answer per prompt: {"seed", "samples": [{"png": base64}]} as JSON text."""
        b = len(prompts)
        cond = self.te(torch.tensor([self.tok(p) for p in prompts], dtype=torch.int32))[0]
        uncond = self.te(torch.tensor([self.tok("")] * b, dtype=torch.int32))[0]
        ctx = torch.cat([uncond, cond])
        x = torch.stack([torch.randn(self.latent_shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        sched = Plms(self.cfg, self.steps)
        for t in sched.timesteps:
            eps = self.unet(torch.cat([x, x]), torch.full((2 * b,), float(t)), ctx)
            eps_u, eps_c = eps.chunk(2)
            x = sched.step(eps_u + self.guidance * (eps_c - eps_u), t, x)
        images = self.vae.decoder(x / self.scaling).clamp(-1, 1)
        return [json.dumps({"seed": s, "samples": [{"png": base64.b64encode(png(im)).decode()}]})
                for s, im in zip(seeds, images)]


def plain(pipe, prompts, clients, seconds, seed0, warm):
    """clients closed-loop client threads; the main thread serves the FIFO queue one request at a time (torch runs in
    the main thread only: a second thread's OpenMP team competes with the first one's spinning workers, which made
    every call ~4x slower here). Counted: the requests answered inside the window (after a warm-up that fills the
    queue), with their latency from sending to answer."""
    q = queue.Queue()
    stop = threading.Event()
    spans = []

    def client(k):
        i = 0
        while not stop.is_set():
            box = {"event": threading.Event()}
            t0 = time.perf_counter()
            q.put((prompts[(k * 37 + i) % len(prompts)], seed0 + k * 100_000 + i, box))
            box["event"].wait()
            spans.append((t0, time.perf_counter()))
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter() + warm
    end = start + seconds
    while any(t.is_alive() for t in threads) or not q.empty():
        if time.perf_counter() >= end:
            stop.set()
        try:
            prompt, seed, box = q.get(timeout=0.05)
        except queue.Empty:
            continue
        box["answer"] = pipe([prompt], [seed])[0]
        box["event"].set()
    lat = [(t1 - t0) * 1000 for t0, t1 in spans if start <= t1 < end]
    return len(lat) / (end - start), lat


def batched(pipe, prompts, clients, seconds, seed0, warm=None):
    """clients requests at once, again and again: one pipeline call over all of them (the best case)."""
    pipe(prompts[:clients], list(range(clients)))  # warm-up
    lat, n, i = [], 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ps = [prompts[(i * clients + k) % len(prompts)] for k in range(clients)]
        s = time.perf_counter()
        pipe(ps, [seed0 + i * clients + k for k in range(clients)])
        lat.extend([(time.perf_counter() - s) * 1000] * clients)
        n += clients
        i += 1
    return n / (time.perf_counter() - t0), lat


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(np.ceil(q * len(v))) - 1))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--model-dir", default=os.path.join(ROOT, "models", "digits-txt2img"))
    p.add_argument("--training-dir", default=TRAINING, help="models/training of the checkout whose weights to run")
    a = p.parse_args()
    import_training(a.training_dir)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    pipe = Pipeline(a.model_dir, a.steps, a.guidance)
    weights = check_weights(a.model_dir, [("unet", "unet.", pipe.unet), ("text_encoder", "te.", pipe.te),
                                          ("vae_decoder", "vae.decoder.", pipe.vae.decoder)])
    plms = check_plms(pipe.cfg, a.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; weights = ONNX "
          f"initializers ({weights[1]} of {weights[2]} parameters by name, max abs diff {weights[0]}); PLMS vs "
          f"reference PNDMScheduler {plms:.1e} relative; {len(Plms(pipe.cfg, a.steps).timesteps)} UNet evaluations "
          f"per image, guidance {a.guidance}", flush=True)
    prompts = captions()
    single = []
    for i in range(3):
        t0 = time.perf_counter()
        pipe(prompts[i:i + 1], [i])
        single.append(time.perf_counter() - t0)
    # plain: the window opens once every client's first request is through (the queue in steady state)
    warm = max(2.0, 1.5 * a.clients * min(single))
    print(f"one request alone: {1000 * min(single):.0f} ms; plain mode warms up for {warm:.0f} s per run", flush=True)
    results = {"plain": [], "batched": []}
    for r in range(a.runs):
        for mode, fn in (("plain", plain), ("batched", batched)):
            load = os.getloadavg()
            rps, lat = fn(pipe, prompts, a.clients, a.seconds, seed0=1_000_000 * (r + 1), warm=warm)
            row = {"req_per_s": rps, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "n": len(lat),
                   "load_average": [round(x, 2) for x in load]}
            results[mode].append(row)
            print(f"run {r + 1} {mode}: {rps:.2f} req/s, p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms "
                  f"({len(lat)} requests), load {load[0]:.2f}", flush=True)
    summary = {"torch": torch.__version__, "single_request_ms": round(1000 * min(single), 1), "plain_warmup_s": round(warm, 1), "threads": a.threads, "interop_threads": 1, "cores": os.cpu_count(),
               "clients": a.clients, "steps": a.steps, "unet_evaluations": len(Plms(pipe.cfg, a.steps).timesteps),
               "guidance": a.guidance, "weights_max_abs_diff": weights[0], "plms_vs_reference": plms,
               "seconds": a.seconds}
    for mode, rows in results.items():
        rps = [x["req_per_s"] for x in rows]
        median = sorted(rows, key=lambda x: x["req_per_s"])[len(rows) // 2]
        summary[mode] = {"median_req_per_s": statistics.median(rps), "runs_req_per_s": [round(x, 3) for x in rps],
                         "p50_ms": median["p50_ms"], "p99_ms": median["p99_ms"], "runs": rows}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

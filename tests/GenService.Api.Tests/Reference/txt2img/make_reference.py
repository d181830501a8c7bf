"""Reference text-to-image results for GenService's txt2img pipeline, on the shipped models/digits-txt2img weights.

Run:  /usr/bin/python3 tests/GenService.Api.Tests/Reference/txt2img/make_reference.py
It rewrites cases.json next to this file. Each case is an exact HTTP request (prompt, negative_prompt,
guidance_scale, sampler, steps, height, width, seed, explicit unit-normal `latents`, output "tensor") and the
image the service must return for it (CHW floats in [-1, 1], samples in order).

An independent PyTorch + numpy implementation of the equations of diffusers' StableDiffusionPipeline
(pipeline_stable_diffusion.py __call__), written without diffusers (not installed here):
    ids = CLIP tokenize(prompt), padded to model_max_length; uncond ids from negative_prompt ("" when absent)
    cond = text_encoder(ids).last_hidden_state
    x = latents * init_noise_sigma
    for i, t in enumerate(timesteps):
        inp = scale_model_input(x, i)
        guidance_scale != 1: eps_u, eps_c = unet(cat[inp, inp], t, cat[uncond, cond]); eps = eps_u + g (eps_c - eps_u)
        else:                eps = unet(inp, t, cond)
        x = scheduler.step(eps, i, x, noise_i)
    image = clamp(vae_decoder(x / scaling_factor), -1, 1)
The schedulers are the numpy classes of tests/GenService.Sampling.Tests/Reference/make_reference.py (imported,
float64). Step noise of the stochastic samplers is the service's: sample k of a request draws latent-size
normals from NoiseStream(seed, k, stream 1) (philox_ref.normals) at each step that needs noise, in step order.
The tokenizer is the real CLIP BPE (models/training/clip_bpe.py, openai's algorithm on the model's
vocab.json/merges.txt), not the caption lookup used in training. The networks are the torch modules of
models/training/txt2img_model.py with the weights models/training/weights/digits-txt2img.pt, which are the
weights exported to the ONNX graphs (train_txt2img.py exports from that file).

The tolerance of each case is measured, not guessed: the same case run with float64 networks differs from the
float32 run by d; the case allows max(1e-3, 20 d) (ONNX Runtime's float32 kernels differ from PyTorch's by
rounding, which the sampler loop and guidance amplify as the float64 run does).
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
SAMPLING_REF = os.path.join(REPO, "tests", "GenService.Sampling.Tests", "Reference")
TRAINING = os.path.join(REPO, "models", "training")
MODEL_DIR = os.path.join(REPO, "models", "digits-txt2img")
OUT = os.path.join(HERE, "cases.json")

sys.path.insert(0, TRAINING)
import train_txt2img  # noqa: E402  (torch modules + weight loading)


def _import_sampling_ref(path=None):
    """tests/GenService.Sampling.Tests/Reference/make_reference.py as a module (its schedulers and philox_ref)."""
    import importlib.util
    folder = path or SAMPLING_REF
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("sampling_make_reference", os.path.join(folder, "make_reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import philox_ref
    return mod, philox_ref


def _import_clip_bpe():
    """models/training/clip_bpe.py; before that lands on this branch, the clip-tokenizer worktree's copy."""
    for folder in (TRAINING, "/work/wt-clip-tokenizer/models/training"):
        if os.path.exists(os.path.join(folder, "clip_bpe.py")):
            if folder not in sys.path:
                sys.path.insert(0, folder)
            import clip_bpe
            return clip_bpe
    raise FileNotFoundError("clip_bpe.py (the CLIP BPE reference) not found in models/training")


class Pipeline:
    def __init__(self, model_dir=MODEL_DIR, sampling_ref=None, dtype=torch.float32):
        self.ref, self.philox = _import_sampling_ref(sampling_ref)
        self.tok = _import_clip_bpe().ClipBpe.from_folder(os.path.join(model_dir, "tokenizer"))
        vae, te, unet, scaling, _ = train_txt2img.load_all()
        with open(os.path.join(model_dir, "vae_decoder", "config.json")) as f:
            cfg_scaling = json.load(f)["scaling_factor"]
        if abs(cfg_scaling - scaling) > 1e-12:
            raise ValueError(f"vae_decoder/config.json scaling_factor {cfg_scaling} != weights' {scaling}")
        self.dtype = dtype
        self.vae, self.te, self.unet = vae.to(dtype), te.to(dtype), unet.to(dtype)
        self.scaling = scaling
        with open(os.path.join(model_dir, "scheduler", "scheduler_config.json")) as f:
            s = json.load(f)
        self.sched_cfg = self.ref.base_cfg(
            num_train_timesteps=s["num_train_timesteps"], beta_schedule=s["beta_schedule"],
            beta_start=s["beta_start"], beta_end=s["beta_end"], prediction_type=s["prediction_type"],
            clip_sample=s["clip_sample"], timestep_spacing=s["timestep_spacing"], steps_offset=s["steps_offset"],
            set_alpha_to_one=s["set_alpha_to_one"], skip_prk_steps=s["skip_prk_steps"])

    @torch.no_grad()
    def text(self, prompts):
        ids = torch.tensor([self.tok(p) for p in prompts], dtype=torch.int32)
        return self.te(ids)[0]

    @torch.no_grad()
    def __call__(self, prompts, negative_prompts=None, guidance_scale=7.5, sampler="pndm", steps=50, latents=None,
                 seed=0, eta=0.0, unet_batch=None):
        """prompts: list (one per sample); latents: float array [B, 4, h, w] (unit normal); returns images
        [B, 3, 4h, 4w] float64 in [-1, 1]. Sample k's step noise is NoiseStream(seed, k, 1)."""
        b = len(prompts)
        negative_prompts = negative_prompts or [""] * b
        lat = np.asarray(latents, dtype=np.float64)
        shape = lat.shape
        n_lat = int(np.prod(shape[1:]))
        guided = guidance_scale != 1
        cond = self.text(prompts)
        ctx = torch.cat([self.text(negative_prompts), cond]) if guided else cond
        s = self.ref.make(self.sched_cfg, sampler, steps, eta)
        x = lat.reshape(b, -1) * s.init_noise_sigma
        noise_steps = sum(1 for i in range(len(s.timesteps)) if s.needs_noise(i))
        bank = [self.philox.normals(seed, k, 1, noise_steps * n_lat).astype(np.float64).reshape(noise_steps, n_lat)
                if noise_steps else None for k in range(b)]
        used = 0
        for i, t in enumerate(s.timesteps):
            inp = torch.tensor(s.scale(x, i).reshape(shape), dtype=self.dtype)
            if guided:
                inp = torch.cat([inp, inp])
            ts = torch.full((inp.shape[0],), float(t), dtype=self.dtype)
            eps = self._unet(inp, ts, ctx, unet_batch).double().numpy().reshape(inp.shape[0], -1)
            if guided:
                eps_u, eps_c = eps[:b], eps[b:]
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            noise = None
            if s.needs_noise(i):
                noise = np.stack([bank[k][used] for k in range(b)])
                used += 1
            x = s.step(eps, i, x, noise)
        z = torch.tensor(x.reshape(shape) / self.scaling, dtype=self.dtype)
        return torch.clamp(self.vae.decoder(z), -1, 1).double().numpy()

    def _unet(self, inp, ts, ctx, unet_batch):
        if not unet_batch or inp.shape[0] <= unet_batch:
            return self.unet(inp, ts, ctx)
        return torch.cat([self.unet(inp[i:i + unet_batch], ts[i:i + unet_batch], ctx[i:i + unet_batch])
                          for i in range(0, inp.shape[0], unet_batch)])


# (name, prompt, negative_prompt, guidance_scale, sampler, steps, height, width, seed, count)
CASES = [
    ("ddim_20_cfg7.5_32x32", "a small red seven on a blue background", None, 7.5, "ddim", 20, 32, 32, 11, 1),
    ("dpmpp_15_cfg7.5_negative_32x32", "a large yellow three on a black background",
     "a large white three on a black background", 7.5, "dpm_solver_pp", 15, 32, 32, 12, 1),
    ("euler_15_noguidance_32x32", "a large green zero on a white background", None, 1.0, "euler", 15, 32, 32, 13, 1),
    ("ddpm_20_cfg5_48x48", "a small white four on a red background", None, 5.0, "ddpm", 20, 48, 48, 14, 1),
    ("euler_ancestral_15_cfg7.5_32x64", "a large blue two on a yellow background", None, 7.5, "euler_ancestral", 15,
     32, 64, 15, 1),
    ("ddim_10_cfg7.5_count2_32x32", "a small black eight on a green background", None, 7.5, "ddim", 10, 32, 32, 16, 2),
    ("euler_ancestral_10_noguidance_negative_ignored_32x32", "a large red nine on a white background",
     "a large red one on a white background", 1.0, "euler_ancestral", 10, 32, 32, 17, 1),
    ("dpmpp_10_cfg3_unknown_words_48x48", "A Small GREEN five, on a black background!!", "blurry", 3.0,
     "dpm_solver_pp", 10, 48, 48, 18, 1),
    # PNDM (the model's own scheduler, the serving default): added by the lead after the pndm branch lands,
    # e.g. ("pndm_50_cfg7.5_32x32", ..., "pndm", 50, ...) and one pndm case at 20 steps with a negative prompt.
]


def main():
    pipe = Pipeline()
    pipe64 = Pipeline(dtype=torch.float64)
    rng = np.random.default_rng(20261203)
    cases = []
    for name, prompt, neg, g, sampler, steps, h, w, seed, count in CASES:
        shape = (count, 4, h // 4, w // 4)
        latents = rng.standard_normal(shape).astype(np.float32)
        args = dict(prompts=[prompt] * count, negative_prompts=[neg] * count if neg is not None else None,
                    guidance_scale=g, sampler=sampler, steps=steps, latents=latents, seed=seed)
        img = pipe(**args)
        d = float(np.abs(pipe64(**args) - img).max())
        request = {"prompt": prompt, "guidance_scale": g, "sampler": sampler, "steps": steps, "height": h,
                   "width": w, "seed": seed, "count": count,
                   # '%.9g' round-trips float32 exactly: the service gets the very latents used here
                   "latents": [float("%.9g" % v) for v in latents.reshape(-1)], "output": "tensor"}
        if neg is not None:
            request["negative_prompt"] = neg
        cases.append({"name": name, "request": request, "latent_shape": list(shape),
                      "image_shape": list(img.shape),
                      "expected": [float("%.5g" % v) for v in img.reshape(-1)],  # 5e-6 rounding << tolerance
                      "float64_network_max_abs_diff": float("%.3g" % d),
                      "max_abs_diff_tolerance": float("%.3g" % max(1e-3, 20 * d))})
        print(f"{name}: image {img.shape}, range [{img.min():.3f}, {img.max():.3f}], float64 diff {d:.2e}")
    doc = {
        "model": "models/digits-txt2img",
        "generator": "tests/GenService.Api.Tests/Reference/txt2img/make_reference.py",
        "notes": "expected = StableDiffusionPipeline equations in PyTorch on the shipped weights; latents are the "
                 "unit-normal x_T before init_noise_sigma; sample k's step noise is NoiseStream(seed, k, 1); "
                 "images CHW in [-1, 1], samples concatenated",
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()

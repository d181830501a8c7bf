"""Cross-check of the pndm cases in Fixtures/diffusion.json against diffusers' own PNDMScheduler source.

Run:  /usr/bin/python3 check_pndm_against_diffusers.py /path/to/diffusers/src/diffusers/schedulers/scheduling_pndm.py
diffusers is not installed here, so its scheduling_pndm.py is loaded with tiny stand-ins for the three things it
imports from the package (ConfigMixin/register_to_config, SchedulerMixin, SchedulerOutput); torch runs the math.
Every pndm case is replayed as diffusers' pipelines drive the scheduler (set_timesteps, img2img's get_timesteps and
add_noise at timesteps[t_start], step per timestep) and compared with the fixture's expected sample, twice:
- with the schedule in float64 (the source's torch.float32 swapped for torch.float64, as make_reference.py and the
  C# code compute it): this checks the transcription; relative error must be <= 1e-9;
- as shipped (float32 betas and alphas_cumprod): reported only. It differs by ~1e-6 relative except where
  alphas_cumprod is tiny (the cosine schedule's last timesteps: acp_999 ~ 1e-8), where float32's cumulative
  product is off by ~1e-4 relative and the sample follows.
"""
import inspect
import json
import os
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def load_pndm(path, float64):
    shim = types.ModuleType("shim")

    class ConfigMixin:
        pass

    class SchedulerMixin:
        pass

    class SchedulerOutput:
        def __init__(self, prev_sample):
            self.prev_sample = prev_sample

    def register_to_config(init):
        sig = inspect.signature(init)

        def wrapped(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            self.config = types.SimpleNamespace(**{k: v for k, v in bound.arguments.items() if k != "self"})
            init(self, *args, **kwargs)
        return wrapped

    shim.ConfigMixin, shim.register_to_config = ConfigMixin, register_to_config
    shim.SchedulerMixin, shim.SchedulerOutput, shim.KarrasDiffusionSchedulers = SchedulerMixin, SchedulerOutput, []
    src = open(path).read()
    src = src.replace("from ..configuration_utils import ConfigMixin, register_to_config", "")
    src = src.replace("from .scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin, SchedulerOutput", "")
    if float64:
        assert "dtype=torch.float32" in src
        src = src.replace("dtype=torch.float32", "dtype=torch.float64")
    module = types.ModuleType("scheduling_pndm")
    module.__dict__.update(ConfigMixin=ConfigMixin, register_to_config=register_to_config, SchedulerMixin=SchedulerMixin,
                           SchedulerOutput=SchedulerOutput, KarrasDiffusionSchedulers=[])
    exec(compile(src, path, "exec"), module.__dict__)
    return module.PNDMScheduler


def denoiser(x, t):
    j = torch.arange(x.shape[-1], dtype=torch.float64)
    return 0.5 * torch.tanh(0.9 * x + 0.001 * float(t)) + 0.1 * torch.sin(x + 0.05 * j)


def replay(path, float64):
    PNDMScheduler = load_pndm(path, float64)
    root = json.load(open(os.path.join(HERE, "..", "Fixtures", "diffusion.json")))
    latents = torch.tensor(root["latents"], dtype=torch.float64)
    init = torch.tensor(root["init"], dtype=torch.float64)
    worst, count = 0.0, 0
    for c in root["cases"]:
        if c["sampler"] != "pndm":
            continue
        cfg = c["config"]
        s = PNDMScheduler(num_train_timesteps=cfg["num_train_timesteps"], beta_start=cfg["beta_start"],
                          beta_end=cfg["beta_end"], beta_schedule=cfg["beta_schedule"],
                          skip_prk_steps=cfg["skip_prk_steps"], set_alpha_to_one=cfg["set_alpha_to_one"],
                          prediction_type=cfg["prediction_type"], timestep_spacing=cfg["timestep_spacing"],
                          steps_offset=cfg["steps_offset"])
        N = c["steps"]
        s.set_timesteps(N)
        assert [float(t) for t in s.timesteps] == c["timesteps"], (c["timesteps"], s.timesteps)
        timesteps = s.timesteps
        if c["strength"] is None:
            x = latents * s.init_noise_sigma
        else:
            init_timestep = min(int(N * c["strength"]), N)
            t_start = max(N - init_timestep, 0)
            assert t_start == c["start_step"]
            timesteps = timesteps[t_start:]
            x = s.add_noise(init, latents, timesteps[:1])
        for t in timesteps:
            x = s.step(denoiser(x, t), t, x).prev_sample
        expected = np.array(c["expected"])
        err = float(np.max(np.abs(x.numpy() - expected)) / (np.max(np.abs(expected)) + 1e-6))
        worst = max(worst, err)
        count += 1
        if float64:
            assert err <= 1e-9, (c, err)
    return count, worst


if __name__ == "__main__":
    n, worst = replay(sys.argv[1], float64=True)
    print(f"{n} pndm cases match diffusers' PNDMScheduler with a float64 schedule; worst relative error {worst:.2e}")
    n, worst = replay(sys.argv[1], float64=False)
    print(f"as shipped (float32 schedule): worst relative error {worst:.2e}")

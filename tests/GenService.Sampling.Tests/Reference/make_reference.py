"""Reference numbers for GenService.Sampling, written independently of the C# code.

Run:  /usr/bin/python3 tests/GenService.Sampling.Tests/Reference/make_reference.py
It rewrites the JSON fixtures in tests/GenService.Sampling.Tests/Fixtures/, which the C# tests load.

The diffusion schedulers below are transcribed from the published update equations as diffusers (0.2x-0.3x)
defines them in DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint,
lower_order_final, final_sigmas_type "zero"), EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
PNDMScheduler (PLMS with skip_prk_steps, PRK warm-up without; transcribed from scheduling_pndm.py at diffusers
commit 58eb52c0) (diffusers itself is not installed here). Everything is float64; diffusers keeps its schedule in float32, which
moves the results by ~1e-6 relative, far inside the 1e-4 the tests allow.

A pipeline loop is simulated exactly as diffusers pipelines do it:
    x = latents * init_noise_sigma
    for i, t in enumerate(timesteps):
        x = step(model(scale_model_input(x, i), t), i, x, noise[i])
with a small smooth analytic "denoiser" (also written in the C# tests) and fixed latents and per-step noise.
"""
import json
import math
import os

import numpy as np

import philox_ref

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Fixtures")
D = 16  # elements per sample


def denoiser(x, t):
    """Smooth, elementwise-but-position-dependent stand-in for a network: pred(x, t)."""
    j = np.arange(x.shape[-1], dtype=np.float64)
    return 0.5 * np.tanh(0.9 * x + 0.001 * t) + 0.1 * np.sin(x + 0.05 * j)


# ---------------------------------------------------------------- schedules
def betas_for(cfg):
    T = cfg["num_train_timesteps"]
    if cfg["beta_schedule"] == "linear":
        return np.linspace(cfg["beta_start"], cfg["beta_end"], T)
    if cfg["beta_schedule"] == "scaled_linear":
        return np.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, T) ** 2
    if cfg["beta_schedule"] == "squaredcos_cap_v2":
        # betas_for_alpha_bar, cosine: alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, max_beta 0.999
        ab = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - ab((i + 1) / T) / ab(i / T), 0.999) for i in range(T)])
    raise ValueError(cfg["beta_schedule"])


def alphas_cumprod_for(cfg):
    return np.cumprod(1.0 - betas_for(cfg))


def pred_x0_eps(pred_type, model_output, sample, a_t, b_t):
    """(x0, eps) from a model output given alpha_prod_t and beta_prod_t = 1 - alpha_prod_t (DDPM/DDIM form)."""
    if pred_type == "epsilon":
        x0 = (sample - b_t ** 0.5 * model_output) / a_t ** 0.5
        eps = model_output
    elif pred_type == "sample":
        x0 = model_output
        eps = (sample - a_t ** 0.5 * x0) / b_t ** 0.5
    else:  # v_prediction
        x0 = a_t ** 0.5 * sample - b_t ** 0.5 * model_output
        eps = a_t ** 0.5 * model_output + b_t ** 0.5 * sample
    return x0, eps


def int_timesteps(cfg, N):
    """DDPMScheduler / DDIMScheduler.set_timesteps."""
    T, sp = cfg["num_train_timesteps"], cfg["timestep_spacing"]
    if sp == "linspace":
        return np.linspace(0, T - 1, N).round()[::-1].astype(np.int64)
    if sp == "leading":
        r = T // N
        return (np.arange(0, N) * r).round()[::-1].astype(np.int64) + cfg["steps_offset"]
    r = T / N
    return np.round(np.arange(T, 0, -r)).astype(np.int64) - 1


class Ddpm:
    def __init__(self, cfg, N):
        self.cfg, self.N = cfg, N
        self.acp = alphas_cumprod_for(cfg)
        self.timesteps = [float(t) for t in int_timesteps(cfg, N)]
        self.init_noise_sigma = 1.0

    def scale(self, x, i):
        return x

    def needs_noise(self, i):
        return self.timesteps[i] > 0

    def step(self, out, i, x, noise):
        cfg = self.cfg
        t = int(self.timesteps[i])
        prev_t = t - cfg["num_train_timesteps"] // self.N
        a_t = self.acp[t]
        a_prev = self.acp[prev_t] if prev_t >= 0 else 1.0
        b_t, b_prev = 1 - a_t, 1 - a_prev
        cur_a = a_t / a_prev
        cur_b = 1 - cur_a
        x0, _ = pred_x0_eps(cfg["prediction_type"], out, x, a_t, b_t)
        if cfg["clip_sample"]:
            x0 = np.clip(x0, -cfg["clip_sample_range"], cfg["clip_sample_range"])
        mean = (a_prev ** 0.5 * cur_b / b_t) * x0 + (cur_a ** 0.5 * b_prev / b_t) * x
        if t > 0:
            var = max(b_prev / b_t * cur_b, 1e-20)  # fixed_small
            mean = mean + var ** 0.5 * noise
        return mean

    def add_noise(self, x0, noise, i):
        a = self.acp[int(self.timesteps[i])]
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise


class Ddim(Ddpm):
    def __init__(self, cfg, N, eta):
        super().__init__(cfg, N)
        self.eta = eta
        self.final = 1.0 if cfg["set_alpha_to_one"] else self.acp[0]

    def needs_noise(self, i):
        return self.eta > 0

    def step(self, out, i, x, noise):
        cfg = self.cfg
        t = int(self.timesteps[i])
        prev_t = t - cfg["num_train_timesteps"] // self.N
        a_t = self.acp[t]
        a_prev = self.acp[prev_t] if prev_t >= 0 else self.final
        b_t = 1 - a_t
        x0, eps = pred_x0_eps(cfg["prediction_type"], out, x, a_t, b_t)
        if cfg["clip_sample"]:
            x0 = np.clip(x0, -cfg["clip_sample_range"], cfg["clip_sample_range"])
        var = (1 - a_prev) / b_t * (1 - a_t / a_prev)
        std = self.eta * var ** 0.5
        prev = a_prev ** 0.5 * x0 + (1 - a_prev - std ** 2) ** 0.5 * eps
        if self.eta > 0:
            prev = prev + std * noise
        return prev


def alpha_sigma(sigma):
    a = 1.0 / (sigma ** 2 + 1) ** 0.5
    return a, sigma * a


class DpmSolverPP:
    def __init__(self, cfg, N):
        self.cfg = cfg
        T, sp = cfg["num_train_timesteps"], cfg["timestep_spacing"]
        self.acp = alphas_cumprod_for(cfg)
        if sp == "linspace":
            ts = np.linspace(0, T - 1, N + 1).round()[::-1][:-1].astype(np.int64)
        elif sp == "leading":
            r = T // (N + 1)
            ts = (np.arange(0, N + 1) * r).round()[::-1][:-1].astype(np.int64) + cfg["steps_offset"]
        else:
            r = T / N
            ts = np.arange(T, 0, -r).round().astype(np.int64) - 1
        all_sig = ((1 - self.acp) / self.acp) ** 0.5
        self.sigmas = list(np.interp(ts, np.arange(T), all_sig)) + [0.0]
        self.timesteps = [float(t) for t in ts]
        self.init_noise_sigma = 1.0
        self.reset()

    def reset(self):
        self.m_prev = None
        self.lower_order_nums = 0

    def scale(self, x, i):
        return x

    def needs_noise(self, i):
        return False

    def lam(self, s):
        a, sg = alpha_sigma(s)
        return math.log(a) - math.log(sg)

    def step(self, out, i, x, noise):
        n = len(self.timesteps)
        s0 = self.sigmas[i]
        a0, sg0 = alpha_sigma(s0)
        p = self.cfg["prediction_type"]
        if p == "epsilon":
            m0 = (x - sg0 * out) / a0
        elif p == "sample":
            m0 = out
        else:
            m0 = a0 * x - sg0 * out
        lower_final = i == n - 1  # final_sigmas_type "zero" forces first order on the last step
        lower_second = i == n - 2 and n < 15
        st = self.sigmas[i + 1]
        if self.lower_order_nums < 1 or lower_final:
            if st == 0.0:
                res = m0  # sigma_t = 0: alpha_t = 1, exp(-h) = 0
            else:
                at, sgt = alpha_sigma(st)
                h = self.lam(st) - self.lam(s0)
                res = (sgt / sg0) * x - (at * (math.exp(-h) - 1.0)) * m0
        else:
            assert lower_second or True  # order 2 is the maximum, so "lower_order_second" changes nothing
            s1 = self.sigmas[i - 1]
            at, sgt = alpha_sigma(st)
            h = self.lam(st) - self.lam(s0)
            h0 = self.lam(s0) - self.lam(s1)
            if h == 0.0:
                # A repeated timestep (leading spacing with N + 1 > T, or linspace with N ~ T) makes diffusers
                # divide 0 by 0; GenService treats the step as the identity it is in the first-order limit.
                self.m_prev = m0
                return x
            r0 = h0 / h
            D0, D1 = m0, (1.0 / r0) * (m0 - self.m_prev)
            res = (sgt / sg0) * x - (at * (math.exp(-h) - 1.0)) * D0 - 0.5 * (at * (math.exp(-h) - 1.0)) * D1
        self.m_prev = m0
        if self.lower_order_nums < 2:
            self.lower_order_nums += 1
        return res

    def add_noise(self, x0, noise, i):
        a, s = alpha_sigma(self.sigmas[i])
        return a * x0 + s * noise


class Euler:
    ancestral = False

    def __init__(self, cfg, N):
        self.cfg = cfg
        T, sp = cfg["num_train_timesteps"], cfg["timestep_spacing"]
        self.acp = alphas_cumprod_for(cfg)
        if sp == "linspace":
            ts = np.linspace(0, T - 1, N)[::-1].copy()
        elif sp == "leading":
            r = T // N
            ts = (np.arange(0, N) * r).round()[::-1].astype(np.float64) + cfg["steps_offset"]
        else:
            r = T / N
            ts = np.arange(T, 0, -r).round().astype(np.float64) - 1
        all_sig = ((1 - self.acp) / self.acp) ** 0.5
        self.sigmas = list(np.interp(ts, np.arange(T), all_sig)) + [0.0]
        self.timesteps = [float(t) for t in ts]
        mx = max(self.sigmas)
        self.init_noise_sigma = mx if sp in ("linspace", "trailing") else (mx ** 2 + 1) ** 0.5

    def scale(self, x, i):
        return x / (self.sigmas[i] ** 2 + 1) ** 0.5

    def x0(self, out, x, s):
        p = self.cfg["prediction_type"]
        if p == "epsilon":
            return x - s * out
        if p == "sample":
            return out
        return out * (-s / (s ** 2 + 1) ** 0.5) + x / (s ** 2 + 1)

    def needs_noise(self, i):
        return False

    def step(self, out, i, x, noise):
        s, s_next = self.sigmas[i], self.sigmas[i + 1]
        x0 = self.x0(out, x, s)
        d = (x - x0) / s
        return x + d * (s_next - s)

    def add_noise(self, x0, noise, i):
        return x0 + noise * self.sigmas[i]


class EulerAncestral(Euler):
    def needs_noise(self, i):
        return self.sigmas[i + 1] > 0

    def step(self, out, i, x, noise):
        s, s_to = self.sigmas[i], self.sigmas[i + 1]
        x0 = self.x0(out, x, s)  # diffusers raises for "sample"; GenService uses x0 = output (documented)
        up = (s_to ** 2 * (s ** 2 - s_to ** 2) / s ** 2) ** 0.5
        down = (s_to ** 2 - up ** 2) ** 0.5
        d = (x - x0) / s
        res = x + d * (down - s)
        return res + noise * up if noise is not None else res


class Pndm:
    """PNDMScheduler, transcribed from diffusers' scheduling_pndm.py (set_timesteps, step, step_prk, step_plms,
    _get_prev_sample) with its running values (ets, counter, cur_sample, cur_model_output) kept per sample.

    skip_prk_steps true (Stable Diffusion 1.x): PLMS only, timesteps [t_{N-1}, t_{N-2}, t_{N-2}, ..., t_0] (N + 1
    evaluations; N = 1 gives just [t_0]). skip_prk_steps false (diffusers' default): 12 Runge-Kutta (PRK) evaluations
    over the 4 noisiest timesteps, then PLMS from the 4th noisiest down (N + 9 evaluations; needs N >= 4, diffusers
    fails on a shape mismatch below). The counter counts this sample's steps since its start, not the step index,
    so an img2img run that starts at t_start > 0 begins at counter 0 exactly as a freshly set diffusers scheduler.
    """

    def __init__(self, cfg, N):
        if cfg["prediction_type"] not in ("epsilon", "v_prediction"):
            raise ValueError("PNDMScheduler supports epsilon and v_prediction only")
        self.cfg, self.N = cfg, N
        T, sp = cfg["num_train_timesteps"], cfg["timestep_spacing"]
        self.acp = alphas_cumprod_for(cfg)
        self.final = 1.0 if cfg["set_alpha_to_one"] else self.acp[0]
        self.skip_prk = cfg.get("skip_prk_steps", False)
        if sp == "linspace":
            ts = np.linspace(0, T - 1, N).round().astype(np.int64)
        elif sp == "leading":
            ratio = T // N
            ts = (np.arange(0, N) * ratio).round()
            ts += cfg["steps_offset"]
        else:
            ratio = T / N
            ts = np.round(np.arange(T, 0, -ratio))[::-1].astype(np.int64)
            ts -= 1
        if self.skip_prk:
            prk = np.array([])
            plms = np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1].copy()
        else:
            prk = np.array(ts[-4:]).repeat(2) + np.tile(np.array([0, T // N // 2]), 4)
            prk = (prk[:-1].repeat(2)[1:-1])[::-1].copy()
            plms = ts[:-3][::-1].copy()
        self.prk = [int(t) for t in prk]
        self.timesteps = [float(t) for t in np.concatenate([prk, plms]).astype(np.int64)]
        self.schedule = [float(t) for t in ts[::-1]]  # the N inference timesteps, noisiest first
        self.init_noise_sigma = 1.0
        self.ets, self.counter, self.cur_sample, self.cur_model_output = [], 0, None, 0

    def scale(self, x, i):
        return x

    def needs_noise(self, i):
        return False

    def step(self, out, i, x, noise):
        t = int(self.timesteps[i])
        if self.counter < len(self.prk) and not self.skip_prk:
            return self.step_prk(out, t, x)
        return self.step_plms(out, t, x)

    def step_prk(self, model_output, timestep, sample):
        T, N = self.cfg["num_train_timesteps"], self.N
        diff_to_prev = 0 if self.counter % 2 else T // N // 2
        prev_timestep = timestep - diff_to_prev
        timestep = self.prk[self.counter // 4 * 4]
        if self.counter % 4 == 0:
            self.cur_model_output = self.cur_model_output + 1 / 6 * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif (self.counter - 1) % 4 == 0:
            self.cur_model_output = self.cur_model_output + 1 / 3 * model_output
        elif (self.counter - 2) % 4 == 0:
            self.cur_model_output = self.cur_model_output + 1 / 3 * model_output
        elif (self.counter - 3) % 4 == 0:
            model_output = self.cur_model_output + 1 / 6 * model_output
            self.cur_model_output = 0
        cur_sample = self.cur_sample if self.cur_sample is not None else sample
        prev_sample = self.prev_sample(cur_sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return prev_sample

    def step_plms(self, model_output, timestep, sample):
        T, N = self.cfg["num_train_timesteps"], self.N
        if not self.skip_prk and len(self.ets) < 3:
            raise ValueError("PLMS before 12 PRK steps")
        prev_timestep = timestep - T // N
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            prev_timestep = timestep
            timestep = timestep + T // N
        if len(self.ets) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(self.ets) == 1 and self.counter == 1:
            model_output = (model_output + self.ets[-1]) / 2
            sample = self.cur_sample
            self.cur_sample = None
        elif len(self.ets) == 2:
            model_output = (3 * self.ets[-1] - self.ets[-2]) / 2
        elif len(self.ets) == 3:
            model_output = (23 * self.ets[-1] - 16 * self.ets[-2] + 5 * self.ets[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * self.ets[-1] - 59 * self.ets[-2] + 37 * self.ets[-3] - 9 * self.ets[-4])
        prev_sample = self.prev_sample(sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return prev_sample

    def prev_sample(self, sample, timestep, prev_timestep, model_output):
        """_get_prev_sample: formula (9) of the PNDM paper (the DDIM eta = 0 transfer)."""
        a_t = self.acp[timestep]
        a_prev = self.acp[prev_timestep] if prev_timestep >= 0 else self.final
        b_t, b_prev = 1 - a_t, 1 - a_prev
        if self.cfg["prediction_type"] == "v_prediction":
            model_output = a_t ** 0.5 * model_output + b_t ** 0.5 * sample
        sample_coeff = (a_prev / a_t) ** 0.5
        denom = a_t * b_prev ** 0.5 + (a_t * b_t * a_prev) ** 0.5
        return sample_coeff * sample - (a_prev - a_t) * model_output / denom

    def add_noise(self, x0, noise, i):
        a = self.acp[int(self.timesteps[i])]
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise


def make(cfg, sampler, N, eta):
    return {"ddpm": lambda: Ddpm(cfg, N), "ddim": lambda: Ddim(cfg, N, eta), "dpm_solver_pp": lambda: DpmSolverPP(cfg, N),
            "euler": lambda: Euler(cfg, N), "euler_ancestral": lambda: EulerAncestral(cfg, N),
            "pndm": lambda: Pndm(cfg, N)}[sampler]()


def run(cfg, sampler, N, eta, latents, noise_bank, init=None, strength=None):
    s = make(cfg, sampler, N, eta)
    start = 0
    if init is None:
        x = latents * s.init_noise_sigma
    else:
        # diffusers img2img: init_timestep = min(int(N * strength), N); t_start = max(N - init_timestep, 0), from
        # num_inference_steps N even where the scheduler lists more timesteps (pndm: N + 1 or N + 9); the loop
        # runs timesteps[t_start:] (scheduler.order is 1 for every sampler here) after add_noise at timesteps[t_start].
        init_ts = min(int(N * strength), N)
        start = max(N - init_ts, 0)
        # strength 0 with N timesteps runs no step (diffusers would fail on an empty schedule): the init comes back
        # unchanged. pndm still has timesteps[N:] = [t_0] left, one step, as in diffusers.
        x = s.add_noise(init, latents, start) if start < len(s.timesteps) else init.copy()
    for i in range(start, len(s.timesteps)):
        t = s.timesteps[i]
        out = denoiser(s.scale(x, i), t)
        x = s.step(out, i, x, noise_bank[i] if s.needs_noise(i) else None)
    return s, start, x


def base_cfg(**kw):
    cfg = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
               prediction_type="epsilon", clip_sample=False, clip_sample_range=1.0, timestep_spacing="leading",
               steps_offset=0, set_alpha_to_one=True)
    cfg.update(kw)
    return cfg


def f(a):
    return [float(v) for v in np.asarray(a).reshape(-1)]


def diffusion_fixture():
    rng = np.random.default_rng(20261125)
    latents = rng.standard_normal(D)
    noise_bank = rng.standard_normal((1000, D))
    init = np.clip(rng.standard_normal(D) * 0.5, -1, 1)
    cases = []

    def add(cfg, sampler, N, eta=0.0, strength=None):
        s, start, x = run(cfg, sampler, N, eta, latents, noise_bank, init if strength is not None else None, strength)
        case = dict(config=cfg, sampler=sampler, steps=N, eta=eta, strength=strength, start_step=start,
                    timesteps=s.timesteps, init_noise_sigma=float(s.init_noise_sigma), expected=f(x))
        if sampler == "pndm":
            case["schedule"] = s.schedule  # the N distinct inference timesteps (timesteps repeats some)
        cases.append(case)

    for sampler in ["ddpm", "ddim", "dpm_solver_pp", "euler", "euler_ancestral"]:
        for N in [1, 2, 5, 10, 50]:
            for sp in ["leading", "trailing", "linspace"]:
                for pt in ["epsilon", "v_prediction", "sample"]:
                    add(base_cfg(timestep_spacing=sp, prediction_type=pt), sampler, N)
                    if sampler == "ddim":
                        add(base_cfg(timestep_spacing=sp, prediction_type=pt), sampler, N, eta=0.5)
                    if sampler in ("ddpm", "ddim"):
                        add(base_cfg(timestep_spacing=sp, prediction_type=pt, clip_sample=True, clip_sample_range=0.8),
                            sampler, N)
    # Other beta schedules, steps_offset, set_alpha_to_one false, a short schedule and steps == T.
    for sampler in ["ddpm", "ddim", "dpm_solver_pp", "euler", "euler_ancestral"]:
        for bs, b0, b1 in [("scaled_linear", 0.00085, 0.012), ("squaredcos_cap_v2", 0.0001, 0.02)]:
            for sp in ["leading", "trailing", "linspace"]:
                add(base_cfg(beta_schedule=bs, beta_start=b0, beta_end=b1, timestep_spacing=sp), sampler, 20)
        add(base_cfg(steps_offset=1, set_alpha_to_one=False), sampler, 10, eta=1.0 if sampler == "ddim" else 0.0)
        add(base_cfg(num_train_timesteps=100, timestep_spacing="trailing", prediction_type="v_prediction"), sampler, 7)
        add(base_cfg(num_train_timesteps=40, timestep_spacing="leading"), sampler, 40)
        # img2img (SDEdit)
        for strength in [0.0, 0.3, 0.75, 1.0]:
            for sp in ["leading", "trailing", "linspace"]:
                add(base_cfg(timestep_spacing=sp), sampler, 10, strength=strength)
    # pndm (PNDMScheduler), after the others so their cases keep their places: PLMS only (skip_prk_steps true, as
    # Stable Diffusion 1.x ships it) and with the PRK warm-up (diffusers' default false; needs N >= 4). diffusers'
    # PNDM has no "sample" prediction (GenService refuses it) and no clip_sample.
    def pndm_cfg(skip, **kw):
        cfg = base_cfg(**kw)
        cfg["skip_prk_steps"] = skip
        return cfg

    sd1 = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
               set_alpha_to_one=False, timestep_spacing="leading")
    for skip in [True, False]:
        for N in [1, 2, 3, 4, 5, 10, 50]:
            if not skip and N < 4:
                continue
            for sp in ["leading", "trailing", "linspace"]:
                for pt in ["epsilon", "v_prediction"]:
                    add(pndm_cfg(skip, timestep_spacing=sp, prediction_type=pt), "pndm", N)
        for bs, b0, b1 in [("scaled_linear", 0.00085, 0.012), ("squaredcos_cap_v2", 0.0001, 0.02)]:
            for sp in ["leading", "trailing", "linspace"]:
                if bs == "squaredcos_cap_v2" and sp != "leading" and not skip:
                    # Left out: the cosine schedule's acp_999 = 2.4e-9 makes the four PRK evaluations at t = 999 push
                    # |x| to ~1e4, where the stand-in denoiser's sin(x) turns float32 rounding of x (what C# and
                    # diffusers keep) into ~1e-3 relative differences: no float32 run can meet the 1e-4 tolerance.
                    continue
                add(pndm_cfg(skip, beta_schedule=bs, beta_start=b0, beta_end=b1, timestep_spacing=sp), "pndm", 20)
        add(pndm_cfg(skip, steps_offset=1, set_alpha_to_one=False), "pndm", 10)
        add(pndm_cfg(skip, num_train_timesteps=100, timestep_spacing="trailing", prediction_type="v_prediction"), "pndm", 7)
        add(pndm_cfg(skip, num_train_timesteps=40, timestep_spacing="leading"), "pndm", 40)
        add(pndm_cfg(skip, num_train_timesteps=40, timestep_spacing="linspace"), "pndm", 40)
        for strength in [0.0, 0.1, 0.3, 0.75, 0.95, 1.0]:
            for sp in ["leading", "trailing", "linspace"]:
                add(pndm_cfg(skip, timestep_spacing=sp), "pndm", 10, strength=strength)
    # Stable Diffusion 1.x's scheduler_config.json (PNDMScheduler, skip_prk_steps true), text-to-image and img2img.
    for N in [1, 2, 3, 4, 5, 10, 50]:
        add(pndm_cfg(True, **sd1), "pndm", N)
    add(pndm_cfg(True, **dict(sd1, prediction_type="v_prediction")), "pndm", 25)
    for strength in [0.3, 0.75, 0.8, 0.95]:
        add(pndm_cfg(True, **sd1), "pndm", 50, strength=strength)
    return dict(elements=D, latents=f(latents), init=f(init), noise_bank=[f(r) for r in noise_bank[:50]],
                cases=cases)


def noise_fixture():
    out = []
    for seed, idx, stream in [(0, 0, 0), (42, 0, 0), (42, 1, 0), (42, 0, 1), (2 ** 64 - 1, 2 ** 40 + 3, 7),
                              (123456789012345, 63, 2)]:
        out.append(dict(seed=str(seed), sample_index=str(idx), stream=stream,
                        words=[int(w) for w in philox_ref.words(seed, idx, stream, 12)],
                        uniforms=f(philox_ref.uniforms(seed, idx, stream, 9)),
                        normals=f(philox_ref.normals(seed, idx, stream, 33)),
                        truncated=f(philox_ref.truncated_normals(seed, idx, stream, 40, 2.0))))
    return out


def slerp(a, b, t):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    dot = float(np.dot(a, b) / (na * nb))
    if abs(dot) > 0.9995:
        return (1 - t) * a + t * b
    th = math.acos(dot)
    return (math.sin((1 - t) * th) * a + math.sin(t * th) * b) / math.sin(th)


def interpolation_fixture():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(D), rng.standard_normal(D)
    ts = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    return dict(a=f(a), b=f(b), t=ts, slerp=[f(slerp(a, b, t)) for t in ts],
                lerp=[f((1 - t) * a + t * b) for t in ts])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, obj in [("diffusion.json", diffusion_fixture()), ("noise.json", noise_fixture()),
                      ("interpolation.json", interpolation_fixture())]:
        path = os.path.join(OUT, name)
        with open(path, "w") as fh:
            json.dump(obj, fh, separators=(",", ":"))
        print(path, os.path.getsize(path), "bytes")

"""digits-txt2img torch modules: a small Stable-Diffusion-1.x-shaped latent diffusion model.

Written from the published architecture (diffusers' AutoencoderKL, UNet2DConditionModel and transformers'
CLIPTextModel), scaled down for 32x32 images and CPU training; diffusers/transformers are not installed here.
The ONNX exports of these modules follow Hugging Face Optimum's Stable Diffusion layout (see train_txt2img.py).

- AutoencoderKL: 3x32x32 <-> 4x8x8 (two 2x downsamplings, block_out_channels of length 3); the encoder emits
  [mean, log-variance] concatenated on dim 1 (8 channels), like diffusers' `latent_dist.parameters`.
- CLIPTextModel: token + position embeddings, pre-LN transformer layers with a causal mask, quick-GELU MLP,
  final layer norm; pooler_output = hidden state at argmax(input_ids) (the eos token has the largest id).
- UNet2DConditionModel: conv_in, sinusoidal timestep embedding (flip_sin_to_cos, freq_shift 0) + MLP, ResNet
  blocks, Transformer2D blocks (self-attention, cross-attention to the text encoder's last_hidden_state,
  GEGLU feed-forward), skip connections, epsilon prediction. Latent height/width must be multiples of 4.
  One addition to SD 1.x: a learned-query attention pooling of encoder_hidden_states, added to the time
  embedding (the global route SDXL gives its pooled text embedding), computed inside the graph.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GROUPS = 8


def norm(c):
    return nn.GroupNorm(GROUPS, c, eps=1e-6)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv, (+ projected time embedding), GroupNorm-SiLU-conv, plus a 1x1 shortcut if needed."""

    def __init__(self, cin, cout, temb_dim=None):
        super().__init__()
        self.norm1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, cout) if temb_dim else None
        self.norm2 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ------------------------------------------------------------------------------------------------ VAE
class VaeEncoder(nn.Module):
    def __init__(self, chs, in_ch=3, latent_ch=4):
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, chs[0], 3, padding=1)
        blocks, prev = [], chs[0]
        for i, c in enumerate(chs):
            blocks.append(ResnetBlock(prev, c))
            if i < len(chs) - 1:
                blocks.append(Downsample(c))
            prev = c
        self.down = nn.Sequential(*blocks)
        self.mid = ResnetBlock(prev, prev)
        self.norm_out = norm(prev)
        self.conv_out = nn.Conv2d(prev, 2 * latent_ch, 3, padding=1)

    def forward(self, sample):
        h = self.mid(self.down(self.conv_in(sample)))
        return self.conv_out(F.silu(self.norm_out(h)))  # [b, 2*latent, h/4, w/4]: mean ++ log-variance


class VaeDecoder(nn.Module):
    def __init__(self, chs, out_ch=3, latent_ch=4):
        super().__init__()
        rev = list(reversed(chs))
        self.conv_in = nn.Conv2d(latent_ch, rev[0], 3, padding=1)
        self.mid = ResnetBlock(rev[0], rev[0])
        blocks, prev = [], rev[0]
        for i, c in enumerate(rev):
            blocks.append(ResnetBlock(prev, c))
            if i < len(rev) - 1:
                blocks.append(Upsample(c))
            prev = c
        self.up = nn.Sequential(*blocks)
        self.norm_out = norm(prev)
        self.conv_out = nn.Conv2d(prev, out_ch, 3, padding=1)

    def forward(self, latent_sample):
        h = self.up(self.mid(self.conv_in(latent_sample)))
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, chs=(32, 64, 64), latent_ch=4):
        super().__init__()
        self.latent_ch = latent_ch
        self.encoder = VaeEncoder(chs, latent_ch=latent_ch)
        self.decoder = VaeDecoder(chs, latent_ch=latent_ch)

    def encode(self, x):
        p = self.encoder(x)
        mean, logvar = p.chunk(2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)


# ------------------------------------------------------------------------------------------------ text encoder
class ClipLayer(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.layer_norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)

    def forward(self, x, mask):
        b, n, d = x.shape
        hd = d // self.heads
        h = self.layer_norm1(x)
        q = self.q_proj(h).reshape(b, n, self.heads, hd).transpose(1, 2) * hd ** -0.5
        k = self.k_proj(h).reshape(b, n, self.heads, hd).transpose(1, 2)
        v = self.v_proj(h).reshape(b, n, self.heads, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        x = x + self.out_proj((a @ v).transpose(1, 2).reshape(b, n, d))
        h = self.fc1(self.layer_norm2(x))
        h = h * torch.sigmoid(1.702 * h)  # quick_gelu, CLIP's activation
        return x + self.fc2(h)


class ClipTextModel(nn.Module):
    def __init__(self, vocab_size, max_len=16, d=64, layers=2, heads=4, mlp=128):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d)
        self.position_embedding = nn.Embedding(max_len, d)
        self.layers = nn.ModuleList([ClipLayer(d, heads, mlp) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.01)

    def forward(self, input_ids):
        ids = input_ids.long()
        n = ids.shape[1]
        pos = torch.arange(n, device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(pos)[None]
        # causal mask: position i attends to j <= i (CLIP's text transformer is causal)
        mask = torch.triu(torch.full((n, n), -1e9, device=ids.device), diagonal=1)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_layer_norm(x)
        pooled = x[torch.arange(x.shape[0], device=ids.device), ids.argmax(dim=-1)]
        return x, pooled


# ------------------------------------------------------------------------------------------------ UNet
class Attention(nn.Module):
    def __init__(self, d, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(d, d, bias=False)
        self.to_k = nn.Linear(ctx_dim, d, bias=False)
        self.to_v = nn.Linear(ctx_dim, d, bias=False)
        self.to_out = nn.Linear(d, d)

    def forward(self, x, ctx):
        b, n, d = x.shape
        hd = d // self.heads
        q = self.to_q(x).reshape(b, n, self.heads, hd).transpose(1, 2)
        k = self.to_k(ctx).reshape(b, -1, self.heads, hd).transpose(1, 2)
        v = self.to_v(ctx).reshape(b, -1, self.heads, hd).transpose(1, 2)
        a = torch.softmax((q @ k.transpose(-1, -2)) * hd ** -0.5, dim=-1)
        return self.to_out((a @ v).transpose(1, 2).reshape(b, n, d))


class Transformer2D(nn.Module):
    """GroupNorm, proj_in, [LN self-attn, LN cross-attn, LN GEGLU FF] with residuals, proj_out, residual.
    self_attn=False drops the self-attention (the UNet's finest level, where it is the costliest on CPU and
    the convolutions already see the whole 8x8 latent within two blocks)."""

    def __init__(self, c, ctx_dim, heads, self_attn=True):
        super().__init__()
        self.norm = norm(c)
        self.proj_in = nn.Linear(c, c)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn1 = Attention(c, c, heads) if self_attn else None
        self.attn2 = Attention(c, ctx_dim, heads)
        self.ff_in = nn.Linear(c, 2 * 2 * c)  # GEGLU: value and gate, inner width 2c
        self.ff_out = nn.Linear(2 * c, c)
        self.proj_out = nn.Linear(c, c)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.norm(x).reshape(b, c, hh * ww).transpose(1, 2)
        h = self.proj_in(h)
        if self.attn1 is not None:
            n1 = self.norm1(h)
            h = h + self.attn1(n1, n1)
        h = h + self.attn2(self.norm2(h), ctx)
        v, g = self.ff_in(self.norm3(h)).chunk(2, dim=-1)
        h = h + self.ff_out(v * F.gelu(g))
        h = self.proj_out(h).transpose(1, 2).reshape(b, c, hh, ww)
        return x + h


def timestep_embedding(t, dim):
    """diffusers get_timestep_embedding with flip_sin_to_cos=True, downscale_freq_shift=0: [cos, sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class UNet2DCondition(nn.Module):
    """Three levels (block_out_channels chs), one ResNet per down level and two per up level (layers_per_block 1,
    as diffusers' up blocks take layers_per_block + 1), cross-attention on the two finer levels and the mid block
    (CrossAttnDownBlock2D x2 + DownBlock2D; UpBlock2D + CrossAttnUpBlock2D x2, like SD 1.x's layout)."""

    def __init__(self, chs=(64, 96, 128), ctx_dim=64, in_ch=4, out_ch=4, head_dim=32):
        super().__init__()
        self.chs = chs
        c0 = chs[0]
        temb = 4 * c0
        self.conv_in = nn.Conv2d(in_ch, c0, 3, padding=1)
        self.time_linear_1 = nn.Linear(c0, temb)
        self.time_linear_2 = nn.Linear(temb, temb)
        n = len(chs)
        self.down_res = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_ch = [c0]
        prev = c0
        for i, c in enumerate(chs):
            self.down_res.append(ResnetBlock(prev, c, temb))
            self.down_attn.append(Transformer2D(c, ctx_dim, max(1, c // head_dim), self_attn=i > 0)
                                  if i < n - 1 else nn.Identity())
            skip_ch.append(c)
            if i < n - 1:
                self.downsamplers.append(Downsample(c))
                skip_ch.append(c)
            prev = c
        self.mid_res1 = ResnetBlock(prev, prev, temb)
        self.mid_attn = Transformer2D(prev, ctx_dim, max(1, prev // head_dim))
        self.mid_res2 = ResnetBlock(prev, prev, temb)
        self.up_res = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for i, c in enumerate(reversed(chs)):
            level = n - 1 - i
            for _ in range(2):
                s = skip_ch.pop()
                self.up_res.append(ResnetBlock(prev + s, c, temb))
                self.up_attn.append(Transformer2D(c, ctx_dim, max(1, c // head_dim), self_attn=level > 0)
                                    if level < n - 1 else nn.Identity())
                prev = c
            if level > 0:
                self.upsamplers.append(Upsample(c))
        self.norm_out = norm(prev)
        self.conv_out = nn.Conv2d(prev, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        # Global text conditioning: a learned-query attention pooling of encoder_hidden_states, projected and added
        # to the time embedding (SDXL adds a pooled text embedding the same way; here it is computed inside the
        # UNet so the graph keeps SD 1.x's three inputs). Created last (so the other parameters' initialisation
        # does not depend on it) with a zero output projection (so it starts as an exact no-op).
        self.text_pool_query = nn.Parameter(torch.randn(ctx_dim) * 0.02)
        self.text_pool_key = nn.Linear(ctx_dim, ctx_dim, bias=False)
        self.text_pool_proj = nn.Linear(ctx_dim, temb)
        nn.init.zeros_(self.text_pool_proj.weight)
        nn.init.zeros_(self.text_pool_proj.bias)

    def text_pool_parameters(self):
        return [self.text_pool_query, *self.text_pool_key.parameters(), *self.text_pool_proj.parameters()]

    def forward(self, sample, timestep, encoder_hidden_states):
        ctx = encoder_hidden_states
        temb = timestep_embedding(timestep, self.chs[0]).to(sample.dtype)
        temb = self.time_linear_2(F.silu(self.time_linear_1(temb)))
        a = torch.softmax(self.text_pool_key(ctx) @ self.text_pool_query * ctx.shape[-1] ** -0.5, dim=1)
        temb = temb + self.text_pool_proj((a[:, :, None] * ctx).sum(dim=1))
        h = self.conv_in(sample)
        skips = [h]
        n = len(self.chs)
        for i in range(n):
            h = self.down_res[i](h, temb)
            if i < n - 1:
                h = self.down_attn[i](h, ctx)
            skips.append(h)
            if i < n - 1:
                h = self.downsamplers[i](h)
                skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, temb), ctx), temb)
        k = 0
        for i in range(n):
            level = n - 1 - i
            for _ in range(2):
                h = self.up_res[k](torch.cat([h, skips.pop()], dim=1), temb)
                if level < n - 1:
                    h = self.up_attn[k](h, ctx)
                k += 1
            if level > 0:
                h = self.upsamplers[i](h)
        return self.conv_out(F.silu(self.norm_out(h)))


def n_params(m):
    return sum(p.numel() for p in m.parameters())

"""A small pre-norm GPT with an explicit KV cache, written so torch.onnx tracing keeps every shape dynamic.

Positions and the causal mask come from tensor ops (cumsum over ones_like(...)) rather than Python ints
read from .shape, because tracing bakes Python-side shape arithmetic into constants.

    ids [B,S] -> tok_emb + pos_emb(position_ids) -> L x (LN -> attn(+past K/V) -> LN -> MLP) -> LN -> logits [B,S,V]
    query i sits at absolute index past+i; it sees key j iff j <= past+i and attention_mask[b, j] == 1.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9  # finite, so a fully masked row (a pad query) gives a uniform softmax instead of NaN


class Layer(nn.Module):
    def __init__(self, d, heads, ff, dropout):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def split(self, t):
        b = t.shape[0]
        return t.reshape(b, -1, self.heads, self.dh).transpose(1, 2)

    def forward(self, h, allowed, past_k, past_v):
        q, k, v = self.qkv(self.ln1(h)).chunk(3, dim=-1)
        q, k, v = self.split(q), self.split(k), self.split(v)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (self.dh ** -0.5)
        scores = torch.where(allowed, scores, torch.full_like(scores, NEG))
        att = self.drop(F.softmax(scores, dim=-1))
        o = torch.matmul(att, v).transpose(1, 2)
        o = o.reshape(o.shape[0], o.shape[1], -1)
        h = h + self.drop(self.proj(o))
        h = h + self.drop(self.ff(self.ln2(h)))
        return h, k, v


class TinyGPT(nn.Module):
    def __init__(self, vocab, d, heads, layers, ff, max_len, dropout=0.1, start_conditioning=False):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        # start_conditioning: the embedding of the sequence's first token (a class start token) is added at every
        # position, so the condition does not have to travel through attention (digits-ar v2).
        self.start = nn.Embedding(vocab, d) if start_conditioning else None
        self.pos = nn.Embedding(max_len, d)
        self.layers = nn.ModuleList([Layer(d, heads, ff, dropout) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.drop = nn.Dropout(dropout)

    def core(self, input_ids, attention_mask, position_ids, pasts, start_ids=None):
        ones_q = torch.ones_like(input_ids)
        ones_k = torch.ones_like(attention_mask)
        past_len = ones_k.sum(1, keepdim=True) - ones_q.sum(1, keepdim=True)          # [B,1]
        q_abs = torch.cumsum(ones_q, 1) - 1 + past_len                                 # [B,S]
        k_abs = torch.cumsum(ones_k, 1) - 1                                            # [B,T]
        allowed = (k_abs[:, None, :] <= q_abs[:, :, None]) & (attention_mask[:, None, :] > 0)
        allowed = allowed[:, None, :, :]                                               # [B,1,S,T]
        h = self.tok(input_ids) + self.pos(position_ids)
        if self.start is not None:  # [B,1] broadcast over the sequence; a cached step passes the start ids in
            h = h + self.start(input_ids[:, :1] if start_ids is None else start_ids)
        h = self.drop(h)
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = (pasts[2 * i], pasts[2 * i + 1]) if pasts else (None, None)
            h, k, v = layer(h, allowed, pk, pv)
            presents += [k, v]
        return self.head(self.ln(h)), presents


class RecomputeDecoder(nn.Module):
    """input_ids [B,S] -> logits [B,S,V]; no cache, positions 0..S-1, nothing masked but the future."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt

    def forward(self, input_ids):
        pos = torch.cumsum(torch.ones_like(input_ids), 1) - 1
        return self.gpt.core(input_ids, torch.ones_like(input_ids), pos, None)[0]


class CachedDecoder(nn.Module):
    """Hugging Face Optimum decoder convention: (input_ids, attention_mask, position_ids, past k/v...) ->
    (logits, present k/v...)."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt

    def forward(self, input_ids, attention_mask, position_ids, *pasts):
        logits, presents = self.gpt.core(input_ids, attention_mask, position_ids, list(pasts))
        return (logits, *presents)

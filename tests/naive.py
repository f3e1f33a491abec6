"""Naive, written-from-the-formula reference implementations (numpy, float64) for the tests."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def adain_np(x, ref):
    """Spec 4.1 on (tokens, channels) arrays: unbiased variance, eps inside the root."""
    mu, mu_r = x.mean(axis=0), ref.mean(axis=0)
    sd = np.sqrt(x.var(axis=0, ddof=1) + 1e-5)
    sd_r = np.sqrt(ref.var(axis=0, ddof=1) + 1e-5)
    return (x - mu) / sd * sd_r + mu_r


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def shared_attention_np(q, k, v, settings, halves, scale):
    """Spec section 4 for a whole batch (batch, heads, N, d); row 0 of each half is the reference."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    batch, heads = q.shape[:2]
    m = batch // halves
    out = np.zeros_like(q)
    for half in range(halves):
        r = half * m
        rows = range(r, r + m)
        for b in rows:
            for h in range(heads):
                if settings.full_attention_share:
                    keys = np.concatenate([k[j, h] for j in rows])
                    values = np.concatenate([v[j, h] for j in rows])
                    out[b, h] = softmax(q[b, h] @ keys.T * scale) @ values
                    continue
                if b == r:
                    out[b, h] = softmax(q[b, h] @ k[b, h].T * scale) @ v[b, h]
                    continue
                qb, kb, vb = q[b, h], k[b, h], v[b, h]
                if settings.adain_queries:
                    qb = adain_np(qb, q[r, h])
                if settings.adain_keys:
                    kb = adain_np(kb, k[r, h])
                if settings.adain_values:
                    vb = adain_np(vb, v[r, h])
                bias = np.zeros(kb.shape[0])
                if settings.share_attention:
                    n_ref = k.shape[2]
                    kb = np.concatenate([kb, settings.shared_score_scale * k[r, h]])
                    vb = np.concatenate([vb, v[r, h]])
                    bias = np.concatenate([bias, np.full(n_ref, settings.shared_score_shift)])
                out[b, h] = softmax(qb @ kb.T * scale + bias) @ vb
    return out


def shared_group_norm_by_concatenation(norm, x, halves):
    """Spec 5: each target normalised over the union of its and its reference's elements
    (GroupNorm of the two concatenated side by side); row 0 of each half is the reference."""
    m = x.shape[0] // halves
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        r = (b // m) * m
        if b == r:
            out[b] = F.group_norm(x[b : b + 1], norm.num_groups, norm.weight, norm.bias, norm.eps)[0]
        else:
            joined = torch.cat([x[b], x[r]], dim=-1).unsqueeze(0)  # (1, C, ..., 2W)
            out[b] = F.group_norm(joined, norm.num_groups, norm.weight, norm.bias, norm.eps)[0, ..., : x.shape[-1]]
    return out

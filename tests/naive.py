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
    out = np.zeros(q.shape[:-1] + v.shape[-1:])  # the values' width
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


# --- several references (spec section 11), panels of any size (spec section 12) ----------------


def _stats(x):
    """mu and sigma of spec 4.1 over the token axis of a (tokens, channels) array."""
    return x.mean(axis=0), np.sqrt(x.var(axis=0, ddof=1) + 1e-5)


def mixture_adain_np(x, refs, weights):
    """AdaIN of x to the weighted mixture of the references' statistics, the spec's formula:
    mu = sum w_r mu_r, sigma^2 = sum w_r (sigma_r^2 + mu_r^2) - mu^2."""
    stats = [_stats(r) for r, w in zip(refs, weights) if w > 0]
    ws = [w for w in weights if w > 0]
    mu = sum(w * m for w, (m, _) in zip(ws, stats))
    var = sum(w * (s**2 + m**2) for w, (m, s) in zip(ws, stats)) - mu**2
    x_mu, x_sd = _stats(x)
    return (x - x_mu) / x_sd * np.sqrt(var) + mu


def blended_attention_np(q, k, v, refs, weights, settings, scale):
    """One target's shared attention (one head; (tokens, d) arrays) against R references
    ``refs`` = [(q_r, k_r, v_r), ...] with normalised ``weights`` (spec section 11): keys
    [K_b; s K_1; ...; s K_R], bias shift + ln w_r on reference r's columns, -inf where w_r = 0."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    for flag, index in (("adain_queries", 0), ("adain_keys", 1), ("adain_values", 2)):
        if getattr(settings, flag):
            x = (q, k, v)[index]
            x = mixture_adain_np(x, [r[index] for r in refs], weights)
            q, k, v = (x if i == index else y for i, y in enumerate((q, k, v)))
    keys, values, bias = [k], [v], [np.zeros(k.shape[0])]
    if settings.share_attention:
        for (_, k_r, v_r), w in zip(refs, weights):
            keys.append(settings.shared_score_scale * k_r)
            values.append(v_r)
            bias.append(np.full(k_r.shape[0], settings.shared_score_shift + np.log(w) if w > 0 else -np.inf))
    keys, values, bias = np.concatenate(keys), np.concatenate(values), np.concatenate(bias)
    return softmax(q @ keys.T * scale + bias) @ values


def weighted_group_norm_np(x, refs, weights, groups, gamma, beta, eps):
    """GroupNorm of one target x (C, H, W) over the weighted union of its elements (1 each) and
    each reference's (C, H_r, W_r) elements (w_r each), then the affine (spec sections 11, 12)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    per = x.shape[0] // groups
    for g in range(groups):
        parts = [(x[g * per:(g + 1) * per].ravel(), 1.0)]
        parts += [(np.asarray(r, dtype=np.float64)[g * per:(g + 1) * per].ravel(), w) for r, w in zip(refs, weights)]
        total = sum(w * len(e) for e, w in parts)
        mean = sum(w * e.sum() for e, w in parts) / total
        var = sum(w * ((e - mean) ** 2).sum() for e, w in parts) / total
        out[g * per:(g + 1) * per] = (x[g * per:(g + 1) * per] - mean) / np.sqrt(var + eps)
    return out * np.asarray(gamma).reshape(-1, 1, 1) + np.asarray(beta).reshape(-1, 1, 1)

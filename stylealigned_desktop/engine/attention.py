"""Shared self-attention (spec sections 3, 4 and 6).

One processor instance serves one self-attention layer. All processors and shared GroupNorm
layers of one installation share a :class:`SharingState`, which says how the current UNet
batch is laid out:

``batch``
    The authors' convention: the batch is one or two CFG halves, the first row of each half
    is that half's reference. Used by :func:`~stylealigned_desktop.engine.install.style_aligned`
    around a plain pipeline call, and for ``full_attention_share``.
``record``
    The batch holds, per half, the references (R rows, weighted by
    ``SharingState.reference_weights``) and then any panels of the references' size that ride
    along in the same UNet call. The references run as plain attention and leave, per layer,
    what the panels need: all R references' keys (already times ``shared_score_scale``) and
    values, the AdaIN statistics of their weighted mixture and the attention bias of their
    columns; the panels of the same call use them at once.
``replay``
    The batch holds only panels (``halves`` groups of equal size). The reference part comes
    from what ``record`` left for the same layer. This is how the engine runs panels in
    micro-batches without recomputing the references; a panel's token count need not be the
    references' (panels of their own size, spec section 12).

Panels never see each other (except in ``full_attention_share``), so all three layouts give
the same numbers for every panel. Several references (spec section 11): a panel attends to
``[own; s*K_1; ...; s*K_R]`` with bias ``shift + ln w_r`` on reference r's columns, and AdaIN
takes the mixture's statistics; with R = 1 both reduce to the single-reference method exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .settings import StyleAlignedSettings

ADAIN_EPS = 1e-5
HALF_DTYPES = (torch.float16, torch.bfloat16)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """At least float32: statistics of half-precision activations would overflow or round badly."""
    return x.float() if x.dtype in HALF_DTYPES else x


def mean_std(x: torch.Tensor, eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel statistics over the token axis (-2): mean and sqrt(unbiased var + eps).

    Two passes rather than ``torch.var_mean``, whose reduction over this axis is scalar on CPU
    (5-17x slower at UNet shapes, docs/performance.md); two passes are as exact.
    """
    x = upcast(x)
    mean = x.mean(dim=-2, keepdim=True)
    var = (x - mean).square().sum(dim=-2, keepdim=True) / (x.shape[-2] - 1)
    return mean, (var + eps).sqrt()


def mixture_stats(mean: torch.Tensor, spread: torch.Tensor, weights, square: bool = True):
    """Mean and spread of the weighted mixture of R distributions (spec section 11).

    ``mean`` / ``spread``: (halves, R, ...) per-reference statistics; ``weights``: R numbers
    summing to 1. ``spread`` is a standard deviation (``square``) or a variance. Returns
    (halves, 1, ...): mu = sum w_r mu_r and var = sum w_r (var_r + (mu_r - mu)^2), the spec's
    sum w_r (var_r + mu_r^2) - mu^2 without its cancellation. One reference is returned as is.
    """
    if mean.shape[1] == 1:
        return mean, spread
    w = torch.as_tensor(weights, dtype=mean.dtype, device=mean.device).view(1, -1, *(1,) * (mean.dim() - 2))
    mu = (w * mean).sum(dim=1, keepdim=True)
    var = (w * ((spread.square() if square else spread) + (mean - mu).square())).sum(dim=1, keepdim=True)
    return mu, var.sqrt() if square else var


def reference_bias(weights, shift: float) -> list[float] | None:
    """Each reference's logit bias ``shift + ln w_r`` (None when all are 0: no mask at all).

    Weights are > 0: a weight-0 reference is never seen (bias -inf), so it is not recorded."""
    bias = [shift + math.log(w) for w in weights]
    return None if not any(bias) else bias


def adain(x: torch.Tensor, ref_mean: torch.Tensor, ref_std: torch.Tensor) -> torch.Tensor:
    """Re-normalise ``x`` (…, tokens, channels) to the reference's mean and std, per channel."""
    mean, std = mean_std(x)
    gain = ref_std / std  # one pass over x: x * gain + (ref_mean - mean * gain)
    return torch.addcmul(ref_mean - mean * gain, upcast(x), gain).to(x.dtype)


def unshared_layer_mask(num_layers: int, level: float) -> list[bool]:
    """Which self-attention layers stay unshared for ``only_self_level`` (spec section 6).

    Entry i is True when layer i (0-based, UNet order) is left as plain attention.
    """
    if level <= 0.0:
        return [False] * num_layers
    if level >= 1.0:
        return [True] * num_layers
    flip = level > 0.5
    level_prime = 1.0 - level if flip else level
    # floor(l' * L), robust to 1 - 0.8 = 0.19999999999999996 (the authors' int() would lose a layer)
    switched = math.floor(level_prime * num_layers + 1e-9)
    if switched == 0:
        # The authors' code divides by zero here; no layer is switched before the flip.
        mask = [False] * num_layers
    else:
        period = num_layers // switched
        mask = [i % period == 0 for i in range(num_layers)]
    return [not m for m in mask] if flip else mask


@dataclass
class ReferenceAttention:
    """What panels need from the references in one layer, recorded once per step.

    ``key`` / ``value``: (halves, 1, heads, R*N, d), the R references' tokens one after the
    other, the keys already times ``shared_score_scale`` (None when attention is not shared);
    the statistics are the weighted mixture's of the unscaled tensors, (halves, 1, heads, 1, d);
    ``bias``: one logit bias per reference (``shift + ln w_r``), None when all are 0.
    """

    key: torch.Tensor | None
    value: torch.Tensor | None
    query_stats: tuple[torch.Tensor, torch.Tensor] | None
    key_stats: tuple[torch.Tensor, torch.Tensor] | None
    value_stats: tuple[torch.Tensor, torch.Tensor] | None
    bias: list[float] | None = None


@dataclass
class SharingState:
    """Mutable state shared by every processor and norm of one installation."""

    settings: StyleAlignedSettings
    halves_provider: Callable[[], int] = lambda: 2
    mode: str = "batch"
    halves_override: int | None = None
    cache: dict[str, object] = field(default_factory=dict)
    reference_weights: tuple[float, ...] = (1.0,)
    """The weights (> 0, summing to 1) of the reference rows ``record`` sees, in row order."""
    characters: Any = None
    """The run's ``character_attention.CharacterState`` (spec section 13), None without characters."""
    biases: dict[tuple, torch.Tensor] = field(default_factory=dict)
    """Attention bias rows by (own tokens, reference bias, tokens per reference, dtype, device):
    made once per run, not in every layer of every call."""

    def halves(self) -> int:
        return self.halves_override if self.halves_override is not None else self.halves_provider()

    def rows_per_half(self, batch: int) -> int:
        halves = self.halves()
        if batch % halves:
            raise ValueError(
                f"a batch of {batch} rows cannot be split into {halves} classifier-free-guidance halves"
            )
        return batch // halves

    def reference_data(self, name: str):
        try:
            return self.cache[name]
        except KeyError:
            raise RuntimeError(
                f"no reference recorded for layer {name!r}: run the reference branch (mode 'record') "
                "before the panels (mode 'replay') at every step"
            ) from None

    def score_bias(self, own: int, bias: list[float], per_reference: int, like: torch.Tensor) -> torch.Tensor:
        """(1, 1, 1, own + R * per_reference): 0 on a panel's own keys, ``bias[r]`` on reference r's."""
        key = (own, tuple(bias), per_reference, like.dtype, like.device)
        if key not in self.biases:
            row = torch.zeros(1, 1, 1, own + len(bias) * per_reference, dtype=like.dtype, device=like.device)
            row[..., own:] = torch.tensor(bias, dtype=like.dtype, device=like.device).repeat_interleave(per_reference)
            self.biases[key] = row
        return self.biases[key]


BIAS_IN_KEYS_DEVICES = ("cuda",)
"""Where the references' bias is carried by an extra key channel instead of a bias tensor. A float
bias keeps CUDA's SDPA off flash attention; on this CPU the bias costs 3-10 % of the attention
and the extra (padded) channels cost more, so there the bias stays (docs/performance.md)."""


def attention_with_bias_in_keys(q, k, v, ref_key, ref_value, ref_bias: torch.Tensor, scale: float) -> torch.Tensor:
    """``softmax(q [k; ref_key]^T * scale + [0; ref_bias]) [v; ref_value]`` with no bias tensor.

    q, k, v: (rows, heads, N, d); ref_key, ref_value: (rows, heads, N_ref, d) (expanded views are
    fine); ref_bias: (N_ref,), the bias of each reference column. One extra channel carries the
    bias: 1 in the queries, 0 on the own keys and ``ref_bias / scale`` on the reference's, so
    ``q.k * scale`` gains exactly ``ref_bias`` on the reference's columns. Queries, keys and
    values are zero-padded to a multiple of 8 channels (what fused kernels take; zero channels
    add nothing to the scores and give zero output channels, dropped at the end). The keys and
    values are written once into these buffers: no separate concatenation.
    """
    rows, heads, n, d = q.shape
    n_ref = ref_key.shape[-2]
    width = (d + 1 + 7) // 8 * 8
    padded_q = F.pad(q, (0, width - d))
    padded_q[..., d] = 1.0
    keys = q.new_zeros(rows, heads, n + n_ref, width)
    keys[..., :n, :d] = k
    keys[..., n:, :d] = ref_key
    keys[..., n:, d] = (ref_bias / scale).to(q.dtype)
    values = q.new_zeros(rows, heads, n + n_ref, width)
    values[..., :n, :d] = v
    values[..., n:, :d] = ref_value
    return _plain_attention(padded_q, keys, values, scale)[..., :d]


def _plain_attention(q, k, v, scale, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=scale)


class SharedSelfAttnProcessor:
    """Self-attention in which panels share the reference's keys and values.

    A drop-in for diffusers' ``AttnProcessor2_0`` on self-attention layers (``attn1``);
    everything outside the attention itself (norms, projections, residual) is the same.
    """

    def __init__(self, state: SharingState, name: str):
        self.state = state
        self.name = name

    # -- the part that differs from plain attention -------------------------------------------
    def _reference(self, q, k, v, weights=(1.0,), copy: bool = False) -> ReferenceAttention:
        """What panels need of the references q, k, v: (halves, R, heads, N, d).

        ``copy``: q, k, v are views into a larger batch (panels ride along), which must not stay
        alive for the whole step, so the kept keys and values are copied out.
        """
        s = self.state.settings

        def stats(x):
            return mixture_stats(*mean_std(x), weights)

        halves, refs, heads, n, d = k.shape
        key = value = None
        if s.share_attention:
            key = k.transpose(1, 2).reshape(halves, 1, heads, refs * n, d)
            value = v.transpose(1, 2).reshape(halves, 1, heads, refs * n, v.shape[-1])
            if s.shared_score_scale != 1.0:
                key = key * s.shared_score_scale  # once per step, not in every micro-batch
            elif copy and refs == 1:
                key = key.clone()
            if copy and refs == 1:
                value = value.clone()
        return ReferenceAttention(
            key=key,
            value=value,
            query_stats=stats(q) if s.adain_queries else None,
            key_stats=stats(k) if s.adain_keys else None,
            value_stats=stats(v) if s.adain_values else None,
            bias=reference_bias(weights, s.shared_score_shift),
        )

    def _panels(self, q, k, v, ref: ReferenceAttention, scale: float) -> torch.Tensor:
        """Attention of panels (halves, m, heads, N, d) against their half's reference, and in
        the character layers against their characters' anchors (``character_attention.py``)."""
        if ref.query_stats is not None:
            q = adain(q, *ref.query_stats)
        if ref.key_stats is not None:
            k = adain(k, *ref.key_stats)
        if ref.value_stats is not None:
            v = adain(v, *ref.value_stats)
        characters = self.state.characters
        if characters is not None and characters.applies(self.name):
            return characters.attend(self.name, q, k, v, ref, scale, self.state.mode,
                                     len(self.state.reference_weights),
                                     lambda *qkv: self._shared(*qkv, ref, scale))
        return self._shared(q, k, v, ref, scale)

    def _shared(self, q, k, v, ref: ReferenceAttention, scale: float) -> torch.Tensor:
        """Section 4: panels (halves, m, heads, N, d) after AdaIN against their half's reference."""
        s = self.state.settings
        halves, m, heads, n, d = q.shape
        q, k, v = q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)
        if not s.share_attention:
            return _plain_attention(q, k, v, scale).view(halves, m, heads, n, -1)
        n_ref = ref.key.shape[-2]
        ref_key = ref.key.expand(halves, m, heads, n_ref, d).flatten(0, 1)
        ref_value = ref.value.expand(halves, m, heads, n_ref, -1).flatten(0, 1)
        bias = None if ref.bias is None else self.state.score_bias(n, ref.bias, n_ref // len(ref.bias), q)
        if bias is not None and q.device.type in BIAS_IN_KEYS_DEVICES and v.shape[-1] == d:
            out = attention_with_bias_in_keys(q, k, v, ref_key, ref_value, bias[0, 0, 0, n:], scale)
        else:
            out = _plain_attention(q, torch.cat([k, ref_key], dim=-2), torch.cat([v, ref_value], dim=-2), scale, bias)
        return out.view(halves, m, heads, n, -1)

    def _full_share(self, q, k, v, scale: float) -> torch.Tensor:
        """Ablation: every image of a half attends to all tokens of that half."""
        halves = self.state.halves()
        batch, heads, n, d = q.shape
        m = batch // halves

        def long(x):
            return x.view(halves, m, heads, n, -1).transpose(1, 2).reshape(halves, heads, m * n, -1)

        out = _plain_attention(long(q), long(k), long(v), scale)
        return out.view(halves, heads, m, n, -1).transpose(1, 2).reshape(batch, heads, n, -1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """q, k, v: (batch, heads, N, d) after projection and head split."""
        state = self.state
        if state.settings.full_attention_share:
            if state.mode != "batch":
                raise RuntimeError("full_attention_share couples all images: run the set as one batch")
            return self._full_share(q, k, v, scale)
        batch, heads, n, d = q.shape
        if state.mode == "record":
            rows, refs = state.rows_per_half(batch), len(state.reference_weights)
            if rows < refs:
                raise RuntimeError(f"{rows} rows per half but {refs} reference weights")
            q5, k5, v5 = (x.view(state.halves(), rows, heads, n, -1) for x in (q, k, v))
            ref = self._reference(q5[:, :refs], k5[:, :refs], v5[:, :refs], state.reference_weights,
                                  copy=rows > refs)
            state.cache[self.name] = ref
            if rows == refs:
                return _plain_attention(q, k, v, scale)
            # panels ride along: the references' rows plain, the panels' against what they left
            ref_out = _plain_attention(*(x[:, :refs].flatten(0, 1) for x in (q5, k5, v5)), scale)
            panel_out = self._panels(q5[:, refs:], k5[:, refs:], v5[:, refs:], ref, scale)
            return torch.cat([ref_out.view(state.halves(), refs, heads, n, -1), panel_out],
                             dim=1).reshape(batch, heads, n, -1)
        if state.mode == "replay":
            m = state.rows_per_half(batch)
            ref = state.reference_data(self.name)
            split = (x.view(state.halves(), m, heads, n, -1) for x in (q, k, v))
            return self._panels(*split, ref, scale).reshape(batch, heads, n, -1)
        # batch mode: row 0 of each half is its reference
        m = state.rows_per_half(batch)
        if m == 1:
            return _plain_attention(q, k, v, scale)
        q5, k5, v5 = (x.view(-1, m, heads, n, x.shape[-1]) for x in (q, k, v))
        ref_out = _plain_attention(q5[:, 0], k5[:, 0], v5[:, 0], scale).unsqueeze(1)
        ref = self._reference(q5[:, :1], k5[:, :1], v5[:, :1])
        panel_out = self._panels(q5[:, 1:], k5[:, 1:], v5[:, 1:], ref, scale)
        return torch.cat([ref_out, panel_out], dim=1).reshape(batch, heads, n, -1)

    # -- the rest is diffusers' AttnProcessor2_0 -----------------------------------------------
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        if encoder_hidden_states is not None:
            raise ValueError("SharedSelfAttnProcessor is for self-attention layers only")
        if attention_mask is not None:
            raise ValueError("shared self-attention does not support an attention mask")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, value.shape[-1] // attn.heads).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = self.attend(query, key, value, attn.scale)

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, hidden_states.shape[1] * hidden_states.shape[-1])
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
